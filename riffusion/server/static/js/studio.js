// The studio: the original riffusion playground's one-shot tools. Each tool is a form, a
// progress display and a list of results (newest first).

import { audioToAudio, hasEndpoint, imageToAudio, runInference } from "./api.js";
import { DrawPad, rowOfFrequency } from "./draw-pad.js";
import { blobToDataUrl, decodeAudio, decodeAudioDataUrl, loadImage } from "./media.js";
import { describeError, element, generationFields, resultCard, showProgress, withRetry } from "./studio-ui.js";
import { encodeWav, joinBuffers } from "./wav.js";

const CLIP_S = 5.12; // the model's clip length: 512 columns of 10 ms
const MAX_UPLOAD_S = 60;
const CROSSFADE_S = 0.04;

export class Studio {
  constructor({ health, toast }) {
    this.health = health;
    this.toast = toast;
    this.root = document.getElementById("view-studio");
    this.busy = new Set();
    this.setUpTabs();
    this.setUpText();
    this.setUpAudio();
    this.setUpInterpolation();
    this.setUpImage();
    this.setUpSamples();
  }

  // ---- tabs (arrow keys move between them, as in any tab list) ----

  setUpTabs() {
    const tabs = [...this.root.querySelectorAll('[role="tab"]')];
    const select = (tab, focus = true) => {
      for (const other of tabs) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        other.tabIndex = selected ? 0 : -1;
        document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
      }
      if (focus) tab.focus();
    };
    for (const [i, tab] of tabs.entries()) {
      tab.addEventListener("click", () => select(tab));
      tab.addEventListener("keydown", (event) => {
        const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
        if (step) {
          event.preventDefault();
          select(tabs[(i + step + tabs.length) % tabs.length]);
        } else if (event.key === "Home" || event.key === "End") {
          event.preventDefault();
          select(tabs[event.key === "Home" ? 0 : tabs.length - 1]);
        }
      });
    }
  }

  panel(id) {
    const root = document.getElementById(id);
    return { root, slot: root.querySelector(".progress-slot"), results: root.querySelector(".results") };
  }

  /** Run one tool's job with progress, cancel, and one job per tool at a time. */
  async run(id, label, total, job) {
    if (this.busy.has(id)) return;
    const { root, slot, results } = this.panel(id);
    const controller = new AbortController();
    const progress = showProgress(slot, { label, total, controller });
    const buttons = root.querySelectorAll('button[type="submit"], .form-actions .primary');
    this.busy.add(id);
    buttons.forEach((button) => (button.disabled = true));
    try {
      const card = await job({ progress, signal: controller.signal });
      progress.finish();
      if (card) {
        results.prepend(card);
        card.querySelector("audio")?.focus({ preventScroll: true });
      }
    } catch (error) {
      progress.fail(describeError(error));
    } finally {
      this.busy.delete(id);
      buttons.forEach((button) => (button.disabled = false));
    }
  }

  // ---- text to audio ----

  setUpText() {
    const form = document.getElementById("text-form");
    const values = generationFields(form.querySelector(".generation-fields"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const v = values();
      const prompt = { prompt: data.get("prompt").trim(), seed: v.seed, denoising: v.denoising, guidance: v.guidance, negative_prompt: data.get("negative_prompt").trim() || null };
      const input = { alpha: 0, num_inference_steps: v.steps, seed_image_id: v.seedImageId, mask_image_id: null, start: prompt, end: prompt };
      this.run("tool-text", `Generating “${prompt.prompt}”…`, 0, async ({ progress, signal }) => {
        const output = await withRetry(() => runInference(input, { signal }), { signal, onWait: (m) => progress.update(0, m) });
        return resultCard({
          title: prompt.prompt,
          meta: `seed ${prompt.seed} · denoising ${prompt.denoising} · guidance ${prompt.guidance} · ${input.num_inference_steps} steps · ${input.seed_image_id}`,
          image: output.image,
          audio: { dataUrl: output.audio },
          name: `${prompt.prompt}-${prompt.seed}`,
        });
      });
    });
  }

  // ---- audio to audio ----

  async setUpAudio() {
    const form = document.getElementById("audio-form");
    const values = generationFields(form.querySelector(".generation-fields"));
    const info = document.getElementById("audio-file-info");
    const file = document.getElementById("audio-file");
    let decoded = null;
    file.addEventListener("change", async () => {
      decoded = null;
      if (!file.files[0]) return;
      try {
        decoded = await decodeAudio(new Uint8Array(await file.files[0].arrayBuffer()));
        const used = Math.min(decoded.duration, MAX_UPLOAD_S);
        const count = splitClips(decoded, CLIP_S, MAX_UPLOAD_S).length;
        info.textContent = count
          ? `${decoded.duration.toFixed(1)} s, ${decoded.numberOfChannels === 1 ? "mono" : "stereo"}: ${count} ${count === 1 ? "clip" : "clips"} of up to ${CLIP_S} s will be transformed${decoded.duration > used ? ` (the first ${MAX_UPLOAD_S} s)` : ""}.`
          : `${decoded.duration.toFixed(2)} s is too short: a clip needs at least ${MIN_CLIP_S} s.`;
        if (!count) decoded = null;
      } catch {
        info.textContent = "This file could not be decoded: try WAV or MP3.";
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!decoded) {
        this.toast("Choose an audio file your browser can decode first.", "error");
        return;
      }
      const data = new FormData(form);
      const v = values();
      const clips = splitClips(decoded, CLIP_S, MAX_UPLOAD_S);
      const prompt = data.get("prompt").trim();
      this.run("tool-audio", `Transforming clip 1 of ${clips.length}…`, clips.length, async ({ progress, signal }) => {
        const images = [];
        const buffers = [];
        for (const [i, clip] of clips.entries()) {
          progress.update(i, `Transforming clip ${i + 1} of ${clips.length}…`);
          const audio = await blobToDataUrl(encodeWav(clip));
          const body = { audio, prompt, seed: v.seed, denoising: v.denoising, guidance: v.guidance, num_inference_steps: v.steps, negative_prompt: null };
          const output = await withRetry(() => audioToAudio(body, { signal }), { signal, onWait: (m) => progress.update(i, m) });
          images.push(output.image);
          buffers.push(await decodeAudioDataUrl(output.audio));
        }
        progress.update(clips.length, "Joining the clips…");
        const card = resultCard({ title: prompt, meta: `${file.files[0].name} · ${clips.length} ${clips.length === 1 ? "clip" : "clips"} · seed ${v.seed} · denoising ${v.denoising}`, image: null, audio: { buffer: joinBuffers(buffers, CROSSFADE_S) }, name: `${prompt}-${v.seed}` });
        card.prepend(filmstrip(images, prompt));
        return card;
      });
    });
    this.markAvailability("tool-audio", "/api/audio_to_audio");
  }

  async markAvailability(id, path) {
    const available = await hasEndpoint(path);
    const { root } = this.panel(id);
    root.querySelector(".unavailable").hidden = available;
    root.classList.toggle("is-unavailable", !available);
    for (const control of root.querySelectorAll("input, select, button")) control.disabled = !available;
  }

  // ---- interpolation ----

  setUpInterpolation() {
    const form = document.getElementById("interp-form");
    const values = generationFields(form.querySelector(".generation-fields"));
    form.querySelector("#interp-start-seed").value = Math.floor(Math.random() * 1000);
    form.querySelector("#interp-end-seed").value = Math.floor(Math.random() * 1000);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const v = values();
      const count = Math.max(2, Math.min(16, Number(data.get("clips"))));
      const side = (prefix) => ({ prompt: data.get(`${prefix}_prompt`).trim(), seed: Number(data.get(`${prefix}_seed`)), denoising: v.denoising, guidance: v.guidance, negative_prompt: null });
      const start = side("start");
      const end = side("end");
      const inputs = Array.from({ length: count }, (_, i) => ({ alpha: i / (count - 1), num_inference_steps: v.steps, seed_image_id: v.seedImageId, mask_image_id: null, start, end }));
      this.run("tool-interp", `Generating clip 1 of ${count}…`, count, async ({ progress, signal }) => {
        // Two requests in flight: the server can batch them, and progress still moves in order.
        const outputs = new Array(count);
        let next = 0;
        let done = 0;
        const worker = async () => {
          while (next < count) {
            const i = next++;
            outputs[i] = await withRetry(() => runInference(inputs[i], { signal }), { signal, onWait: (m) => progress.update(done, m) });
            done += 1;
            progress.update(done, done < count ? `Generating clip ${done + 1} of ${count}…` : "Joining the clips…");
          }
        };
        await Promise.all([worker(), worker()]);
        const buffers = await Promise.all(outputs.map((o) => decodeAudioDataUrl(o.audio)));
        const title = `${start.prompt} → ${end.prompt}`;
        const card = resultCard({ title, meta: `seeds ${start.seed} → ${end.seed} · ${count} clips · denoising ${v.denoising} · ${v.steps} steps · ${v.seedImageId}`, image: null, audio: { buffer: joinBuffers(buffers, CROSSFADE_S) }, name: `${start.prompt}-to-${end.prompt}` });
        card.prepend(filmstrip(outputs.map((o) => o.image), title, inputs.map((x) => `α ${x.alpha.toFixed(2)}`)));
        return card;
      });
    });
  }

  // ---- image to audio ----

  setUpImage() {
    const root = document.getElementById("tool-image");
    const canvas = document.getElementById("draw-canvas");
    const duration = document.getElementById("draw-duration");
    // The pad reports changes while it is still being built: show the width it has then.
    const pad = new DrawPad(canvas, { onChange: () => (duration.textContent = `${(canvas.width / 100).toFixed(2)} s`) });
    this.pad = pad;
    pad.example();

    for (const radio of root.querySelectorAll('input[name="draw-tool"]')) {
      radio.addEventListener("change", () => (pad.tool = radio.value));
    }
    const size = document.getElementById("draw-size");
    const ink = document.getElementById("draw-ink");
    size.addEventListener("input", () => (pad.size = Number(size.value)));
    ink.addEventListener("input", () => (pad.ink = Number(ink.value)));
    document.getElementById("draw-undo").addEventListener("click", () => pad.undo());
    document.getElementById("draw-clear").addEventListener("click", () => pad.clear());
    document.getElementById("draw-example").addEventListener("click", () => pad.example());
    root.querySelector(".draw-area").addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key === "z") {
        event.preventDefault();
        pad.undo();
      }
    });
    document.getElementById("image-file").addEventListener("change", async (event) => {
      const chosen = event.target.files[0];
      if (!chosen) return;
      try {
        const url = URL.createObjectURL(chosen);
        const scaled = await pad.load(await loadImage(url));
        URL.revokeObjectURL(url);
        if (scaled) this.toast("The image was scaled to 512 rows: rows are frequencies, so its pitches moved.");
      } catch {
        this.toast("That file is not an image the browser can read.", "error");
      }
      event.target.value = "";
    });

    // Frequency labels beside the pad, at the rows where those frequencies lie.
    const axis = root.querySelector(".freq-axis");
    for (const [hz, label] of [[10000, "10k"], [5000, "5k"], [2000, "2k"], [1000, "1k"], [500, "500"], [200, "200"], [50, "50 Hz"]]) {
      axis.append(element("span", { text: label, style: `top:${(100 * rowOfFrequency(hz)) / 512}%` }));
    }

    document.getElementById("image-submit").addEventListener("click", () => {
      const image = pad.toDataUrl();
      this.run("tool-image", "Turning the spectrogram into sound…", 0, async ({ progress, signal }) => {
        const output = await withRetry(() => imageToAudio(image, { signal }), { signal, onWait: (m) => progress.update(0, m) });
        return resultCard({ title: "Drawn spectrogram", meta: `${pad.duration.toFixed(2)} s · ${new Date().toLocaleTimeString()}`, image, audio: { dataUrl: output.audio }, name: "drawn-spectrogram" });
      });
    });
    this.markAvailability("tool-image", "/api/image_to_audio");
  }

  // ---- sample clips ----

  setUpSamples() {
    const form = document.getElementById("samples-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const file = document.getElementById("samples-file").files[0];
      const count = Number(document.getElementById("samples-count").value);
      const length = Number(document.getElementById("samples-duration").value) / 1000;
      const seed = Number(document.getElementById("samples-seed").value);
      this.run("tool-samples", "Decoding the file…", count, async ({ progress }) => {
        const buffer = await decodeAudio(new Uint8Array(await file.arrayBuffer()));
        if (buffer.duration < length) throw new Error(`the file is ${buffer.duration.toFixed(2)} s long, shorter than one clip`);
        const random = mulberry32(seed);
        const group = element("div", { class: "sample-group" }, element("h3", { text: `${file.name}: ${count} clips of ${Math.round(length * 1000)} ms, seed ${seed}` }));
        const list = element("ol", { class: "sample-list" });
        for (let i = 0; i < count; i += 1) {
          const start = random() * (buffer.duration - length);
          const clip = sliceBuffer(buffer, start, length);
          const name = `${file.name.replace(/\.[^.]+$/, "")}-clip${String(i).padStart(3, "0")}-${Math.round(start * 1000)}ms`;
          list.append(element("li", {}, resultCard({ title: `Clip ${i + 1}`, meta: `from ${start.toFixed(2)} s`, image: null, audio: { buffer: clip }, name })));
          progress.update(i + 1, `Cutting clip ${i + 1} of ${count}…`);
        }
        group.append(list);
        return group;
      });
    });
  }
}

// ---- helpers ----

function filmstrip(images, title, captions = []) {
  return element(
    "div",
    { class: "filmstrip", role: "list", "aria-label": `Spectrograms: ${title}` },
    ...images.map((src, i) => element("figure", { role: "listitem" }, element("img", { src, alt: `Spectrogram ${i + 1} of ${images.length}` }), captions[i] && element("figcaption", { text: captions[i] }))),
  );
}

function sliceBuffer(buffer, start, length) {
  const from = Math.floor(start * buffer.sampleRate);
  const frames = Math.min(buffer.length - from, Math.round(length * buffer.sampleRate));
  const out = new AudioBuffer({ numberOfChannels: buffer.numberOfChannels, length: frames, sampleRate: buffer.sampleRate });
  for (let c = 0; c < buffer.numberOfChannels; c += 1) out.copyToChannel(buffer.getChannelData(c).subarray(from, from + frames), c);
  return out;
}

const MIN_CLIP_S = 0.64; // the server's shortest clip (docs/api.md): 64 spectrogram columns

/** Consecutive clips of `length` seconds covering at most `limit` seconds of `buffer`; a tail
 * too short for the server is dropped. */
function splitClips(buffer, length, limit) {
  const total = Math.min(buffer.duration, limit);
  const clips = [];
  for (let start = 0; total - start >= MIN_CLIP_S; start += length) clips.push(sliceBuffer(buffer, start, Math.min(length, total - start)));
  return clips;
}

/** A small seeded random number generator, so a seed gives the same clips every time. */
function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
