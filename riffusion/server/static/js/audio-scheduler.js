// Gapless playback of a stream of clips through the Web Audio API.
//
// Every clip is scheduled on the AudioContext's own clock the moment it arrives, right where the
// previous one ends (overlapping it by a short crossfade), so playback never depends on timers
// firing on time: a busy or background tab still plays seamlessly. Pause suspends the context,
// which freezes that clock, so resuming continues exactly where it stopped.
//
// Events: "clipstart" (detail: the entry that started playing), "clipend", "starved" (nothing
// left to play), "statechange".

export class AudioScheduler extends EventTarget {
  constructor({ crossfade = 0.04, startDelay = 0.12 } = {}) {
    super();
    this.crossfade = crossfade; // seconds of overlap between consecutive clips
    this.startDelay = startDelay; // headroom for the first clip after silence
    this.context = null;
    this.master = null;
    this.entries = []; // scheduled, not yet finished: {clip, start, end, source, gain, offset}
    this.tail = 0; // context time where the last scheduled clip ends
    this.musicTail = 0; // seconds of music scheduled so far
    this.current = null;
    this.starved = false;
    this.timer = null;
  }

  /** Create or resume the AudioContext. Call from a user gesture (a click, a key press). */
  async ensureContext() {
    if (!this.context) {
      const Context = window.AudioContext || window.webkitAudioContext;
      this.context = new Context({ latencyHint: "playback" });
      this.master = this.context.createGain();
      this.master.connect(this.context.destination);
      this.context.addEventListener("statechange", () => this.emit("statechange"));
      this.timer = setInterval(() => this.tick(), 50);
    }
    if (this.context.state === "suspended" && !this.userPaused) await this.context.resume();
    return this.context;
  }

  get now() {
    return this.context ? this.context.currentTime : 0;
  }

  get paused() {
    return Boolean(this.userPaused);
  }

  setVolume(value) {
    if (this.master) this.master.gain.setTargetAtTime(value, this.now, 0.02);
    this.volume = value;
  }

  /**
   * Schedule a decoded clip after everything already scheduled.
   * clip: {buffer: AudioBuffer, duration: seconds the clip lasts, ...anything}
   * Returns the entry: {clip, start, end} in context time.
   */
  enqueue(clip) {
    const ctx = this.context;
    if (!ctx) throw new Error("ensureContext() first");
    const length = Math.min(clip.buffer.duration, clip.duration || clip.buffer.duration);
    const fade = Math.min(this.crossfade, length / 4);
    const earliest = ctx.currentTime + this.startDelay;
    // Join the previous clip if it is still playing; after a gap start afresh.
    const joins = this.tail - fade >= earliest;
    const start = joins ? this.tail - fade : earliest;
    const end = start + length;

    const source = ctx.createBufferSource();
    source.buffer = clip.buffer;
    const gain = ctx.createGain();
    // Linear ramps in and out; two overlapping linear ramps sum to a constant gain, so the
    // crossfade neither dips nor bumps on correlated material (consecutive clips are).
    gain.gain.setValueAtTime(0, start);
    gain.gain.linearRampToValueAtTime(1, start + fade);
    gain.gain.setValueAtTime(1, end - fade);
    gain.gain.linearRampToValueAtTime(0, end);
    source.connect(gain).connect(this.master);
    source.start(start, 0, length);

    const offset = joins ? this.musicTail - fade : this.musicTail;
    const entry = { clip, start, end, source, gain, offset, started: false };
    this.entries.push(entry);
    this.tail = end;
    this.musicTail = offset + length;
    this.starved = false;
    this.tick();
    return entry;
  }

  /** Seconds of music played so far (what a "time" display shows). */
  get position() {
    const now = this.now;
    const playing = this.entries.find((e) => e.start <= now && now < e.end);
    if (playing) return playing.offset + (now - playing.start);
    const done = this.lastFinished;
    return done ? done.offset + (done.end - done.start) : 0;
  }

  /** Seconds of audio scheduled after now. */
  get buffered() {
    return Math.max(0, this.tail - this.now);
  }

  async pause() {
    this.userPaused = true;
    if (this.context && this.context.state === "running") await this.context.suspend();
    this.emit("statechange");
  }

  async resume() {
    this.userPaused = false;
    if (this.context && this.context.state !== "running") await this.context.resume();
    this.emit("statechange");
  }

  /** Stop and forget everything scheduled (a new jam starts from silence). */
  clear() {
    for (const entry of this.entries) {
      try {
        entry.source.stop();
      } catch {
        // never started: nothing to stop
      }
      entry.source.disconnect();
    }
    this.entries = [];
    this.tail = this.now;
    this.current = null;
    this.lastFinished = null;
    this.starved = false;
  }

  tick() {
    const now = this.now;
    for (const entry of this.entries) {
      if (!entry.started && entry.start <= now) {
        entry.started = true;
        this.current = entry;
        this.emit("clipstart", entry);
      }
    }
    while (this.entries.length && this.entries[0].end <= now) {
      const entry = this.entries.shift();
      entry.source.disconnect();
      this.lastFinished = entry;
      this.emit("clipend", entry);
    }
    const starved = this.lastFinished !== undefined && this.lastFinished !== null && !this.entries.length;
    if (starved && !this.starved) {
      this.current = null;
      this.starved = true;
      this.emit("starved");
    }
  }

  emit(type, detail = null) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
