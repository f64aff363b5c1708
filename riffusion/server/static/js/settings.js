// Jam settings: their defaults and limits (docs/api.md), and their form in share URLs.
// URL parameter names are the original riffusion app's (?prompt=...&denoising=0.85&seedImageId=...)
// so links made for it keep working here.

export const MAX_SEED = 4294967295;

export const DEFAULTS = Object.freeze({
  denoising: 0.75,
  guidance: 7.0,
  numInferenceSteps: 50,
  seedImageId: "og_beat",
  maskImageId: null,
  alphaVelocity: 0.25,
  seed: null, // null: a random seed when the jam starts, as the original did
  preset: null, // null: the server's preset (GET /api/presets), with its step count
  lora: null, // null: the model alone; else an id from GET /api/loras
});

// name in the app -> [URL parameter, wire field, parse]
const FIELDS = {
  denoising: ["denoising", "denoising", (v) => clampNumber(v, 0, 1)],
  guidance: ["guidance", "guidance", (v) => clampNumber(v, 0, 30)],
  numInferenceSteps: ["numInferenceSteps", "num_inference_steps", (v) => clampInt(v, 1, 150)],
  seedImageId: ["seedImageId", "seed_image_id", parseId],
  maskImageId: ["maskImageId", "mask_image_id", parseId],
  alphaVelocity: ["alphaVelocity", "alpha_velocity", (v) => clampNumber(v, 0.01, 1)],
  seed: ["seed", "seed", (v) => clampInt(v, 0, MAX_SEED)],
  preset: ["preset", "preset", parsePreset],
  lora: ["lora", "lora", parseId],
};

// Settings left out of the wire while null: a random seed, the server's preset, no style (so the
// messages stay those of servers without named LoRAs).
const UNSENT_WHEN_NULL = new Set(["seed", "preset", "lora"]);

function clampNumber(value, low, high) {
  const number = Number(value);
  if (value === null || value === "" || !Number.isFinite(number)) return undefined;
  return Math.min(high, Math.max(low, number));
}

function clampInt(value, low, high) {
  const number = clampNumber(value, low, high);
  return number === undefined ? undefined : Math.round(number);
}

function parsePreset(value) {
  const text = String(value).trim().toLowerCase();
  // The names are the server's to check; this only keeps junk out of the form.
  return /^[a-z]{1,20}$/.test(text) ? text : undefined;
}

function parseId(value) {
  if (value === null || value === undefined) return undefined;
  const text = String(value).trim();
  // "none"/"null" come from links that spell out an absent mask.
  if (text === "" || text === "none" || text === "null") return null;
  return /^[\w.-]{1,100}$/.test(text) ? text : undefined;
}

/** Prompt and settings from a query string; settings absent or unusable keep their defaults. */
export function stateFromQuery(search) {
  const params = new URLSearchParams(search);
  const settings = { ...DEFAULTS };
  for (const [name, [param, , parse]] of Object.entries(FIELDS)) {
    if (!params.has(param)) continue;
    const value = parse(params.get(param));
    if (value !== undefined) settings[name] = value;
  }
  const prompt = (params.get("prompt") || "").trim().slice(0, 1000);
  return { prompt, settings };
}

/** A URL that restores prompt and settings: the page's own address with a fresh query. */
export function shareUrl(base, prompt, settings) {
  const url = new URL(base);
  url.search = "";
  url.hash = "";
  if (prompt) url.searchParams.set("prompt", prompt);
  for (const [name, [param]] of Object.entries(FIELDS)) {
    const value = settings[name];
    if (value === null || value === undefined) continue;
    url.searchParams.set(param, String(value));
  }
  return url.toString();
}

/** Settings as the jam WebSocket expects them (snake_case; an absent seed, preset or style left
 * out). */
export function settingsToWire(settings) {
  const wire = {};
  for (const [name, [, field]] of Object.entries(FIELDS)) {
    const value = settings[name];
    if (value === undefined || (UNSENT_WHEN_NULL.has(name) && value === null)) continue;
    wire[field] = value;
  }
  return wire;
}

export function randomSeed() {
  // The original app's range: small numbers are easy to read out and type back.
  return Math.floor(Math.random() * 1000000);
}
