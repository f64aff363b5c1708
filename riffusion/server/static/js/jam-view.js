// The jam view: ties the prompt box, the jam WebSocket, the audio scheduler, the timeline and
// the settings and share cards together. Each of those does one job; this module decides what
// happens when (a prompt is typed, a clip arrives, a clip starts playing).

import { jamSocketUrl } from "./api.js";
import { AudioScheduler } from "./audio-scheduler.js";
import { JamClient } from "./jam-client.js";
import { decodeAudioDataUrl, formatTime, loadImage } from "./media.js";
import { SUGGESTIONS, randomPrompt } from "./prompts.js";
import { randomSeed, settingsToWire } from "./settings.js";
import { SettingsForm } from "./settings-form.js";
import { SharePanel } from "./share.js";
import { Timeline } from "./timeline.js";

// Two stream positions (s) closer than half a frame at 44.1 kHz are the same frame.
const SAME_FRAME_S = 0.5 / 44100;
const SESSION_CLIPS = 60; // clips kept for "whole session" downloads: about five minutes

const $ = (selector) => document.querySelector(selector);

export class JamView {
  constructor({ initial, health, toast }) {
    this.health = health;
    this.toast = toast;
    this.phase = "idle"; // idle -> starting -> playing <-> paused
    this.epoch = 0; // bumps when a reconnect restarts the server's clip indices
    this.received = []; // every clip message's metadata, newest last (also read by tests)
    this.session = []; // decoded buffers of played clips, for the session download
    this.current = null; // {message, buffer} playing now
    this.pending = Promise.resolve(); // clips are decoded in order, one after another
    this.lastScheduled = null; // metadata of the clip scheduled last, whose audio the next continues
    this.status = null;
    this.pendingPrompts = []; // typed but not yet confirmed by a status message

    this.scheduler = new AudioScheduler();
    this.client = new JamClient(jamSocketUrl());
    this.timeline = new Timeline($("#timeline"), () => this.scheduler.now);
    this.settings = new SettingsForm($("#settings-form"), initial.settings);
    this.share = new SharePanel($("#share-card"), { toast });

    this.elements = {
      form: $("#prompt-form"),
      input: $("#prompt-input"),
      submit: $("#prompt-submit"),
      play: $("#play-button"),
      clock: $("#clock"),
      transport: $("#transport-state"),
      nowLabel: $("#now-label"),
      nowPrompt: $("#now-prompt"),
      nowMeta: $("#now-meta"),
      empty: $("#stage-empty"),
      behind: $("#behind-notice"),
      behindText: $("#behind-text"),
      nextList: $("#next-list"),
      nextEmpty: $("#next-empty"),
      buffer: $("#buffer-badge"),
      volume: $("#volume"),
    };
    this.elements.input.value = initial.prompt;
    if (initial.prompt) {
      // A shared link: browsers only let sound start from a click or key press, so ask for one.
      this.elements.empty.querySelector(".stage-empty-title").textContent = `Press play to hear “${initial.prompt}”.`;
      this.elements.empty.querySelector(".stage-empty-hint").textContent = "The prompt and settings come from the link; change them as you like.";
    }
    this.bind();
    this.renderSuggestions();
    this.settings.loadOptions().then(() => this.updateShare());
    this.updateShare();
    this.renderTransport();
  }

  bind() {
    const { elements: el, client, scheduler } = this;
    el.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitPrompt(el.input.value);
    });
    $("#dice-button").addEventListener("click", () => {
      el.input.value = randomPrompt(el.input.value);
      el.input.focus();
      this.updateShare();
    });
    el.input.addEventListener("input", () => {
      if (this.phase === "idle") this.updateShare();
    });
    el.play.addEventListener("click", () => this.togglePlay());
    el.volume.addEventListener("input", () => scheduler.setVolume(Number(el.volume.value)));
    $("#settings-reset").addEventListener("click", () => this.settings.reset());

    this.settings.addEventListener("change", (event) => {
      // Only what changed goes out: resending the seed would make the jam jump back to it.
      if (this.phase !== "idle") client.settings(settingsToWire(event.detail));
      this.updateShare();
    });

    client.addEventListener("clip", (event) => this.receiveClip(event.detail, this.epoch));
    client.addEventListener("status", (event) => this.receiveStatus(event.detail));
    client.addEventListener("error", (event) => this.toast(event.detail.message, "error"));
    client.addEventListener("restart", () => {
      this.epoch += 1;
      this.toast("Reconnected: the jam continues from where it was.");
    });
    client.addEventListener("connection", (event) => {
      this.connection = event.detail;
      if (event.detail === "closed" && this.phase !== "idle") {
        this.toast("Lost the connection to the server; reconnecting…", "error");
      }
      this.renderTransport();
    });

    scheduler.addEventListener("clipstart", (event) => this.clipStarted(event.detail));
    scheduler.addEventListener("starved", () => this.renderBehind());
    scheduler.addEventListener("statechange", () => this.renderTransport());
    this.health.addEventListener("change", () => this.renderTransport());

    // The clock and the buffer badge change continuously; four updates a second is plenty.
    let ticks = 0;
    setInterval(() => {
      el.clock.textContent = formatTime(scheduler.position);
      el.buffer.textContent = `${Math.round(scheduler.buffered)} s buffered`;
      // The "in N s" countdowns of the next clips.
      ticks += 1;
      if (ticks % 4 === 0 && this.phase === "playing") this.renderNext();
    }, 250);
  }

  renderSuggestions() {
    const list = $("#suggestions");
    for (const prompt of SUGGESTIONS) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip";
      button.textContent = prompt;
      button.addEventListener("click", () => {
        this.elements.input.value = prompt;
        this.submitPrompt(prompt);
      });
      item.append(button);
      list.append(item);
    }
  }

  // ---- user actions ----

  async submitPrompt(text) {
    const prompt = text.trim();
    if (!prompt) {
      this.elements.input.focus();
      this.toast("Type a prompt first, or roll the dice.");
      return;
    }
    if (this.health.health && this.health.health.status === "failed") {
      this.toast("The model is not available: see the message at the top of the page.", "error");
      return;
    }
    if (this.phase === "idle") {
      await this.start(prompt);
      return;
    }
    const last = this.pendingPrompts.at(-1) || this.lastQueuedPrompt();
    if (prompt === last) {
      this.toast("That prompt is already next in line.");
      return;
    }
    this.client.prompt(prompt);
    this.pendingPrompts.push(prompt);
    this.elements.input.value = "";
    this.renderNext();
    this.toast(`Queued “${prompt}”: the music moves to it at the next turn.`);
  }

  async start(prompt) {
    // Audio may only start from a user gesture; this runs inside the click or key press.
    await this.scheduler.ensureContext();
    if (this.settings.values.seed === null) this.settings.set({ seed: randomSeed() });
    this.phase = "starting";
    this.startedPrompt = prompt;
    this.elements.input.value = "";
    const settings = settingsToWire(this.settings.values);
    this.client.start(prompt, settings, () => this.restartMessage());
    this.timeline.start();
    this.renderTransport();
    this.renderNext();
    this.updateShare();
  }

  /** After a reconnect: start again on the prompt and seed the music had reached. */
  restartMessage() {
    const last = this.received.at(-1);
    const settings = settingsToWire(this.settings.values);
    if (!last) return { type: "start", prompt: this.startedPrompt, settings };
    settings.seed = last.input.end.seed;
    return { type: "start", prompt: last.prompt, settings };
  }

  async togglePlay() {
    if (this.phase === "idle") {
      const prompt = this.elements.input.value.trim() || randomPrompt();
      this.elements.input.value = prompt;
      await this.submitPrompt(prompt);
    } else if (this.phase === "paused") {
      this.phase = this.current ? "playing" : "starting";
      this.client.resume();
      await this.scheduler.resume();
    } else {
      this.phase = "paused";
      this.client.pause();
      await this.scheduler.pause();
    }
    this.renderTransport();
  }

  // ---- from the server ----

  receiveClip(message, epoch) {
    const meta = {
      index: message.index,
      epoch,
      input: message.input,
      state: message.state,
      prompt: message.prompt,
      duration_s: message.duration_s,
      audio_start_s: message.audio_start_s,
      image_start_s: message.image_start_s,
      image_duration_s: message.image_duration_s,
    };
    this.received.push(meta);
    // Decode now but schedule strictly in arrival order, whatever order decoding finishes in.
    const decoded = Promise.all([
      decodeAudioDataUrl(message.audio, this.scheduler.context),
      loadImage(message.image),
    ]);
    this.pending = this.pending
      .then(async () => {
        const [buffer, image] = await decoded;
        // The clip's audio carries on from the last one's if it starts where that one ended in
        // the same stream (a new jam's stream starts again at 0).
        const last = this.lastScheduled;
        const continues = Boolean(last && last.epoch === epoch && Math.abs(last.audio_start_s + last.duration_s - meta.audio_start_s) < SAME_FRAME_S);
        this.lastScheduled = meta;
        const entry = this.scheduler.enqueue({
          buffer,
          continues,
          imageOffset: meta.image_start_s - meta.audio_start_s,
          imageDuration: meta.image_duration_s,
          index: message.index,
          message,
          image,
          epoch,
        });
        this.timeline.add({ image, start: entry.imageStart, duration: entry.imageEnd - entry.imageStart, index: message.index });
        this.renderNext();
        this.renderBehind();
      })
      .catch((error) => this.toast(`A clip could not be played: ${error.message}`, "error"));
  }

  receiveStatus(status) {
    this.status = status;
    if (status.model) this.health.update(status.model);
    // Prompts the server has seen now show up in its queue (or are already playing).
    const seen = new Set([...(status.queued_prompts || []), status.prompt]);
    this.pendingPrompts = this.pendingPrompts.filter((p) => !seen.has(p));
    this.renderNext();
    this.renderBehind();
    this.renderTransport();
  }

  lastQueuedPrompt() {
    const queued = (this.status && this.status.queued_prompts) || [];
    return queued.at(-1) || (this.status && this.status.prompt) || null;
  }

  // ---- from the audio ----

  clipStarted(entry) {
    const { message, buffer, epoch } = entry.clip;
    if (epoch === this.epoch) this.client.played(message.index);
    this.current = { message, buffer };
    this.session.push(buffer);
    if (this.session.length > SESSION_CLIPS) this.session.shift();
    if (this.phase === "starting") this.phase = "playing";
    this.renderNow();
    this.renderNext();
    this.renderBehind();
    this.renderTransport();
    this.updateShare();
  }

  // ---- rendering ----

  renderNow() {
    const { message } = this.current;
    const { input } = message;
    const el = this.elements;
    el.empty.hidden = true;
    $("#now-playing").hidden = false;
    if (message.state === "TRANSITION") {
      el.nowLabel.textContent = "Moving to a new prompt";
      el.nowPrompt.textContent = `${input.start.prompt} → ${input.end.prompt}`;
    } else {
      el.nowLabel.textContent = "Now playing";
      el.nowPrompt.textContent = message.prompt;
    }
    const seeds = input.start.seed === input.end.seed ? `seed ${input.start.seed}` : `seeds ${input.start.seed}→${input.end.seed}`;
    el.nowMeta.textContent = [
      `#${message.index}`,
      seeds,
      `α ${input.alpha.toFixed(2)}`,
      `denoising ${input.start.denoising}`,
      `guidance ${input.start.guidance}`,
      `${input.num_inference_steps} steps`,
      input.seed_image_id,
    ].join(" · ");
  }

  renderNext() {
    const list = this.elements.nextList;
    const items = [];
    for (const entry of this.scheduler.entries) {
      if (entry.started) continue;
      const { message } = entry.clip;
      const label = message.state === "TRANSITION" ? `${message.input.start.prompt} → ${message.prompt}` : message.prompt;
      items.push({ kind: "clip", label, detail: `#${message.index} · α ${message.input.alpha.toFixed(2)} · in ${Math.max(0, Math.round(entry.imageStart - this.scheduler.now))} s` });
    }
    const generating = this.phase !== "idle" && this.phase !== "paused" && this.health.ready;
    if (generating && items.length < 3) items.push({ kind: "working", label: "Generating the next clip…", detail: "" });
    const queued = [...((this.status && this.status.queued_prompts) || []), ...this.pendingPrompts];
    for (const prompt of queued) items.push({ kind: "queued", label: prompt, detail: "queued prompt: the music turns to it after what is buffered" });

    list.replaceChildren(
      ...items.map((item) => {
        const li = document.createElement("li");
        li.className = `next-item ${item.kind}`;
        const label = document.createElement("span");
        label.className = "next-label";
        label.textContent = item.label;
        li.append(label);
        if (item.kind === "working") li.prepend(Object.assign(document.createElement("span"), { className: "spinner", ariaHidden: "true" }));
        if (item.detail) li.append(Object.assign(document.createElement("span"), { className: "next-detail", textContent: item.detail }));
        return li;
      }),
    );
    this.elements.nextEmpty.hidden = items.length > 0;
  }

  renderBehind() {
    const active = this.phase === "playing" || this.phase === "starting";
    const starved = active && this.current !== null && this.scheduler.starved;
    const behind = active && this.current !== null && Boolean(this.status && this.status.behind);
    this.elements.behind.hidden = !(starved || behind);
    this.elements.behindText.textContent = starved
      ? "Waiting for the next clip: generation can't keep up. The music resumes when it arrives."
      : "Falling behind: generation is slower than playback, so the music may pause for a moment.";
  }

  renderTransport() {
    const el = this.elements;
    const health = this.health.health;
    let text;
    if (this.phase === "idle") text = "Ready";
    else if (this.phase === "paused") text = "Paused";
    else if (this.connection === "closed" || this.connection === "connecting") text = "Connecting…";
    else if (health && health.status === "loading") text = "Waiting for the model…";
    else if (health && health.status === "failed") text = "Model unavailable";
    else if (this.phase === "starting") text = "Generating the first clip…";
    else text = "Playing";
    el.transport.textContent = text;
    const playing = this.phase === "playing" || this.phase === "starting";
    el.play.dataset.state = playing ? "playing" : "paused";
    el.play.setAttribute("aria-label", playing ? "Pause" : this.phase === "idle" ? "Play" : "Resume");
    el.play.setAttribute("aria-pressed", String(playing));
    el.submit.textContent = this.phase === "idle" ? "Jam" : "Queue";
    if (this.phase !== "idle" && !this.current) {
      el.empty.hidden = false;
      el.empty.querySelector(".stage-empty-title").textContent = text;
      el.empty.querySelector(".stage-empty-hint").textContent =
        "The first clip takes a moment; after that the music keeps a few clips ahead.";
    }
    this.renderBehind();
  }

  updateShare() {
    const message = this.current && this.current.message;
    const prompt = message ? message.prompt : this.elements.input.value.trim() || this.startedPrompt || "";
    const settings = { ...this.settings.values };
    if (message) settings.seed = message.input.start.seed;
    this.share.update({ prompt, settings, clip: this.current, session: this.session });
  }

  /** Space toggles play from anywhere that does not use the key itself. */
  handleKey(event) {
    if (event.key === "/" && !isTyping(event.target)) {
      event.preventDefault();
      this.elements.input.focus();
      return;
    }
    if (event.key === " " && !isTyping(event.target) && !isControl(event.target)) {
      event.preventDefault();
      this.togglePlay();
    }
  }
}

function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

function isControl(target) {
  return target instanceof HTMLElement && /^(BUTTON|A|SUMMARY|LABEL)$/.test(target.tagName);
}
