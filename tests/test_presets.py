"""Generation presets on the tiny checkpoint: DeepCache, the fast and realtime paths, their weights.

Quality cannot be heard on random weights; these tests pin the mechanics: DeepCache's full steps
are the UNet's exact output, the presets are deterministic and batch like single requests, the
LCM path is diffusers' own LCM sampling, TAESD keeps the image's size and EXIF, and missing
weights fail with one line that says what to do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from riffusion import InferenceInput, PromptInput, RiffusionPipeline
from riffusion.diffusion import presets
from riffusion.diffusion.batch import Cancelled, RiffuseRequest
from riffusion.diffusion.deep_cache import DeepCacheUNet
from riffusion.diffusion.interpolation import lerp
from riffusion.diffusion.preset_weights import PresetWeights
from riffusion.diffusion.presets import (
    FAST,
    PRESETS,
    REALTIME,
    DeepCacheSettings,
    get_preset,
    resolve_preset,
)
from riffusion.errors import RiffusionError
from riffusion.seeds.images import TempoTag
from riffusion.spectrogram.params import ExifTag

SIZE = 128
START = PromptInput("lofi hip hop beat", seed=1, negative_prompt="noise", guidance=7.0)
END = PromptInput("church bells", seed=2, guidance=3.0, denoising=0.5)


@pytest.fixture(scope="module")
def seed_image() -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def inputs(preset: str, steps: int | None = None, alpha: float = 0.4) -> InferenceInput:
    recipe = get_preset(preset)
    return InferenceInput(
        start=START,
        end=END,
        alpha=alpha,
        num_inference_steps=recipe.steps if steps is None else steps,
        preset=recipe.name,
    )


# --- DeepCache ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unet_call(tiny_pipeline: RiffusionPipeline) -> dict:
    torch.manual_seed(0)
    mask = torch.ones(2, 77)
    mask[1, 40:] = 0
    return {
        "sample": torch.randn(2, 4, 16, 16),
        "text": torch.randn(2, 77, tiny_pipeline.text_encoder.config.hidden_size),
        "mask": mask,
    }


@pytest.mark.parametrize("masked", [False, True])
def test_deep_cache_interval_1_is_the_exact_unet(
    tiny_pipeline: RiffusionPipeline, unet_call: dict, masked: bool
) -> None:
    unet = tiny_pipeline.unet
    mask = unet_call["mask"] if masked else None
    runner = DeepCacheUNet(unet, interval=1, shallow_layers=1)
    with torch.no_grad():
        for step, timestep in enumerate((900, 500, 100)):
            exact = unet(
                unet_call["sample"],
                timestep,
                encoder_hidden_states=unet_call["text"],
                encoder_attention_mask=mask,
            ).sample
            assert runner.is_full_step(step)
            got = runner(step, unet_call["sample"], timestep, unet_call["text"], mask)
            assert torch.equal(got, exact)


@pytest.mark.parametrize("shallow_layers", [1, 2, 5, 11])
def test_the_shallow_branch_on_the_cached_step_is_exact(
    tiny_pipeline: RiffusionPipeline, unet_call: dict, shallow_layers: int
) -> None:
    """Run on the very inputs that filled the cache, the shallow branch recomputes exactly the
    full output: it reads the right cached state and the right skip connections."""
    runner = DeepCacheUNet(tiny_pipeline.unet, interval=3, shallow_layers=shallow_layers)
    args = (unet_call["sample"], 500, unet_call["text"], unet_call["mask"])
    with torch.no_grad():
        full = runner(0, *args)
        assert not runner.is_full_step(1)
        assert torch.equal(runner(1, *args), full)
        # At another timestep the deep features are reused, so the output is not the UNet's.
        moved = runner(2, unet_call["sample"], 300, unet_call["text"], unet_call["mask"])
        exact = tiny_pipeline.unet(
            unet_call["sample"],
            300,
            encoder_hidden_states=unet_call["text"],
            encoder_attention_mask=unet_call["mask"],
        ).sample
    assert not torch.equal(moved, exact)
    assert runner.is_full_step(3)


def test_deep_cache_keeps_the_rows_of_the_members_left(
    tiny_pipeline: RiffusionPipeline, unet_call: dict
) -> None:
    sample, text = unet_call["sample"], unet_call["text"]
    both = DeepCacheUNet(tiny_pipeline.unet, interval=2, shallow_layers=2)
    second = DeepCacheUNet(tiny_pipeline.unet, interval=2, shallow_layers=2)
    with torch.no_grad():
        both(0, sample, 700, text)
        second(0, sample[1:], 700, text[1:])
        both.keep_rows([1])
        shallow_both = both(1, sample[1:], 600, text[1:])
        shallow_alone = second(1, sample[1:], 600, text[1:])
    torch.testing.assert_close(shallow_both, shallow_alone, rtol=1e-4, atol=1e-5)


def test_deep_cache_refuses_what_it_cannot_run(tiny_pipeline: RiffusionPipeline) -> None:
    with pytest.raises(RiffusionError, match="interval must be at least 1"):
        DeepCacheUNet(tiny_pipeline.unet, interval=0, shallow_layers=1)
    with pytest.raises(RiffusionError, match="shallow layers must be 1 to 11"):
        DeepCacheUNet(tiny_pipeline.unet, interval=2, shallow_layers=12)
    other = mock.Mock(spec=tiny_pipeline.unet)
    other.class_embedding = torch.nn.Linear(1, 1)
    other.config = {"addition_embed_type": None}
    other.down_blocks = other.up_blocks = []
    with pytest.raises(RiffusionError, match=r"Stable Diffusion v1-layout UNets.*class embeddings"):
        DeepCacheUNet(other, interval=2, shallow_layers=1)


# --- The preset table ---------------------------------------------------------------------------


def test_presets_are_defined_once_and_quality_is_the_original() -> None:
    assert list(PRESETS) == list(presets.PRESET_NAMES) == ["quality", "fast", "realtime"]
    quality = get_preset("quality")
    assert quality.exact and quality.steps == 50 and quality.scheduler is None
    assert quality.deep_cache is None and quality.guided and not quality.lcm_lora
    assert not FAST.exact and FAST.deep_cache is not None and FAST.guided
    assert REALTIME.lcm_lora and REALTIME.tiny_vae and not REALTIME.guided
    with pytest.raises(RiffusionError, match=r"unknown preset 'turbo'.*quality, fast, realtime"):
        get_preset("turbo")
    with pytest.raises(RiffusionError, match="at most 8 with the realtime preset, got 20"):
        inputs("realtime", steps=20)


@pytest.mark.parametrize(
    ("preset", "steps", "default", "expected"),
    [
        (None, None, "quality", ("quality", 50)),
        (None, 30, "quality", ("quality", 30)),
        ("fast", None, "quality", ("fast", 20)),
        ("fast", 12, "quality", ("fast", 12)),
        ("quality", 30, "realtime", ("quality", 30)),
        # A request that names no preset meant its steps for the original's schedule.
        (None, 50, "realtime", ("realtime", REALTIME.steps)),
        ("realtime", 2, "realtime", ("realtime", 2)),
    ],
)
def test_resolve_preset(preset, steps, default, expected) -> None:
    assert resolve_preset(preset, steps, default) == expected


# --- The fast and realtime paths ----------------------------------------------------------------


def test_requests_without_a_preset_run_the_original_path(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    plain = InferenceInput(start=START, end=END, alpha=0.4, num_inference_steps=6)
    assert plain.preset == "quality"
    key = preset_pipeline.batch_key(plain, seed_image)
    assert (key.scheduler, key.num_inference_steps, key.guided) == ("PNDMScheduler", 6, True)
    with mock.patch.object(DeepCacheUNet, "__call__", side_effect=AssertionError("cached")):
        preset_pipeline.riffuse(plain, seed_image, output_type="latent")


@pytest.mark.parametrize("preset", ["fast", "realtime"])
def test_fast_and_realtime_are_deterministic(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image, preset: str
) -> None:
    first = preset_pipeline.riffuse(inputs(preset, steps=4), seed_image)
    again = preset_pipeline.riffuse(inputs(preset, steps=4), seed_image)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    quality = preset_pipeline.riffuse(inputs("quality", steps=4), seed_image)
    assert not np.array_equal(np.asarray(first), np.asarray(quality))


def test_fast_runs_its_solver_with_deep_cache(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    key = preset_pipeline.batch_key(inputs("fast"), seed_image)
    assert key.scheduler == "DPMSolverMultistepScheduler" and key.preset == "fast"
    # The original's arithmetic: the last int(steps * denoising) steps run.
    assert key.denoising_steps == int(20 * lerp(START.denoising, END.denoising, 0.4))
    calls: list[bool] = []
    real_call = DeepCacheUNet.__call__

    def spy(self: DeepCacheUNet, step: int, *args: object) -> torch.Tensor:
        calls.append(self.is_full_step(step))
        return real_call(self, step, *args)

    with mock.patch.object(DeepCacheUNet, "__call__", spy):
        preset_pipeline.riffuse(inputs("fast"), seed_image, output_type="latent")
    interval = FAST.deep_cache.interval if FAST.deep_cache else 0
    assert calls == [step % interval == 0 for step in range(key.denoising_steps)]


def test_fast_with_a_cache_interval_of_1_is_its_schedule_without_caching(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    uncached = dataclasses.replace(FAST, deep_cache=None)
    every_step = dataclasses.replace(FAST, deep_cache=DeepCacheSettings(1, 1))
    results = []
    for preset in (uncached, every_step):
        with mock.patch.dict(PRESETS, {"fast": preset}):
            results.append(
                preset_pipeline.riffuse(inputs("fast", 8), seed_image, output_type="latent")
            )
    assert torch.equal(results[0], results[1])
    with mock.patch.dict(PRESETS, {"fast": FAST}):
        cached = preset_pipeline.riffuse(inputs("fast", 8), seed_image, output_type="latent")
    assert not torch.equal(cached, results[0])


def test_fast_batches_like_single_requests_even_when_one_stops(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    other = dataclasses.replace(
        inputs("fast", 12), start=dataclasses.replace(START, seed=5, prompt="bossa nova")
    )
    alone = [
        preset_pipeline.riffuse(each, seed_image, output_type="latent")
        for each in (inputs("fast", 12), other)
    ]
    batch = preset_pipeline.riffuse_batch(
        [RiffuseRequest(inputs("fast", 12), seed_image), RiffuseRequest(other, seed_image)],
        output_type="latent",
    )
    for together, single in zip(batch, alone, strict=True):
        assert isinstance(together, torch.Tensor)
        torch.testing.assert_close(together, single, rtol=1e-4, atol=1e-4)

    # The first stops after 2 steps (between the cache's fill and its next refresh): the second
    # runs on with its own rows of the cache.
    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Cancelled("enough")

    stopped, kept = preset_pipeline.riffuse_batch(
        [
            RiffuseRequest(inputs("fast", 12), seed_image, callback=stop_after_two),
            RiffuseRequest(other, seed_image),
        ],
        output_type="latent",
    )
    assert isinstance(stopped, Cancelled)
    assert isinstance(kept, torch.Tensor)
    torch.testing.assert_close(kept, alone[1], rtol=1e-4, atol=1e-4)


def test_presets_do_not_share_batches(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    keys = {preset_pipeline.batch_key(inputs(name, 4), seed_image) for name in PRESETS}
    assert len(keys) == 3
    with pytest.raises(RiffusionError, match=r"cannot share a batch: .*preset quality != fast"):
        preset_pipeline.riffuse_batch(
            [
                RiffuseRequest(inputs("quality", 4), seed_image),
                RiffuseRequest(inputs("fast", 4), seed_image),
            ]
        )


def test_presets_with_their_own_scheduler_refuse_another(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    for name in ("fast", "realtime"):
        with pytest.raises(RiffusionError, match=f"the {name} preset runs its own scheduler"):
            preset_pipeline.batch_key(inputs(name, 4), seed_image, scheduler="DDIM")
    key = preset_pipeline.batch_key(inputs("quality", 4), seed_image, scheduler="DDIM")
    assert key.scheduler == "DDIMScheduler"


def test_realtime_runs_every_step_from_the_denoising_level_without_guidance(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    from diffusers import LCMScheduler

    key = preset_pipeline.batch_key(inputs("realtime", 3), seed_image)
    denoising = lerp(START.denoising, END.denoising, 0.4)
    assert key.scheduler == "LCMScheduler" and not key.guided
    assert (key.num_inference_steps, key.denoising_steps) == (3, int(50 * denoising))
    # Guidance and the negative prompt play no part.
    quiet = dataclasses.replace(
        inputs("realtime", 3),
        start=dataclasses.replace(START, guidance=1.0, negative_prompt=None),
        end=dataclasses.replace(END, guidance=12.0),
    )
    steps: list[int] = []
    latents = preset_pipeline.riffuse(
        inputs("realtime", 3),
        seed_image,
        output_type="latent",
        callback=lambda d, t: steps.append(t),
    )
    assert steps[-1] == 3
    assert torch.equal(latents, preset_pipeline.riffuse(quiet, seed_image, output_type="latent"))
    # diffusers' LCM img2img schedule: the timesteps the run went through.
    expected = LCMScheduler.from_config(preset_pipeline.scheduler.config)
    expected.set_timesteps(3, strength=denoising)
    seen: list[int] = []
    real_unet = preset_pipeline._lcm_unet
    assert real_unet is not None
    with mock.patch.object(
        real_unet,
        "forward",
        side_effect=lambda sample, timestep, **kw: (
            seen.append(int(timestep)) or type(real_unet).forward(real_unet, sample, timestep, **kw)
        ),
    ):
        preset_pipeline.riffuse(inputs("realtime", 3), seed_image, output_type="latent")
    assert seen == expected.timesteps.tolist()


def test_realtime_matches_diffusers_lcm_sampling(
    preset_pipeline: RiffusionPipeline,
) -> None:
    """txt2img with the realtime preset is diffusers' way of sampling with an LCM-LoRA (its
    StableDiffusionPipeline with the LCMScheduler and guidance off, on the same fused UNet): the
    same noise, timesteps, per-step noise and final latents."""
    from diffusers import LCMScheduler, StableDiffusionPipeline

    prompt = PromptInput("a jazz trio", seed=11)
    ours = preset_pipeline.txt2img(
        prompt,
        width=SIZE,
        height=SIZE,
        num_inference_steps=4,
        output_type="latent",
        preset="realtime",
    )
    reference = StableDiffusionPipeline(
        vae=preset_pipeline.vae,
        text_encoder=preset_pipeline.text_encoder,
        tokenizer=preset_pipeline.tokenizer,
        unet=preset_pipeline._lcm_unet,
        scheduler=LCMScheduler.from_config(preset_pipeline.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    reference.set_progress_bar_config(disable=True)
    theirs = reference(
        prompt.prompt,
        height=SIZE,
        width=SIZE,
        num_inference_steps=4,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(prompt.seed),
        output_type="latent",
    ).images
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_taesd_keeps_the_size_and_the_exif(
    preset_pipeline: RiffusionPipeline,
) -> None:
    seed = Image.new("RGB", (256, 512), (40, 40, 40))
    exif = seed.getexif()
    exif[int(TempoTag.BPM)] = 120.0
    tagged = Image.open(_saved(seed, exif))
    image = preset_pipeline.riffuse(inputs("realtime", 1), tagged)
    assert image.size == (256, 512)
    out = image.getexif()
    assert out[int(TempoTag.BPM)] == 120.0
    assert int(ExifTag.SAMPLE_RATE) in out
    text = preset_pipeline.txt2img(START, width=192, preset="realtime")  # its own step count
    assert text.size == (192, 512)


def test_seed_latents_are_cached_per_autoencoder(
    preset_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    quality = preset_pipeline.encode_image(seed_image, 3)
    realtime = preset_pipeline.encode_image(seed_image, 3, "realtime")
    # TAESD encodes deterministically: the seed plays no part.
    assert torch.equal(realtime, preset_pipeline.encode_image(seed_image, 4, "realtime"))
    assert not torch.allclose(quality, realtime)


def _saved(image: Image.Image, exif: Image.Exif) -> object:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    buffer.seek(0)
    return buffer


# --- Loading the realtime preset's weights -----------------------------------------------------


def test_realtime_alone_fuses_the_lcm_lora_into_the_model_itself(
    tiny_checkpoint: Path,
    preset_weights: PresetWeights,
    preset_pipeline: RiffusionPipeline,
    seed_image: Image.Image,
) -> None:
    only = RiffusionPipeline.load_checkpoint(
        tiny_checkpoint,
        device="cpu",
        dtype="float32",
        preset_weights=preset_weights,
        presets=["realtime"],
    )
    assert only._lcm_unet is only.unet
    expected = preset_pipeline.riffuse(inputs("realtime", 2), seed_image, output_type="latent")
    got = only.riffuse(inputs("realtime", 2), seed_image, output_type="latent")
    # The same weights; copies of a module may round differently (their memory is aligned
    # differently), so close rather than equal.
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(RiffusionError, match=r"loaded for LCM presets only.*quality preset"):
        only.riffuse(inputs("quality", 2), seed_image)


def test_missing_or_unreachable_weights_fail_with_one_line(
    tiny_checkpoint: Path, tiny_vae: Path, tiny_lcm_lora: Path, tmp_path: Path
) -> None:
    def load(**weights: str) -> None:
        RiffusionPipeline.load_checkpoint(
            tiny_checkpoint,
            device="cpu",
            dtype="float32",
            preset_weights=PresetWeights(**weights),
            presets=["realtime"],
        )

    # Not in the cache, and the Hub offline (the tests run with HF_HUB_OFFLINE=1).
    for weights, option in (
        ({"tiny_vae": str(tiny_vae), "cache_dir": str(tmp_path)}, "--lcm-lora"),
        ({"lcm_lora": str(tiny_lcm_lora), "cache_dir": str(tmp_path)}, "--tiny-vae"),
    ):
        with pytest.raises(RiffusionError) as error:
            load(**weights)
        message = str(error.value)
        assert "\n" not in message and "cannot be reached" in message
        assert f"bring here as {option} DIR" in message and "hf download" in message
    with pytest.raises(RiffusionError, match=r"--lcm-lora ./nowhere.safetensors: no such file"):
        load(lcm_lora="./nowhere.safetensors", tiny_vae=str(tiny_vae))
    with pytest.raises(RiffusionError, match=r"--tiny-vae .*: not a folder"):
        load(lcm_lora=str(tiny_lcm_lora), tiny_vae=str(tiny_lcm_lora))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RiffusionError, match="could not load TAESD"):
        load(lcm_lora=str(tiny_lcm_lora), tiny_vae=str(tmp_path / "empty"))
    with pytest.raises(RiffusionError, match=r"expected pytorch_lora_weights.safetensors"):
        load(lcm_lora=str(tmp_path / "empty"), tiny_vae=str(tiny_vae))


def test_an_lcm_lora_of_the_hub_layout_is_found_in_its_folder(
    tiny_checkpoint: Path, tiny_lcm_lora: Path, tiny_vae: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "lcm"
    folder.mkdir()
    (folder / "pytorch_lora_weights.safetensors").write_bytes(tiny_lcm_lora.read_bytes())
    (folder / "other.safetensors").write_bytes(b"")
    pipeline = RiffusionPipeline.load_checkpoint(
        tiny_checkpoint,
        device="cpu",
        dtype="float32",
        preset_weights=PresetWeights(lcm_lora=str(folder), tiny_vae=str(tiny_vae)),
        presets=["realtime"],
    )
    assert pipeline._tiny_vae is not None
