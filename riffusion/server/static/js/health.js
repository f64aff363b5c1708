// The model's state from GET /health: a pill in the top bar and, unless the model is ready, a
// banner that says what is happening, or what went wrong and how to fix it.

import { getHealth } from "./api.js";

export class HealthMonitor extends EventTarget {
  constructor({ pill, banner }) {
    super();
    this.pill = pill;
    this.banner = banner;
    this.health = null;
    this.timer = null;
    banner.querySelector(".banner-retry").addEventListener("click", () => this.poll());
  }

  get ready() {
    return Boolean(this.health && this.health.status === "ready");
  }

  start() {
    this.poll();
  }

  async poll() {
    clearTimeout(this.timer);
    try {
      this.update(await getHealth());
    } catch (error) {
      this.update({ status: "unreachable", message: error.message });
    }
    // Poll quickly while something is changing, slowly once it is settled.
    const settled = this.health.status === "ready" || this.health.status === "failed";
    this.timer = setTimeout(() => this.poll(), settled ? 30000 : 1500);
  }

  /** Take a health object (also the `model` of jam status messages). */
  update(health) {
    if (!health || typeof health !== "object") return;
    const previous = this.health && this.health.status;
    this.health = health;
    this.render(health);
    if (previous !== health.status) this.dispatchEvent(new CustomEvent("change", { detail: health }));
  }

  render(health) {
    const { pill, banner } = this;
    const status = health.status || "unknown";
    pill.dataset.state = status;
    const labels = { ready: "Ready", loading: "Loading model…", failed: "Model unavailable", unreachable: "Server unreachable" };
    pill.querySelector(".pill-text").textContent = labels[status] || "Checking…";
    // Which model on which device: useful on a laptop, dropped on a phone by the stylesheet.
    const model = health.model ? String(health.model).split("/").pop() : "";
    const detail = status === "ready" || status === "loading" ? [model, health.device].filter(Boolean).join(" · ") : "";
    pill.querySelector(".pill-detail").textContent = detail ? ` · ${detail}` : "";
    pill.title = health.message || "";

    banner.hidden = status === "ready";
    if (status === "ready") return;
    banner.dataset.state = status;
    const title = banner.querySelector(".banner-title");
    const message = banner.querySelector(".banner-message");
    const fix = banner.querySelector(".banner-fix");
    const progress = banner.querySelector(".banner-progress");
    const retry = banner.querySelector(".banner-retry");

    if (status === "loading") {
      const stage = health.stage ? ` (${health.stage})` : "";
      title.textContent = `The model is loading${stage}. Music can start as soon as it is ready.`;
      const elapsed = Number.isFinite(health.elapsed_s) ? ` · ${Math.round(health.elapsed_s)} s` : "";
      message.textContent = `${health.message || ""}${elapsed}`;
    } else if (status === "failed") {
      title.textContent = "The model could not be loaded, so nothing can be generated.";
      message.textContent = health.message || "The server did not say why.";
    } else {
      title.textContent = "The server cannot be reached.";
      message.textContent = "Start it with `riffusion serve`, then check again.";
    }
    const fixText = status === "failed" ? health.fix : null;
    fix.hidden = !fixText;
    if (fixText) fix.querySelector(".banner-fix-text").textContent = fixText;

    const fraction = Number(health.progress);
    progress.hidden = !(status === "loading" && Number.isFinite(fraction) && health.progress !== null);
    if (!progress.hidden) progress.firstElementChild.style.width = `${Math.round(fraction * 100)}%`;
    retry.hidden = status === "loading";
  }
}
