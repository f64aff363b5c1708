// A canvas to draw spectrograms on with the mouse, pen or finger. White is silence and dark is
// loud, as in riffusion's spectrogram images; rows are mel-spaced frequencies up to 10 kHz with
// low notes at the bottom, and each pixel column is 10 ms.

const HEIGHT = 512;
const MAX_MEL = hzToMel(10000);
const UNDO_DEPTH = 20;

function hzToMel(hz) {
  return 2595 * Math.log10(1 + hz / 700); // the HTK mel scale the spectrogram images use
}

/** Row (0 = top) of the image where frequency `hz` lies. */
export function rowOfFrequency(hz) {
  return HEIGHT - 1 - Math.round((hzToMel(hz) / MAX_MEL) * (HEIGHT - 1));
}

export class DrawPad {
  constructor(canvas, { onChange } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange || (() => {});
    this.tool = "brush";
    this.size = 8;
    this.ink = 0.85;
    this.undoStack = [];
    this.dirty = false;
    this.clear(false);

    canvas.addEventListener("pointerdown", (event) => this.down(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    canvas.addEventListener("pointerup", (event) => this.up(event));
    canvas.addEventListener("pointercancel", (event) => this.up(event));
    // Drawing with a finger must not scroll the page.
    canvas.style.touchAction = "none";
  }

  get duration() {
    return this.canvas.width / 100;
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / rect.width) * this.canvas.width,
      y: ((event.clientY - rect.top) / rect.height) * this.canvas.height,
    };
  }

  color() {
    const gray = Math.round(255 * (1 - this.ink));
    return this.tool === "eraser" ? "#fff" : `rgb(${gray},${gray},${gray})`;
  }

  down(event) {
    if (event.button !== 0) return;
    this.canvas.setPointerCapture(event.pointerId);
    this.snapshot();
    const point = this.point(event);
    this.stroke = { points: [point], base: this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height) };
    this.path([point]);
  }

  move(event) {
    if (!this.stroke) return;
    const point = this.point(event);
    const { points, base } = this.stroke;
    // The whole stroke is redrawn over the canvas as it was before it, as one path: drawn
    // piecewise, the soft edges of the overlapping pieces would add up to beads.
    if (this.tool === "line") {
      // A held note: a horizontal line at the row where the stroke began.
      points.splice(1, points.length, { x: point.x, y: points[0].y });
    } else {
      points.push(point);
    }
    this.ctx.putImageData(base, 0, 0);
    this.path(points);
  }

  up() {
    if (!this.stroke) return;
    this.stroke = null;
    this.dirty = true;
    this.onChange();
  }

  path(points) {
    const ctx = this.ctx;
    ctx.save();
    // "darken" keeps the loudest of overlapping strokes instead of painting a lighter gray over
    // a darker one; the eraser paints white over anything.
    ctx.globalCompositeOperation = this.tool === "eraser" ? "source-over" : "darken";
    ctx.strokeStyle = this.color();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = this.tool === "line" ? Math.max(2, this.size / 3) : this.size;
    // A soft edge: hard-edged strokes sound like clicks.
    ctx.shadowColor = this.color();
    ctx.shadowBlur = this.tool === "eraser" ? 0 : this.size / 2;
    ctx.beginPath();
    ctx.moveTo(points[0].x, points[0].y);
    // A single point still needs a (tiny) segment to leave a dot.
    if (points.length === 1) ctx.lineTo(points[0].x + 0.01, points[0].y);
    for (const point of points.slice(1)) ctx.lineTo(point.x, point.y);
    ctx.stroke();
    ctx.restore();
  }

  snapshot() {
    this.undoStack.push({ width: this.canvas.width, data: this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height) });
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
  }

  undo() {
    const last = this.undoStack.pop();
    if (!last) return;
    this.canvas.width = last.width;
    this.ctx.putImageData(last.data, 0, 0);
    this.onChange();
  }

  clear(record = true) {
    if (record) this.snapshot();
    this.ctx.fillStyle = "#fff";
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.dirty = false;
    this.onChange();
  }

  /** Load an image; one of another height is scaled to 512 rows (its width follows, up to 30 s). */
  async load(image) {
    this.snapshot();
    const scale = HEIGHT / image.naturalHeight;
    this.canvas.width = Math.max(64, Math.min(3000, Math.round(image.naturalWidth * scale)));
    this.canvas.height = HEIGHT;
    this.ctx.fillStyle = "#fff";
    this.ctx.fillRect(0, 0, this.canvas.width, HEIGHT);
    this.ctx.drawImage(image, 0, 0, this.canvas.width, HEIGHT);
    this.dirty = true;
    this.onChange();
    return scale !== 1;
  }

  /** A starting point: a bass line, a chord held over it and a steady beat. */
  example() {
    this.snapshot();
    this.canvas.width = 512;
    this.clear(false);
    const ctx = this.ctx;
    const line = (hz, x0, x1, gray, width) => {
      ctx.fillStyle = `rgb(${gray},${gray},${gray})`;
      const row = rowOfFrequency(hz);
      ctx.fillRect(x0, row - width / 2, x1 - x0, width);
    };
    ctx.save();
    ctx.globalCompositeOperation = "darken";
    ctx.filter = "blur(1px)";
    const bass = [110, 110, 146.8, 130.8];
    for (let bar = 0; bar < 4; bar += 1) {
      const x0 = bar * 128;
      for (let k = 1; k <= 4; k += 1) line(bass[bar] * k, x0 + 4, x0 + 124, 40 + 40 * k, k === 1 ? 6 : 3);
    }
    for (const hz of [440, 554.4, 659.3]) {
      for (let k = 1; k <= 3; k += 1) line(hz * k, 0, 512, 90 + 45 * k, 3);
    }
    for (let beat = 0; beat < 8; beat += 1) {
      const x = beat * 64 + 2;
      const gradient = ctx.createLinearGradient(0, HEIGHT, 0, HEIGHT - 220);
      gradient.addColorStop(0, "rgb(20,20,20)");
      gradient.addColorStop(1, "rgb(255,255,255)");
      ctx.fillStyle = gradient;
      ctx.fillRect(x, HEIGHT - 220, 7, 220);
    }
    ctx.restore();
    this.dirty = true;
    this.onChange();
  }

  toDataUrl() {
    return this.canvas.toDataURL("image/png");
  }
}
