"""RiffusionPipeline on the tiny checkpoint: the original's semantics, checked in latent space.

Images are 128 x 128 (latents 16 x 16) with a few steps, so each generation takes a fraction of
a second; the full 512-pixel path to audio is exercised by the CLI tests.
"""

from __future__ import annotations

import threading
from unittest import mock

import numpy as np
import pytest
import torch
from original_riffusion import original_riffuse
from PIL import Image

import riffusion
from riffusion import InferenceInput, PromptInput, RiffusionPipeline
from riffusion.diffusion.pipeline import Cancelled, slerp
from riffusion.diffusion.schedulers import SCHEDULERS, make_scheduler, scheduler_class
from riffusion.errors import RiffusionError
from riffusion.spectrogram.params import ExifTag, SpectrogramParams

SIZE = 128
STEPS = 4
LATENT = SIZE // 8


@pytest.fixture(scope="module")
def pipe(tiny_pipeline: RiffusionPipeline) -> RiffusionPipeline:
    return tiny_pipeline


@pytest.fixture(scope="module")
def seed_image() -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def riffuse_latents(pipe, start, end, alpha, image, mask=None, **kwargs) -> torch.Tensor:
    inputs = InferenceInput(start=start, end=end, alpha=alpha, num_inference_steps=STEPS)
    return pipe.riffuse(inputs, image, mask, output_type="latent", **kwargs)


def mask_image(keep_left: bool = True, value: int | None = None) -> Image.Image:
    """Black (keep) left half and white (repaint) right half, or one gray value everywhere."""
    if value is not None:
        return Image.new("L", (SIZE, SIZE), value)
    pixels = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    pixels[:, : SIZE // 2] = 0 if keep_left else 255
    return Image.fromarray(pixels, mode="L")


START = PromptInput("lofi hip hop beat", seed=1, negative_prompt="noise", guidance=7.0)
END = PromptInput("church bells", seed=2, guidance=3.0, denoising=0.5)


# --- slerp --------------------------------------------------------------------------------------


def test_slerp_end_points_are_exact() -> None:
    a, b = torch.randn(2, 4, 8, 8).unbind(0)
    assert torch.equal(slerp(0.0, a, b), a)
    assert torch.equal(slerp(1.0, a, b), b)


def test_slerp_follows_the_arc() -> None:
    a = torch.tensor([1.0, 0.0, 0.0])
    b = torch.tensor([0.0, 1.0, 0.0])
    middle = slerp(0.5, a, b)
    # On the unit circle, halfway: norm 1 (a straight line would give 0.707).
    torch.testing.assert_close(middle, torch.tensor([0.5**0.5, 0.5**0.5, 0.0]))
    third = slerp(1 / 3, a, b)
    assert third.norm().item() == pytest.approx(1.0)
    assert torch.arccos(third @ a).item() == pytest.approx(torch.pi / 6)


def test_slerp_keeps_gaussian_noise_norm_and_is_symmetric() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, 64, 64, generator=generator).unbind(0)
    for t in (0.25, 0.5, 0.75):
        mixed = slerp(t, a, b)
        assert mixed.norm().item() == pytest.approx(a.norm().item(), rel=0.02)
        torch.testing.assert_close(mixed, slerp(1 - t, b, a))
    assert slerp(0.5, a, b).dtype == torch.float32


def test_slerp_of_parallel_vectors_is_linear() -> None:
    a = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(slerp(0.25, a, 2 * a), 1.25 * a)


# --- riffuse ------------------------------------------------------------------------------------


def test_same_inputs_give_the_same_result(pipe, seed_image) -> None:
    first = riffuse_latents(pipe, START, END, 0.5, seed_image)
    second = riffuse_latents(pipe, START, END, 0.5, seed_image)
    assert torch.equal(first, second)
    assert first.shape == (1, 4, LATENT, LATENT) and first.dtype == torch.float32
    assert torch.isfinite(first).all()


def test_images_are_deterministic_rgb_with_spectrogram_exif(pipe, seed_image) -> None:
    inputs = InferenceInput(START, END, alpha=0.3, num_inference_steps=STEPS)
    first = pipe.riffuse(inputs, seed_image)
    second = pipe.riffuse(inputs, seed_image)
    assert first.mode == "RGB" and first.size == (SIZE, SIZE)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    exif = first.getexif()
    assert SpectrogramParams.from_exif(exif) == SpectrogramParams()
    assert exif[int(ExifTag.MAX_VALUE)] == 30e6


def test_alpha_zero_ignores_the_end(pipe, seed_image) -> None:
    other_end = PromptInput(
        "a very different prompt " * 30, seed=99, negative_prompt="x", denoising=1.0, guidance=1
    )
    reference = riffuse_latents(pipe, START, END, 0.0, seed_image)
    assert torch.equal(reference, riffuse_latents(pipe, START, other_end, 0.0, seed_image))
    img2img = pipe.img2img(START, seed_image, num_inference_steps=STEPS, output_type="latent")
    assert torch.equal(reference, img2img)


def test_alpha_one_is_the_end_except_for_the_seed_image_sample(pipe, seed_image) -> None:
    # Only the seed image's latent sample uses the start seed (as in the original).
    reference = riffuse_latents(pipe, START, END, 1.0, seed_image)
    other_start = PromptInput("other", seed=START.seed, negative_prompt=None, guidance=12.0)
    assert torch.equal(reference, riffuse_latents(pipe, other_start, END, 1.0, seed_image))
    end_alone = PromptInput(END.prompt, seed=END.seed, guidance=END.guidance, denoising=0.5)
    through_end = riffuse_latents(pipe, START, end_alone, 1.0, seed_image)
    assert torch.equal(reference, through_end)


def test_alpha_in_between_differs_from_both_ends(pipe, seed_image) -> None:
    results = [riffuse_latents(pipe, START, END, alpha, seed_image) for alpha in (0, 0.5, 1)]
    assert not torch.equal(results[1], results[0])
    assert not torch.equal(results[1], results[2])


def test_seeds_matter(pipe, seed_image) -> None:
    a = riffuse_latents(pipe, START, END, 0.0, seed_image)
    reseeded = PromptInput(START.prompt, seed=7, negative_prompt=START.negative_prompt)
    assert not torch.equal(a, riffuse_latents(pipe, reseeded, END, 0.0, seed_image))


def test_seed_image_is_encoded_once(pipe) -> None:
    image = Image.new("RGB", (SIZE, SIZE), (10, 200, 30))
    with mock.patch.object(pipe.vae, "encode", wraps=pipe.vae.encode) as encode:
        a = riffuse_latents(pipe, START, END, 0.0, image)
        reseeded = PromptInput(START.prompt, seed=5)
        b = riffuse_latents(pipe, reseeded, END, 0.0, image)
        assert encode.call_count == 1
    assert not torch.equal(a, b)
    # Sampling from the cached posterior is exactly a fresh encode's sample.
    cached = pipe.encode_image(image, seed=3)
    pipe._image_latents.clear()
    assert torch.equal(cached, pipe.encode_image(image, seed=3))


def test_zero_denoising_returns_the_seed_image_latents(pipe, seed_image) -> None:
    still = PromptInput("anything", seed=4, denoising=0.0)
    latents = pipe.img2img(still, seed_image, num_inference_steps=STEPS, output_type="latent")
    assert torch.equal(latents, pipe.encode_image(seed_image, seed=4))


# --- masks --------------------------------------------------------------------------------------


def test_black_mask_keeps_the_seed_image_exactly(pipe, seed_image) -> None:
    latents = riffuse_latents(pipe, START, END, 0.5, seed_image, mask_image(value=0))
    assert torch.equal(latents, pipe.encode_image(seed_image, START.seed))


def test_white_mask_is_no_mask(pipe, seed_image) -> None:
    masked = riffuse_latents(pipe, START, END, 0.5, seed_image, mask_image(value=255))
    assert torch.equal(masked, riffuse_latents(pipe, START, END, 0.5, seed_image))


def test_half_mask_keeps_black_and_repaints_white(pipe, seed_image) -> None:
    latents = riffuse_latents(pipe, START, END, 0.5, seed_image, mask_image())
    original = pipe.encode_image(seed_image, START.seed)
    half = LATENT // 2
    assert torch.equal(latents[..., :half], original[..., :half])
    assert not torch.allclose(latents[..., half:], original[..., half:], atol=1e-3)


def test_gray_mask_blends(pipe, seed_image) -> None:
    original = pipe.encode_image(seed_image, START.seed)
    free = riffuse_latents(pipe, START, END, 0.5, seed_image)
    gray = riffuse_latents(pipe, START, END, 0.5, seed_image, mask_image(value=128))
    # Pulled towards the seed image on every step, so it ends closer to it than unmasked.
    assert (gray - original).norm() < (free - original).norm()
    assert not torch.equal(gray, original)


def test_mask_of_another_size_is_resized_to_the_latents(pipe, seed_image) -> None:
    big = mask_image().resize((4 * SIZE, 2 * SIZE), Image.Resampling.NEAREST)
    small = riffuse_latents(pipe, START, END, 0.5, seed_image, mask_image())
    assert torch.equal(small, riffuse_latents(pipe, START, END, 0.5, seed_image, big))


# --- prompts ------------------------------------------------------------------------------------


def test_negative_prompt_changes_the_result(pipe, seed_image) -> None:
    plain = PromptInput("jazz", seed=1)
    negative = PromptInput("jazz", seed=1, negative_prompt="distorted guitar")
    a = riffuse_latents(pipe, plain, plain, 0.0, seed_image)
    b = riffuse_latents(pipe, negative, negative, 0.0, seed_image)
    assert not torch.allclose(a, b, atol=1e-4)
    # Interpolating: the end's negative prompt counts too.
    end_negative = PromptInput("rock", seed=2, negative_prompt="drums")
    end_plain = PromptInput("rock", seed=2)
    c = riffuse_latents(pipe, plain, end_plain, 0.5, seed_image)
    d = riffuse_latents(pipe, plain, end_negative, 0.5, seed_image)
    assert not torch.allclose(c, d, atol=1e-4)


def test_without_guidance_the_negative_prompt_is_unused(pipe, seed_image) -> None:
    plain = PromptInput("jazz", seed=1, guidance=1.0)
    negative = PromptInput("jazz", seed=1, guidance=1.0, negative_prompt="distorted guitar")
    a = riffuse_latents(pipe, plain, plain, 0.0, seed_image)
    assert torch.equal(a, riffuse_latents(pipe, negative, negative, 0.0, seed_image))


def test_prompts_longer_than_77_tokens_are_not_truncated(pipe, seed_image) -> None:
    words = " ".join(["slow ambient pads"] * 30)  # 90 tokens
    assert len(pipe.tokenizer(words).input_ids) > 77
    a = riffuse_latents(pipe, PromptInput(words + " jazz", 1), END, 0.0, seed_image)
    b = riffuse_latents(pipe, PromptInput(words + " metal", 1), END, 0.0, seed_image)
    assert not torch.allclose(a, b, atol=1e-5)


def test_prompt_weights_and_reweighting_switch(pipe, seed_image) -> None:
    weighted = PromptInput("(jazz:1.8) piano", seed=1)
    plain = PromptInput("jazz piano", seed=1)
    a = riffuse_latents(pipe, weighted, END, 0.0, seed_image)
    assert not torch.allclose(a, riffuse_latents(pipe, plain, END, 0.0, seed_image), atol=1e-5)
    literal = riffuse_latents(pipe, weighted, END, 0.0, seed_image, use_reweighting=False)
    assert not torch.allclose(a, literal, atol=1e-5)


# --- txt2img ------------------------------------------------------------------------------------


def test_txt2img_is_deterministic_and_sized(pipe) -> None:
    prompt = PromptInput("jazz", seed=3)
    first = pipe.txt2img(prompt, width=2 * SIZE, height=SIZE, num_inference_steps=STEPS)
    second = pipe.txt2img(prompt, width=2 * SIZE, height=SIZE, num_inference_steps=STEPS)
    assert first.size == (2 * SIZE, SIZE)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    reseeded = PromptInput("jazz", seed=4)
    third = pipe.txt2img(reseeded, width=2 * SIZE, height=SIZE, num_inference_steps=STEPS)
    assert not np.array_equal(np.asarray(first), np.asarray(third))


@pytest.mark.parametrize("scheduler", ["PNDM", "DDIM"])
def test_txt2img_matches_diffusers(pipe, scheduler: str) -> None:
    """Same seed, same scheduler: the same latents as diffusers' StableDiffusionPipeline."""
    from diffusers import StableDiffusionPipeline

    reference = StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        # diffusers' pipeline turns clip_sample off for SD; riffusion's must do the same.
        scheduler=scheduler_class(scheduler).from_config(pipe.scheduler.config, clip_sample=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    expected = reference(
        "jazz piano",
        negative_prompt="noise",
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=7.0,
        generator=torch.Generator().manual_seed(5),
        output_type="latent",
    ).images
    prompt = PromptInput("jazz piano", seed=5, negative_prompt="noise")
    latents = pipe.txt2img(
        prompt,
        width=SIZE,
        height=SIZE,
        num_inference_steps=STEPS,
        scheduler=scheduler,
        output_type="latent",
    )
    torch.testing.assert_close(latents, expected, rtol=0, atol=1e-5)


def test_txt2img_default_height_is_the_spectrogram_height(pipe) -> None:
    latents = pipe.txt2img(
        PromptInput("x", seed=0), width=1024, num_inference_steps=1, output_type="latent"
    )
    assert latents.shape == (1, 4, 512 // 8, 1024 // 8)


# --- schedulers ---------------------------------------------------------------------------------


def test_default_scheduler_is_the_checkpoints(pipe) -> None:
    assert type(make_scheduler(None, pipe.scheduler)).__name__ == "PNDMScheduler"


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_runs(pipe, seed_image, name: str) -> None:
    latents = riffuse_latents(pipe, START, END, 0.5, seed_image, scheduler=name)
    assert torch.isfinite(latents).all()
    assert torch.equal(latents, riffuse_latents(pipe, START, END, 0.5, seed_image, scheduler=name))
    image = pipe.txt2img(
        START, width=SIZE, height=SIZE, num_inference_steps=2, scheduler=name.lower()
    )
    assert image.size == (SIZE, SIZE)


def test_switching_schedulers_changes_results_not_the_pipeline(pipe, seed_image) -> None:
    default = type(pipe.scheduler)
    ddim = riffuse_latents(pipe, START, END, 0.5, seed_image, scheduler="DDIM")
    euler = riffuse_latents(pipe, START, END, 0.5, seed_image, scheduler="EulerDiscreteScheduler")
    assert not torch.allclose(ddim, euler, atol=1e-4)
    assert type(pipe.scheduler) is default


def test_unknown_scheduler(pipe, seed_image) -> None:
    with pytest.raises(RiffusionError, match="unknown scheduler 'Heun'"):
        riffuse_latents(pipe, START, END, 0.5, seed_image, scheduler="Heun")


# --- progress and cancellation ------------------------------------------------------------------


def test_progress_callback(pipe, seed_image) -> None:
    calls = []
    riffuse_latents(pipe, START, START, 0.0, seed_image, callback=lambda *c: calls.append(c))
    # denoising 0.75 of 4 steps runs 3 (PNDM's schedule has one extra warm-up timestep).
    total = calls[0][1]
    assert calls == [(step, total) for step in range(total + 1)]
    assert total >= 3


def test_cancel_event_stops_between_steps(pipe, seed_image) -> None:
    cancel = threading.Event()
    steps = []

    def progress(done: int, total: int) -> None:
        steps.append(done)
        if done == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        riffuse_latents(pipe, START, END, 0.5, seed_image, callback=progress, cancel=cancel)
    assert steps == [0, 1, 2]


def test_cancel_before_start_runs_nothing(pipe) -> None:
    cancel = threading.Event()
    cancel.set()
    unet = mock.patch.object(pipe.unet, "forward", wraps=pipe.unet.forward)
    with unet as forward, pytest.raises(Cancelled):
        pipe.txt2img(PromptInput("x", seed=0), width=SIZE, height=SIZE, cancel=cancel)
    assert forward.call_count == 0


def test_callback_may_cancel(pipe, seed_image) -> None:
    def progress(done: int, total: int) -> None:
        if done == 1:
            raise Cancelled("user pressed stop")

    with pytest.raises(Cancelled, match="user pressed stop"):
        riffuse_latents(pipe, START, END, 0.5, seed_image, callback=progress)


# --- inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed must be between"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"denoising": 1.5}, "denoising must be between 0 and 1"),
        ({"guidance": float("nan")}, "guidance must be at least 0"),
        ({"prompt": None}, "prompt must be text"),
    ],
)
def test_bad_prompt_inputs(kwargs: dict, message: str) -> None:
    values = {"prompt": "jazz", "seed": 0, **kwargs}
    with pytest.raises(RiffusionError, match=message):
        PromptInput(**values)


def test_bad_inference_inputs() -> None:
    with pytest.raises(RiffusionError, match="alpha must be between 0 and 1"):
        InferenceInput(START, END, alpha=1.5)
    with pytest.raises(RiffusionError, match="num_inference_steps must be between 1 and 1000"):
        InferenceInput(START, END, alpha=0.5, num_inference_steps=0)


def test_bad_images(pipe, seed_image) -> None:
    with pytest.raises(RiffusionError, match="seed image is 100x128 pixels"):
        riffuse_latents(pipe, START, END, 0.5, seed_image.crop((0, 0, 100, SIZE)))
    with pytest.raises(RiffusionError, match="init_image must be a PIL image"):
        riffuse_latents(pipe, START, END, 0.5, np.zeros((SIZE, SIZE, 3)))
    with pytest.raises(RiffusionError, match="image is 500x512 pixels"):
        pipe.txt2img(START, width=500)


def test_package_exports() -> None:
    assert riffusion.RiffusionPipeline is RiffusionPipeline
    assert {"RiffusionPipeline", "PromptInput", "InferenceInput"} <= set(riffusion.__all__)


def test_scheduler_limits_are_one_line_errors(pipe) -> None:
    # LCM cannot take more steps than the schedule it was distilled on (50 by default).
    with pytest.raises(RiffusionError, match="LCMScheduler"):
        pipe.txt2img(START, width=SIZE, height=SIZE, num_inference_steps=60, scheduler="LCM")


def test_half_precision_models_keep_float32_latents(tiny_checkpoint) -> None:
    """bfloat16 weights (the CPU default where it is native): latents and noise stay float32."""
    pipe = RiffusionPipeline.load_checkpoint(tiny_checkpoint, device="cpu", dtype="bfloat16")
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16
    prompt = PromptInput("jazz", seed=3)
    latents = pipe.txt2img(prompt, width=64, height=64, num_inference_steps=2, output_type="latent")
    assert latents.dtype == torch.float32 and torch.isfinite(latents).all()
    image = pipe.txt2img(prompt, width=64, height=64, num_inference_steps=2)
    assert image.size == (64, 64)


# --- fidelity to the original -------------------------------------------------------------------


@pytest.mark.parametrize("denoising", [0.3, 0.75, 1.0])
def test_riffuse_reproduces_the_original_at_every_strength(pipe, seed_image, denoising) -> None:
    """At denoising 1 the original caps its start (10 PNDM steps: from timestep 801, not 901),
    making 10 UNet calls rather than 11; below 1 the two schedules agree."""
    prompt = PromptInput("lofi hip hop beat", seed=11, denoising=denoising, guidance=7.0)
    inputs = InferenceInput(prompt, prompt, alpha=0.0, num_inference_steps=10)
    calls = []
    pipe.riffuse(inputs, seed_image, callback=lambda done, total: calls.append(total))
    assert calls[0] == {0.3: 4, 0.75: 8, 1.0: 10}[denoising]
    expected = original_riffuse(pipe, inputs, seed_image)
    latents = pipe.riffuse(inputs, seed_image, output_type="latent")
    torch.testing.assert_close(latents, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_riffuse_reproduces_the_original(pipe, seed_image, alpha: float) -> None:
    """Same prompts and seeds, same music: the original's result on the checkpoint's scheduler."""
    start = PromptInput("lofi hip hop beat", seed=11, denoising=0.75, guidance=7.0)
    end = PromptInput("church bells", seed=12, denoising=0.6, guidance=5.0)
    inputs = InferenceInput(start, end, alpha=alpha, num_inference_steps=6)
    expected = original_riffuse(pipe, inputs, seed_image)
    latents = pipe.riffuse(inputs, seed_image, output_type="latent")
    torch.testing.assert_close(latents, expected, rtol=0, atol=1e-4)
