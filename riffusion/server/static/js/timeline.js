// The spectrogram timeline: each clip's spectrogram as a 3D height map (loud = high), laid out
// along time and scrolling past a translucent playhead. Plain WebGL2, no library: one grid mesh
// shared by every clip, displaced in the vertex shader by the clip's spectrogram texture.
// Where WebGL2 is missing, a flat 2D canvas version shows the same timeline.

const SECONDS_BEHIND = 7; // played audio kept in view, left of the playhead
const SECONDS_AHEAD = 14; // buffered audio in view, right of it
const DEPTH = 5.5; // world units from the lowest (front) to the highest frequency (back)
const HEIGHT = 0.85; // world height of the loudest pixel
const GRID_U = 200; // mesh columns per clip (time)
const GRID_V = 120; // mesh rows per clip (frequency)
const BACKGROUND = [0.043, 0.051, 0.094]; // the page's --bg, so the canvas blends in

const TERRAIN_VS = `#version 300 es
in vec2 aGrid; // u: time 0..1 within the clip, v: frequency 0 (low) .. 1 (high)
uniform sampler2D uSpec;
uniform mat4 uViewProj;
uniform float uX0, uWidth, uDepth, uHeight;
uniform vec2 uStep;
uniform float uLod;
out vec3 vWorld;
out vec3 vNormal;
out float vLevel;

float level(vec2 uv) {
  // Spectrogram pixels are dark where loud; stereo images keep the channels in G and B.
  // Sampled from a mipmap level near the mesh's own resolution, so the terrain is not aliased.
  vec3 c = textureLod(uSpec, uv, uLod).rgb;
  float dark = 1.0 - 0.5 * (c.g + c.b);
  // Real spectrograms sit at 0.25-0.5 darkness almost everywhere (pixels are amplitude^0.25):
  // flatten that floor so the loud parts stand out as ridges and peaks.
  return pow(clamp((dark - 0.22) / 0.66, 0.0, 1.0), 1.4);
}

void main() {
  vec2 uv = vec2(aGrid.x, 1.0 - aGrid.y); // image row 0 is the top: the highest frequency
  float h = level(uv);
  // Normals from neighbouring texels give the terrain its shading.
  float hx = level(uv + vec2(uStep.x, 0.0)) - level(uv - vec2(uStep.x, 0.0));
  float hz = level(uv - vec2(0.0, uStep.y)) - level(uv + vec2(0.0, uStep.y));
  vec3 dx = vec3(2.0 * uStep.x * uWidth, hx * uHeight, 0.0);
  vec3 dz = vec3(0.0, hz * uHeight, -2.0 * uStep.y * uDepth);
  vNormal = normalize(cross(dz, dx));
  vLevel = h;
  vWorld = vec3(uX0 + aGrid.x * uWidth, h * uHeight, -aGrid.y * uDepth);
  gl_Position = uViewProj * vec4(vWorld, 1.0);
}`;

const TERRAIN_FS = `#version 300 es
precision highp float;
in vec3 vWorld;
in vec3 vNormal;
in float vLevel;
uniform vec3 uBackground;
uniform float uBehind, uAhead;
out vec4 outColor;

vec3 palette(float t) {
  // Night blue -> violet -> coral -> warm white: quiet is dark, loud glows.
  vec3 a = vec3(0.10, 0.13, 0.30);
  vec3 b = vec3(0.42, 0.24, 0.62);
  vec3 c = vec3(1.00, 0.48, 0.38);
  vec3 d = vec3(1.00, 0.90, 0.70);
  if (t < 0.35) return mix(a, b, t / 0.35);
  if (t < 0.7) return mix(b, c, (t - 0.35) / 0.35);
  return mix(c, d, (t - 0.7) / 0.3);
}

void main() {
  vec3 light = normalize(vec3(-0.4, 0.9, 0.5));
  float diffuse = max(dot(normalize(vNormal), light), 0.0);
  vec3 color = palette(clamp(vLevel * 1.35, 0.0, 1.0)) * (0.45 + 0.75 * diffuse);
  // Faint second marks along time, like a ruler on the floor.
  float tick = smoothstep(0.03, 0.0, abs(fract(vWorld.x) - 0.5) - 0.47);
  color += tick * 0.05;
  // What has played is dimmed; the playhead's neighbourhood is lit.
  if (vWorld.x < 0.0) color = mix(color, vec3(dot(color, vec3(0.33))), 0.55) * 0.7;
  color += vec3(0.35, 0.30, 0.25) * exp(-abs(vWorld.x) * 3.0) * (0.3 + vLevel);
  // Fade into the background towards both ends of the view and towards the back.
  float fadeX = vWorld.x < 0.0 ? smoothstep(-uBehind, -uBehind * 0.55, vWorld.x)
                               : smoothstep(uAhead, uAhead * 0.6, vWorld.x);
  float fadeZ = smoothstep(-${DEPTH.toFixed(1)} - 0.5, -${(DEPTH * 0.55).toFixed(2)}, vWorld.z);
  outColor = vec4(mix(uBackground, color, fadeX * (0.55 + 0.45 * fadeZ)), 1.0);
}`;

const FLAT_VS = `#version 300 es
in vec3 aPosition;
uniform mat4 uViewProj;
out vec3 vPosition;
void main() {
  vPosition = aPosition;
  gl_Position = uViewProj * vec4(aPosition, 1.0);
}`;

const FLAT_FS = `#version 300 es
precision highp float;
in vec3 vPosition;
uniform vec4 uColor;
uniform float uTop;
out vec4 outColor;
void main() {
  // Brighter towards the floor, so the playhead reads as light rising from the terrain.
  float fade = 1.0 - 0.7 * clamp(vPosition.y / uTop, 0.0, 1.0);
  outColor = vec4(uColor.rgb, uColor.a * fade);
}`;

// ---- small matrix helpers (column-major, as WebGL expects) ----

function perspective(fovY, aspect, near, far) {
  const f = 1 / Math.tan(fovY / 2);
  const nf = 1 / (near - far);
  return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
}

function lookAt(eye, target, up) {
  const sub = (a, b) => a.map((v, i) => v - b[i]);
  const norm = (a) => a.map((v) => v / Math.hypot(...a));
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const z = norm(sub(eye, target));
  const x = norm(cross(up, z));
  const y = cross(z, x);
  return [x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0, -dot(x, eye), -dot(y, eye), -dot(z, eye), 1];
}

function multiply(a, b) {
  const out = new Array(16).fill(0);
  for (let col = 0; col < 4; col += 1) {
    for (let row = 0; row < 4; row += 1) {
      for (let k = 0; k < 4; k += 1) out[col * 4 + row] += a[k * 4 + row] * b[col * 4 + k];
    }
  }
  return out;
}

/**
 * Camera for the canvas's shape. Wide screens look at the timeline from the side, time running
 * left to right past the playhead. Tall screens (phones) fly over it from behind the playhead,
 * the future coming towards the viewer, so the frequencies span the narrow width.
 */
function viewProjection(aspect) {
  if (aspect < 1.1) {
    const eye = [-5.0, 4.5, -DEPTH * 0.5];
    const target = [3.0, 0, -DEPTH * 0.5];
    // Widen the view on narrower screens so the full frequency range stays in the picture.
    const fov = Math.min(75, (2 * Math.atan(Math.tan(Math.PI / 6) * (0.8 / aspect)) * 180) / Math.PI);
    return multiply(perspective((fov * Math.PI) / 180, aspect, 0.1, 60), lookAt(eye, target, [0, 1, 0]));
  }
  const targetX = 3.2;
  const eye = [targetX - 0.6, 7.2, 3.6];
  const target = [targetX, 0, -DEPTH * 0.5];
  return multiply(perspective((44 * Math.PI) / 180, aspect, 0.1, 60), lookAt(eye, target, [0, 1, 0]));
}

// ---- WebGL renderer ----

function compile(gl, vertex, fragment) {
  const program = gl.createProgram();
  for (const [type, source] of [
    [gl.VERTEX_SHADER, vertex],
    [gl.FRAGMENT_SHADER, fragment],
  ]) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error(`shader: ${gl.getShaderInfoLog(shader)}`);
    }
    gl.attachShader(program, shader);
  }
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
    throw new Error(`program: ${gl.getProgramInfoLog(program)}`);
  }
  const uniforms = {};
  const count = gl.getProgramParameter(program, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < count; i += 1) {
    const { name } = gl.getActiveUniform(program, i);
    uniforms[name] = gl.getUniformLocation(program, name);
  }
  return { program, uniforms };
}

class WebGLTimeline {
  constructor(canvas, gl) {
    this.canvas = canvas;
    this.gl = gl;
    this.init();
  }

  init() {
    const gl = this.gl;
    this.terrain = compile(gl, TERRAIN_VS, TERRAIN_FS);
    this.flat = compile(gl, FLAT_VS, FLAT_FS);

    // The shared grid: GRID_U x GRID_V vertices over [0,1]^2, as indexed triangles.
    const vertices = new Float32Array(GRID_U * GRID_V * 2);
    for (let j = 0; j < GRID_V; j += 1) {
      for (let i = 0; i < GRID_U; i += 1) {
        vertices.set([i / (GRID_U - 1), j / (GRID_V - 1)], (j * GRID_U + i) * 2);
      }
    }
    const indices = new Uint16Array((GRID_U - 1) * (GRID_V - 1) * 6);
    let n = 0;
    for (let j = 0; j < GRID_V - 1; j += 1) {
      for (let i = 0; i < GRID_U - 1; i += 1) {
        const a = j * GRID_U + i;
        indices.set([a, a + 1, a + GRID_U, a + 1, a + GRID_U + 1, a + GRID_U], n);
        n += 6;
      }
    }
    this.indexCount = indices.length;
    this.gridVao = gl.createVertexArray();
    gl.bindVertexArray(this.gridVao);
    gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ARRAY_BUFFER, vertices, gl.STATIC_DRAW);
    const grid = gl.getAttribLocation(this.terrain.program, "aGrid");
    gl.enableVertexAttribArray(grid);
    gl.vertexAttribPointer(grid, 2, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, indices, gl.STATIC_DRAW);

    // The playhead: a vertical sheet across the full depth at x = 0, and a floor strip.
    const h = HEIGHT * 1.5;
    const sheet = new Float32Array([
      0, 0, 0, 0, h, 0, 0, 0, -DEPTH, 0, h, -DEPTH,
    ]);
    this.sheetVao = gl.createVertexArray();
    gl.bindVertexArray(this.sheetVao);
    gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ARRAY_BUFFER, sheet, gl.STATIC_DRAW);
    const position = gl.getAttribLocation(this.flat.program, "aPosition");
    gl.enableVertexAttribArray(position);
    gl.vertexAttribPointer(position, 3, gl.FLOAT, false, 0, 0);
    gl.bindVertexArray(null);

    // A blank (white = silent) texture draws the empty floor before any clip arrives.
    this.blank = this.texture(null);
  }

  texture(image) {
    const gl = this.gl;
    const texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, texture);
    if (image) {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, image);
      gl.generateMipmap(gl.TEXTURE_2D);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR_MIPMAP_LINEAR);
    } else {
      const white = new Uint8Array([255, 255, 255, 255]);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, white);
    }
    if (!image) gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    return texture;
  }

  release(clip) {
    if (clip.texture) this.gl.deleteTexture(clip.texture);
    clip.texture = null;
  }

  draw(clips, now, width, height) {
    const gl = this.gl;
    gl.viewport(0, 0, width, height);
    gl.clearColor(...BACKGROUND, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.enable(gl.DEPTH_TEST);
    gl.disable(gl.BLEND);
    gl.depthMask(true);
    const viewProj = viewProjection(width / height);

    const { program, uniforms: u } = this.terrain;
    gl.useProgram(program);
    gl.uniformMatrix4fv(u.uViewProj, false, viewProj);
    gl.uniform1f(u.uDepth, DEPTH);
    gl.uniform1f(u.uHeight, HEIGHT);
    gl.uniform3fv(u.uBackground, BACKGROUND);
    gl.uniform1f(u.uBehind, SECONDS_BEHIND);
    gl.uniform1f(u.uAhead, SECONDS_AHEAD);
    gl.uniform1i(u.uSpec, 0);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindVertexArray(this.gridVao);

    const drawPatch = (texture, x0, span, step, lod = 0) => {
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.uniform1f(u.uLod, lod);
      gl.uniform1f(u.uX0, x0);
      gl.uniform1f(u.uWidth, span);
      gl.uniform2fv(u.uStep, step);
      gl.drawElements(gl.TRIANGLES, this.indexCount, gl.UNSIGNED_SHORT, 0);
    };

    // Empty floor where no clip is (before the first, during gaps): one patch across the view.
    drawPatch(this.blank, -SECONDS_BEHIND, SECONDS_BEHIND + SECONDS_AHEAD, [0.01, 0.01]);
    gl.enable(gl.POLYGON_OFFSET_FILL);
    gl.polygonOffset(-1, -1); // clips win the depth test against the floor they lie on
    for (const clip of clips) {
      const x0 = clip.start - now;
      if (x0 > SECONDS_AHEAD || x0 + clip.duration < -SECONDS_BEHIND) continue;
      clip.texture ||= this.texture(clip.image);
      const w = clip.image.naturalWidth || clip.image.width;
      const h = clip.image.naturalHeight || clip.image.height;
      // One mesh cell covers w / GRID_U texels; read the mipmap level of about that size.
      const lod = Math.max(0, Math.log2(Math.max(w / GRID_U, h / GRID_V)));
      const step = [Math.max(1 / w, 1 / GRID_U), Math.max(1 / h, 1 / GRID_V)];
      drawPatch(clip.texture, x0, clip.duration, step, lod);
    }
    gl.disable(gl.POLYGON_OFFSET_FILL);

    // Translucent playhead: depth-tested so the terrain in front hides it, without writing depth.
    const flat = this.flat;
    gl.useProgram(flat.program);
    gl.uniformMatrix4fv(flat.uniforms.uViewProj, false, viewProj);
    gl.uniform1f(flat.uniforms.uTop, HEIGHT * 1.5);
    gl.uniform4fv(flat.uniforms.uColor, [1.0, 0.78, 0.55, 0.28]);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.depthMask(false);
    gl.bindVertexArray(this.sheetVao);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    gl.depthMask(true);
    gl.bindVertexArray(null);
  }
}

// ---- 2D fallback ----

class FlatTimeline {
  constructor(canvas, context) {
    this.canvas = canvas;
    this.ctx = context;
  }

  release() {}

  draw(clips, now, width, height) {
    const ctx = this.ctx;
    ctx.fillStyle = `rgb(${BACKGROUND.map((v) => Math.round(v * 255)).join(",")})`;
    ctx.fillRect(0, 0, width, height);
    const span = SECONDS_BEHIND + SECONDS_AHEAD;
    const scale = width / span;
    const playX = SECONDS_BEHIND * scale;
    ctx.save();
    // Spectrograms are dark where loud; inverted they read as light on the dark page.
    ctx.filter = "invert(1) sepia(0.6) saturate(2.5) hue-rotate(200deg)";
    for (const clip of clips) {
      const x = playX + (clip.start - now) * scale;
      ctx.globalAlpha = clip.start + clip.duration < now ? 0.45 : 1;
      ctx.drawImage(clip.image, x, 0, clip.duration * scale, height);
    }
    ctx.restore();
    ctx.fillStyle = "rgba(255, 199, 140, 0.25)";
    ctx.fillRect(playX - 3, 0, 6, height);
    ctx.fillStyle = "rgba(255, 199, 140, 0.9)";
    ctx.fillRect(playX - 1, 0, 2, height);
  }
}

// ---- public ----

export class Timeline {
  /**
   * canvas: the element to draw into; clock: () => the audio context time the clips' `start`
   * values are in (it stops while paused, so the timeline stops with the music).
   */
  constructor(canvas, clock) {
    this.canvas = canvas;
    this.clock = clock;
    this.clips = [];
    this.running = false;
    this.renderer = this.createRenderer();
    canvas.addEventListener("webglcontextlost", (event) => {
      // Say we will handle restoring, then rebuild everything on "webglcontextrestored".
      event.preventDefault();
      for (const clip of this.clips) clip.texture = null;
    });
    canvas.addEventListener("webglcontextrestored", () => {
      this.renderer = this.createRenderer();
    });
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
  }

  createRenderer() {
    const gl = this.canvas.getContext("webgl2", { antialias: true, alpha: false });
    if (gl) {
      try {
        this.mode = "webgl2";
        return new WebGLTimeline(this.canvas, gl);
      } catch (error) {
        console.warn("WebGL timeline unavailable, using the 2D one:", error);
      }
    }
    this.mode = "2d";
    return new FlatTimeline(this.canvas, this.canvas.getContext("2d"));
  }

  resize() {
    // Cap the pixel ratio: the terrain is smooth, and phones have 3x screens but small GPUs.
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    const width = Math.max(1, Math.round(this.canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(this.canvas.clientHeight * ratio));
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    if (!this.running) this.frame();
  }

  /** Add a clip: image (a decoded <img>), start (clock time) and duration (seconds). */
  add(clip) {
    this.clips.push({ ...clip, texture: null });
    this.clips.sort((a, b) => a.start - b.start);
  }

  clear() {
    for (const clip of this.clips) this.renderer.release(clip);
    this.clips = [];
    this.frame();
  }

  start() {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      this.frame();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  stop() {
    this.running = false;
  }

  frame() {
    const now = this.clock();
    // Forget clips that have scrolled out of view for good (and free their textures).
    const keep = [];
    for (const clip of this.clips) {
      if (clip.start + clip.duration < now - SECONDS_BEHIND - 1) this.renderer.release(clip);
      else keep.push(clip);
    }
    this.clips = keep;
    this.renderer.draw(this.clips, now, this.canvas.width, this.canvas.height);
  }
}
