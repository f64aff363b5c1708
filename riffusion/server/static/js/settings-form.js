// The jam's settings card: seed image (from GET /api/seeds), mask, denoising, guidance, steps,
// alpha velocity and seed. Emits "change" with detail {name: value} for what the user changed.

import { getMasks, getSeeds, seedImageUrl } from "./api.js";
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
      denoising: form.querySelector("#denoising"),
      guidance: form.querySelector("#guidance"),
      numInferenceSteps: form.querySelector("#steps"),
      alphaVelocity: form.querySelector("#alpha-velocity"),
      seed: form.querySelector("#seed"),
    };
    this.thumb = form.querySelector("#seed-thumb");
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

  /** Fill the seed image and mask menus from the server; unknown saved ids fall back. */
  async loadOptions() {
    const [seeds, masks] = await Promise.allSettled([getSeeds(), getMasks()]);
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
    this.render();
  }

  render() {
    const { inputs, values } = this;
    inputs.seedImageId.value = values.seedImageId;
    inputs.maskImageId.value = values.maskImageId || "";
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
    else if (name === "maskImageId") value = input.value || null;
    else if (name === "seed") {
      const number = Math.round(Number(input.value));
      value = input.value === "" || !Number.isFinite(number) ? null : Math.min(MAX_SEED, Math.max(0, number));
      input.value = value === null ? "" : String(value);
    } else value = Number(input.value);
    if (value === this.values[name]) return;
    this.values[name] = value;
    if (name === "seedImageId") this.showThumb();
    this.dispatchEvent(new CustomEvent("change", { detail: { [name]: value } }));
  }

  /** Set values without announcing them (used when a jam starts with a drawn seed). */
  set(values) {
    Object.assign(this.values, values);
    this.render();
  }

  reset() {
    const changed = {};
    for (const [name, value] of Object.entries(DEFAULTS)) {
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
