// The share panel: a link that restores prompt and settings, and downloads of the clip playing
// now (spectrogram PNG, its audio as the server sent it (FLAC), WAV encoded here) and of the whole
// session.

import { dataUrlToBlob, downloadBlob, imageToPngBlob, slug } from "./media.js";
import { shareUrl } from "./settings.js";
import { encodeWav, joinBuffers } from "./wav.js";

export class SharePanel {
  constructor(root, { toast }) {
    this.root = root;
    this.toast = toast;
    this.url = root.querySelector("#share-url");
    this.what = root.querySelector("#share-what");
    this.buttons = {
      png: root.querySelector("#download-png"),
      flac: root.querySelector("#download-flac"),
      wav: root.querySelector("#download-wav"),
      session: root.querySelector("#download-session"),
    };
    this.clip = null;
    this.session = [];

    root.querySelector("#copy-link").addEventListener("click", () => this.copy());
    this.url.addEventListener("focus", () => this.url.select());
    this.buttons.png.addEventListener("click", () => this.download("png"));
    this.buttons.flac.addEventListener("click", () => this.download("flac"));
    this.buttons.wav.addEventListener("click", () => this.download("wav"));
    this.buttons.session.addEventListener("click", () => this.downloadSession());
  }

  /** prompt and settings for the link; clip: {message, buffer} playing now, or null. */
  update({ prompt, settings, clip, session }) {
    this.url.value = shareUrl(window.location.href, prompt, settings);
    this.clip = clip;
    this.session = session || [];
    for (const key of ["png", "flac", "wav"]) this.buttons[key].disabled = !clip;
    this.buttons.session.disabled = this.session.length < 1;
    const minutes = this.session.reduce((sum, b) => sum + b.duration, 0) / 60;
    this.buttons.session.textContent =
      this.session.length > 0
        ? `Whole session as WAV · ${this.session.length} clips, ${minutes.toFixed(1)} min`
        : "Whole session as WAV";
    this.what.textContent = clip
      ? `Downloads are of the clip playing now: “${clip.message.prompt}”, #${clip.message.index}.`
      : "Downloads become available once music plays.";
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.url.value);
      this.toast("Link copied");
    } catch {
      // Clipboard access needs a secure context (https or localhost): select for a manual copy.
      this.url.focus();
      this.url.select();
      this.toast("Press Ctrl+C (⌘C) to copy the selected link");
    }
  }

  fileStem() {
    const { message } = this.clip;
    return `${slug(message.prompt)}-${message.input.start.seed}-${message.index}`;
  }

  async download(kind) {
    if (!this.clip) return;
    const stem = this.fileStem();
    if (kind === "png") downloadBlob(await imageToPngBlob(this.clip.message.image), `${stem}.png`);
    if (kind === "flac") downloadBlob(dataUrlToBlob(this.clip.message.audio), `${stem}.flac`);
    if (kind === "wav") downloadBlob(encodeWav(this.clip.buffer), `${stem}.wav`);
  }

  downloadSession() {
    if (!this.session.length) return;
    // The clips' audio is pieces of one stream: back to back, with no crossfade, it is the jam.
    const joined = joinBuffers(this.session, 0);
    downloadBlob(encodeWav(joined), `riffusion-session-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, "-")}.wav`);
  }
}
