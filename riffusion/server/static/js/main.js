// Start-up: read the URL, start the model-state monitor, build the two views and route between
// them (#jam, #studio), and the page-wide keyboard shortcuts.

import { HealthMonitor } from "./health.js";
import { JamView } from "./jam-view.js";
import { stateFromQuery } from "./settings.js";
import { Studio } from "./studio.js";

let toastTimer = null;

/** A short message at the bottom of the screen; kind "error" stays longer and is red. */
function toast(message, kind = "info") {
  const element = document.getElementById("toast");
  element.textContent = message;
  element.dataset.kind = kind;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    element.hidden = true;
  }, kind === "error" ? 7000 : 3500);
}

const health = new HealthMonitor({
  pill: document.getElementById("model-pill"),
  banner: document.getElementById("model-banner"),
});
health.start();

const jam = new JamView({ initial: stateFromQuery(window.location.search), health, toast });
let studio = null; // built the first time it is shown: its canvas and uploads cost nothing until then

function route() {
  const view = window.location.hash === "#studio" ? "studio" : "jam";
  document.getElementById("view-jam").hidden = view !== "jam";
  document.getElementById("view-studio").hidden = view !== "studio";
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (view === "studio" && !studio) studio = new Studio({ health, toast, scheduler: jam.scheduler });
  // The timeline only draws while visible; the music itself keeps playing in either view.
  if (view === "jam" && jam.phase !== "idle") jam.timeline.start();
  else jam.timeline.stop();
  document.title = view === "studio" ? "Studio · Riffusion" : "Riffusion";
}

window.addEventListener("hashchange", route);
route();

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (!document.getElementById("view-jam").hidden) jam.handleKey(event);
});

// For debugging in the console, and for the browser tests.
window.riffusion = {
  jam,
  health,
  get studio() {
    return studio;
  },
};
