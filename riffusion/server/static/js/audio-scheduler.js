// Sample-exact playback of the jam's audio through the Web Audio API.
//
// The server sends the jam as one continuous waveform cut into pieces, one per clip (docs/api.md,
// "Audio of the jam's clips"). Each piece is scheduled on the AudioContext's own clock the moment
// it arrives, on the very frame where the previous one ends, with no crossfade: back to back, the
// pieces are the waveform they were cut from. Playback never depends on timers firing on time, so
// a busy or background tab still plays seamlessly. Pause suspends the context, which freezes that
// clock, so resuming continues exactly where it stopped.
//
// A piece that does not carry on from the previous one (the first of a new jam), or that arrives
// too late to join it (generation fell behind: the music ran out), starts a new run: it fades in
// over FADE_S, after silence. The end of every run is set to fade out over its last FADE_S in case
// nothing joins it; a piece that joins in time cancels that fade before it begins.
//
// Events: "clipstart" (detail: the entry whose image started playing), "clipend", "starved"
// (nothing left to play), "statechange".

const FADE_S = 0.01; // fade-in of a new run, and fade-out of a run nothing joined
const LOG_LENGTH = 200; // entries kept in `log`

export class AudioScheduler extends EventTarget {
  /**
   * startDelay: headroom (s) before the first piece of a run, so that it is not scheduled in the
   * past. joinLead: how far ahead (s) a run's fade-out must still be for a piece to join it.
   * sampleRate: of the context (the stream's, so that decoding never resamples a piece on its own).
   * context: an existing (for example offline) AudioContext to play through.
   */
  constructor({ startDelay = 0.12, joinLead = 0.05, sampleRate = 44100, context = null } = {}) {
    super();
    this.startDelay = startDelay;
    this.joinLead = joinLead;
    this.sampleRate = sampleRate;
    this.context = null;
    this.master = null;
    this.entries = []; // scheduled, not yet finished: see enqueue()
    this.log = []; // what was scheduled, newest last (for the browser tests and debugging)
    this.run = null; // the run the next piece may join: {gain, endFrame}
    this.musicTail = 0; // seconds of music scheduled so far
    this.current = null;
    this.lastFinished = null;
    this.starved = false;
    this.timer = null;
    if (context) this.attach(context);
  }

  attach(context) {
    this.context = context;
    this.master = context.createGain();
    this.master.connect(context.destination);
    context.addEventListener("statechange", () => this.emit("statechange"));
    this.timer = setInterval(() => this.tick(), 50);
  }

  /** Create or resume the AudioContext. Call from a user gesture (a click, a key press). */
  async ensureContext() {
    if (!this.context) {
      const Context = window.AudioContext || window.webkitAudioContext;
      this.attach(new Context({ latencyHint: "playback", sampleRate: this.sampleRate }));
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
   * Schedule a decoded piece after everything already scheduled.
   *
   * clip: {buffer: AudioBuffer, continues: whether its audio carries on from the previous piece's,
   * imageOffset: seconds from the piece's first sample to its clip's image, imageDuration: seconds
   * the image lasts, ...anything}. Returns the entry: {clip, start, end (the audio's context
   * times), imageStart, imageEnd, startFrame, frames, joined, ...}.
   */
  enqueue(clip) {
    const ctx = this.context;
    if (!ctx) throw new Error("ensureContext() first");
    const rate = ctx.sampleRate;
    const frames = clip.buffer.length;
    const fadeFrames = Math.round(FADE_S * rate);
    const run = this.run;
    // Join only while the run's fade-out is still ahead by joinLead: cancelling it then is safe.
    const joined = Boolean(clip.continues && run && (run.endFrame - fadeFrames) / rate >= ctx.currentTime + this.joinLead);
    let startFrame;
    let gain;
    if (joined) {
      startFrame = run.endFrame;
      gain = run.gain;
      gain.gain.cancelScheduledValues((run.endFrame - fadeFrames) / rate);
    } else {
      // A new run: after silence, or after whatever is still scheduled (its end fades out).
      const earliest = Math.ceil((ctx.currentTime + this.startDelay) * rate);
      startFrame = Math.max(earliest, run ? run.endFrame : 0);
      if (run && !this.entries.some((e) => e.gain === run.gain)) run.gain.disconnect();
      gain = ctx.createGain();
      gain.connect(this.master);
      // Silent until the fade-in, including the first frame, which the fade's start time (a
      // frame / rate rounded to a double) can miss by a hair.
      gain.gain.value = 0;
      gain.gain.setValueAtTime(0, startFrame / rate);
      gain.gain.linearRampToValueAtTime(1, (startFrame + fadeFrames) / rate);
    }
    const endFrame = startFrame + frames;
    // Fade out at the end unless the next piece joins (it cancels this).
    gain.gain.setValueAtTime(1, (endFrame - fadeFrames) / rate);
    gain.gain.linearRampToValueAtTime(0, endFrame / rate);
    this.run = { gain, endFrame };

    const source = ctx.createBufferSource();
    source.buffer = clip.buffer;
    source.connect(gain);
    const start = startFrame / rate;
    source.start(start);

    const end = endFrame / rate;
    const imageStart = start + (clip.imageOffset || 0);
    const imageEnd = imageStart + (clip.imageDuration ?? clip.buffer.duration);
    const entry = { clip, start, end, imageStart, imageEnd, startFrame, frames, joined, source, gain, offset: this.musicTail, started: false };
    this.entries.push(entry);
    this.log.push({ index: clip.index ?? null, epoch: clip.epoch ?? null, startFrame, frames, joined, sampleRate: rate });
    if (this.log.length > LOG_LENGTH) this.log.shift();
    this.musicTail += frames / rate;
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
    return this.run ? Math.max(0, this.run.endFrame / this.context.sampleRate - this.now) : 0;
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
    if (this.run) this.run.gain.disconnect();
    this.entries = [];
    this.run = null;
    this.current = null;
    this.lastFinished = null;
    this.starved = false;
  }

  tick() {
    const now = this.now;
    for (const entry of this.entries) {
      // The clip starts with its image, which its piece of audio leads by the stream's offset.
      if (!entry.started && entry.imageStart <= now) {
        entry.started = true;
        this.current = entry;
        this.emit("clipstart", entry);
      }
    }
    while (this.entries.length && this.entries[0].end <= now) {
      const entry = this.entries.shift();
      entry.source.disconnect();
      // A finished run's gain node goes with its last piece.
      const inUse = (this.run && this.run.gain === entry.gain) || this.entries.some((e) => e.gain === entry.gain);
      if (!inUse) entry.gain.disconnect();
      this.lastFinished = entry;
      this.emit("clipend", entry);
    }
    const starved = this.lastFinished !== null && !this.entries.length;
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
