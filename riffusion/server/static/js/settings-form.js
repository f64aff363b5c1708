// The jam's settings card: seed image (from GET /api/seeds), mask, trained style (from GET
// /api/loras), preset (from GET /api/presets), denoising, guidance, steps, alpha velocity and seed.
// Emits "change" with detail {name: value} for what the user changed.

import { getLoras, getMasks, getPresets, getSeeds, seedImageUrl } from "./api.js";
import { DEFAULTS, MAX_SEED, randomSeed } from "./settings.js";

const FORMAT = {
  denoising: (v) => v.toFixed(2),
  guidance: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)),
  numInferenceSteps: (v) => String(v),
  alphaVelocity: (v) => v.toFixed(2),
};

export class SettingsForm extends EventTarget {
  constructor(form, initial) {
    super();
    this.form = form;
    this.values = { ...initial };
    this.inputs = {
      seedImageId: form.querySelector("#seed-image"),
      maskImageId: form.querySelector("#mask-image"),
      lora: form.querySelector("#lora"),
      preset: form.querySelector("#preset"),
      denoising: form.querySelector("#denoising"),
      guidance: form.querySelector("#guidance"),
      numInferenceSteps: form.querySelector("#steps"),
      alphaVelocity: form.querySelector("#alpha-velocity"),
      seed: form.querySelector("#seed"),
    };
    this.thumb = form.querySelector("#seed-thumb");
    this.presetHint = form.querySelector("#preset-hint");
    // The server's presets ({name, summary, steps, max_steps, guided}) and the one it runs by
    // default; until they are known, the original path's.
    this.presets = [{ name: "quality", summary: "", steps: DEFAULTS.numInferenceSteps, max_steps: 150, guided: true }];
    this.defaultPreset = "quality";
    form.addEventListener("submit", (event) => event.preventDefault());

    for (const [name, input] of Object.entries(this.inputs)) {
      // Sliders show their value while dragging but only send it once released.
      if (input.type === "range") input.addEventListener("input", () => this.showValue(name));
      input.addEventListener("change", () => this.read(name));
    }
    form.querySelector("#seed-dice").addEventListener("click", () => {
      this.inputs.seed.value = String(randomSeed());
      this.read("seed");
    });
    this.render();
  }

  /** Fill the seed image, mask, style and preset menus from the server; unknown saved ids fall
   * back. */
  async loadOptions() {
    const [seeds, masks, presets, loras] = await Promise.allSettled([getSeeds(), getMasks(), getPresets(), getLoras()]);
    this.loadPresets(presets.status === "fulfilled" ? presets.value : null);
    const select = this.inputs.seedImageId;
    select.replaceChildren();
    const seedList = seeds.status === "fulfilled" ? seeds.value.seeds || [] : [];
    for (const seed of seedList) {
      const option = new Option(seed.id, seed.id);
      const bpm = seed.bpm ? ` · ${Math.round(seed.bpm)} bpm` : "";
      option.title = `${seed.description || seed.id}${bpm}`;
      select.append(option);
    }
    if (!seedList.length) select.append(new Option(this.values.seedImageId, this.values.seedImageId));
    const ids = seedList.map((s) => s.id);
    if (ids.length && !ids.includes(this.values.seedImageId)) {
      this.values.seedImageId = seeds.value.default || ids[0];
    }
    this.seeds = seedList;

    const maskSelect = this.inputs.maskImageId;
    const maskList = masks.status === "fulfilled" ? masks.value.masks || [] : [];
    for (const mask of maskList) {
      const option = new Option(mask.description ? `${mask.id}: ${mask.description}` : mask.id, mask.id);
      maskSelect.append(option);
    }
    if (this.values.maskImageId && !maskList.some((m) => m.id === this.values.maskImageId)) {
      this.values.maskImageId = null;
    }
    maskSelect.closest(".field").hidden = maskList.length === 0;

    // Servers without named LoRAs (or older ones) keep the style field hidden.
    const loraIds = loras.status === "fulfilled" ? loras.value.loras || [] : [];
    for (const id of loraIds) this.inputs.lora.append(new Option(id, id));
    if (this.values.lora && !loraIds.includes(this.values.lora)) this.values.lora = null;
    this.inputs.lora.closest(".field").hidden = loraIds.length === 0;
    this.render();
  }

  /** The preset menu from GET /api/presets (its field stays hidden on servers without presets). */
  loadPresets(listed) {
    const select = this.inputs.preset;
    const known = listed && Array.isArray(listed.presets) && listed.presets.length;
    select.closest(".field").hidden = !known;
    if (!known) return;
    this.presets = listed.presets;
    this.defaultPreset = listed.default || this.presets[0].name;
    select.replaceChildren();
    for (const preset of this.presets) {
      const option = new Option(preset.name === this.defaultPreset ? `${preset.name} (server default)` : preset.name, preset.name);
      option.title = preset.summary;
      select.append(option);
    }
    if (this.values.preset !== null && !this.presets.some((p) => p.name === this.values.preset)) {
      this.values.preset = null;
    }
    // A preset runs at its own step count unless a link asked for steps (within its limit).
    const preset = this.preset();
    if (this.values.numInferenceSteps === DEFAULTS.numInferenceSteps) this.values.numInferenceSteps = preset.steps;
    this.values.numInferenceSteps = Math.min(this.values.numInferenceSteps, preset.max_steps);
  }

  /** The preset the jam runs: the one chosen, else the server's. */
  preset() {
    const name = this.values.preset ?? this.defaultPreset;
    return this.presets.find((p) => p.name === name) || this.presets[0];
  }

  render() {
    const { inputs, values } = this;
    inputs.seedImageId.value = values.seedImageId;
    inputs.maskImageId.value = values.maskImageId || "";
    inputs.lora.value = values.lora || "";
    const preset = this.preset();
    inputs.preset.value = preset.name;
    if (this.presetHint) this.presetHint.textContent = preset.summary || "How much work each clip gets";
    inputs.numInferenceSteps.max = String(Math.min(150, preset.max_steps));
    // Without guidance (realtime), the guidance scale has no effect.
    inputs.guidance.disabled = !preset.guided;
    inputs.denoising.value = values.denoising;
    inputs.guidance.value = values.guidance;
    inputs.numInferenceSteps.value = values.numInferenceSteps;
    inputs.alphaVelocity.value = values.alphaVelocity;
    inputs.seed.value = values.seed === null ? "" : String(values.seed);
    for (const name of Object.keys(FORMAT)) this.showValue(name);
    this.showThumb();
  }

  showValue(name) {
    const output = this.form.querySelector(`#${this.inputs[name].id}-out`);
    if (output) output.textContent = FORMAT[name](Number(this.inputs[name].value));
  }

  showThumb() {
    const id = this.values.seedImageId;
    if (id) {
      this.thumb.src = seedImageUrl(id);
      this.thumb.alt = `Seed image ${id}`;
    }
  }

  read(name) {
    const input = this.inputs[name];
    let value;
    if (name === "seedImageId") value = input.value;
    else if (name === "maskImageId" || name === "lora") value = input.value || null;
    else if (name === "preset") value = input.value;
    else if (name === "seed") {
      const number = Math.round(Number(input.value));
      value = input.value === "" || !Number.isFinite(number) ? null : Math.min(MAX_SEED, Math.max(0, number));
      input.value = value === null ? "" : String(value);
    } else value = Number(input.value);
    if (value === this.values[name]) return;
    if (name === "preset") {
      this.choosePreset(value);
      return;
    }
    this.values[name] = value;
    if (name === "seedImageId") this.showThumb();
    this.dispatchEvent(new CustomEvent("change", { detail: { [name]: value } }));
  }

  /** A preset brings its own step count; both change together. */
  choosePreset(name) {
    this.values.preset = name;
    this.values.numInferenceSteps = this.preset().steps;
    this.render();
    const detail = { preset: name, numInferenceSteps: this.values.numInferenceSteps };
    this.dispatchEvent(new CustomEvent("change", { detail }));
  }

  /** Set values without announcing them (used when a jam starts with a drawn seed). */
  set(values) {
    Object.assign(this.values, values);
    this.render();
  }

  reset() {
    const changed = {};
    // Back to the server's preset, named (the jam under way must hear of it), at its steps.
    const preset = this.values.preset === null ? null : this.defaultPreset;
    const steps = (this.presets.find((p) => p.name === this.defaultPreset) || this.presets[0]).steps;
    const defaults = { ...DEFAULTS, preset, numInferenceSteps: steps };
    for (const [name, value] of Object.entries(defaults)) {
      if (name !== "seed" && this.values[name] !== value) changed[name] = value;
    }
    if (this.seeds && this.seeds.length && !this.seeds.some((s) => s.id === DEFAULTS.seedImageId)) {
      delete changed.seedImageId;
    }
    Object.assign(this.values, changed);
    this.render();
    if (Object.keys(changed).length) this.dispatchEvent(new CustomEvent("change", { detail: changed }));
  }
}
