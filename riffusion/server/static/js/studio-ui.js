// Building blocks shared by the studio tools: the generation settings fields, a progress display
// with elapsed time and cancel, result cards with player and downloads, and retrying when the
// server is busy.

import { ApiError, getSeeds } from "./api.js";
import { dataUrlToBlob, decodeAudioDataUrl, downloadBlob, formatTime, imageToPngBlob, slug } from "./media.js";
import { DEFAULTS, MAX_SEED, randomSeed } from "./settings.js";
import { encodeWav } from "./wav.js";

let seedsPromise = null;
const seedList = () => (seedsPromise ||= getSeeds().catch(() => ({ default: "og_beat", seeds: [] })));

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter(Boolean));
  return node;
}
export { element };

/**
 * Fill a `.generation-fields` placeholder with seed, denoising, guidance, steps and seed image
 * inputs (data-no-seed / data-no-seed-image leave those out). Returns () => the values.
 */
export function generationFields(container) {
  const prefix = container.dataset.prefix;
  const id = (name) => `${prefix}-${name}`;
  const range = (name, label, min, max, step, value, hint) => {
    const output = element("output", { for: id(name), text: String(value) });
    const input = element("input", { type: "range", id: id(name), min, max, step, value });
    input.addEventListener("input", () => {
      output.textContent = input.value;
    });
    return element("div", { class: "field range" }, element("label", { for: id(name) }, `${label} `, output), input, hint && element("span", { class: "field-hint", text: hint }));
  };

  const fields = [];
  if (!("noSeed" in container.dataset)) {
    const seed = element("input", { type: "number", id: id("seed"), min: 0, max: MAX_SEED, value: randomSeed(), required: true, inputmode: "numeric" });
    const dice = element("button", { type: "button", class: "icon-button small", "aria-label": "Random seed", title: "Random seed", onclick: () => (seed.value = randomSeed()) });
    dice.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="3.5" y="3.5" width="17" height="17" rx="4"/><circle cx="8.5" cy="8.5" r="1.4"/><circle cx="12" cy="12" r="1.4"/><circle cx="15.5" cy="15.5" r="1.4"/></svg>';
    fields.push(element("div", { class: "field" }, element("label", { for: id("seed"), text: "Seed" }), element("div", { class: "input-row" }, seed, dice)));
  }
  if (!("noSeedImage" in container.dataset)) {
    const select = element("select", { id: id("seed-image") });
    select.append(new Option(DEFAULTS.seedImageId, DEFAULTS.seedImageId));
    seedList().then(({ seeds, default: fallback }) => {
      if (!seeds.length) return;
      select.replaceChildren(...seeds.map((s) => new Option(s.id, s.id)));
      select.value = fallback || seeds[0].id;
    });
    fields.push(element("div", { class: "field" }, element("label", { for: id("seed-image"), text: "Seed image" }), select));
  }
  fields.push(range("denoising", "Denoising", 0, 1, 0.05, DEFAULTS.denoising, "0 keeps the seed, 1 ignores it"));
  fields.push(range("guidance", "Guidance", 0, 30, 0.5, DEFAULTS.guidance));
  fields.push(range("steps", "Steps", 1, 150, 1, DEFAULTS.numInferenceSteps));
  container.replaceChildren(...fields);

  return () => {
    const value = (name) => container.querySelector(`#${id(name)}`);
    const seed = value("seed");
    const seedImage = value("seed-image");
    return {
      seed: seed ? Math.min(MAX_SEED, Math.max(0, Math.round(Number(seed.value) || 0))) : undefined,
      seedImageId: seedImage ? seedImage.value : undefined,
      denoising: Number(value("denoising").value),
      guidance: Number(value("guidance").value),
      steps: Number(value("steps").value),
    };
  };
}

/**
 * A progress display in `slot`: spinner, label, elapsed time, a bar (determinate once a total is
 * given) and a Cancel button that aborts `controller`.
 */
export function showProgress(slot, { label, total = 0, controller }) {
  const started = performance.now();
  const text = element("span", { class: "progress-label", text: label });
  const time = element("span", { class: "progress-time", text: "0 s" });
  const bar = element("span");
  const meter = element("div", { class: `meter${total ? "" : " indeterminate"}`, role: "progressbar", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": total || 1 }, bar);
  const cancel = controller && element("button", { type: "button", class: "button ghost small", text: "Cancel", onclick: () => controller.abort() });
  const box = element("div", { class: "progress" }, element("div", { class: "progress-head" }, element("span", { class: "spinner", "aria-hidden": "true" }), text, time, cancel), meter);
  slot.replaceChildren(box);
  const timer = setInterval(() => {
    time.textContent = `${((performance.now() - started) / 1000).toFixed(0)} s`;
  }, 250);
  return {
    update(done, message) {
      if (message) text.textContent = message;
      if (total) {
        bar.style.width = `${(100 * done) / total}%`;
        meter.setAttribute("aria-valuenow", String(done));
      }
    },
    finish() {
      clearInterval(timer);
      slot.replaceChildren();
    },
    fail(message) {
      clearInterval(timer);
      slot.replaceChildren(element("div", { class: "error-box", role: "alert" }, element("strong", { text: "That did not work. " }), message));
    },
  };
}

/** Run `call`; when the server is busy (429) or still loading (503), wait as told and retry. */
export async function withRetry(call, { signal, onWait, attempts = 20 } = {}) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      const waitable = error instanceof ApiError && (error.status === 429 || (error.status === 503 && error.body && error.body.model && error.body.model.status === "loading"));
      if (!waitable || attempt >= attempts || (signal && signal.aborted)) throw error;
      const seconds = error.retryAfter || 2;
      if (onWait) onWait(error.status === 429 ? `Server busy; trying again in ${seconds} s…` : `Waiting for the model to load… (${error.message})`);
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, seconds * 1000);
        if (signal) signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(new DOMException("aborted", "AbortError"));
        }, { once: true });
      });
    }
  }
}

/**
 * A result card: spectrogram image, audio player and downloads.
 * image: data URL or null; audio: {dataUrl} (MP3 from the server) or {buffer} (made here).
 */
export function resultCard({ title, meta, image, audio, name }) {
  const stem = slug(name || title);
  let wavBuffer = audio.buffer || null;
  const wavBlob = () => (wavBuffer ? Promise.resolve(encodeWav(wavBuffer)) : decodeAudioDataUrl(audio.dataUrl).then((b) => encodeWav((wavBuffer = b))));
  const playable = audio.dataUrl ? audio.dataUrl : null;

  const player = element("audio", { controls: true, preload: "auto", "aria-label": `Audio: ${title}` });
  if (playable) player.src = playable;
  else wavBlob().then((blob) => (player.src = URL.createObjectURL(blob)));

  const downloads = element("div", { class: "download-row" });
  if (image) downloads.append(element("button", { type: "button", class: "button small", text: "PNG", onclick: async () => downloadBlob(await imageToPngBlob(image), `${stem}.png`) }));
  if (audio.dataUrl) downloads.append(element("button", { type: "button", class: "button small", text: "MP3", onclick: () => downloadBlob(dataUrlToBlob(audio.dataUrl), `${stem}.mp3`) }));
  downloads.append(element("button", { type: "button", class: "button small", text: "WAV", onclick: async () => downloadBlob(await wavBlob(), `${stem}.wav`) }));

  const figure = image ? element("img", { class: "result-image", src: image, alt: `Spectrogram: ${title}` }) : null;
  const card = element(
    "article",
    { class: "result" },
    figure,
    element("div", { class: "result-body" }, element("h3", { text: title }), meta && element("p", { class: "result-meta", text: meta }), player, downloads),
  );
  return card;
}

export function describeError(error) {
  if (error && error.name === "AbortError") return "Cancelled.";
  return (error && error.message) || String(error);
}

export { formatTime };
