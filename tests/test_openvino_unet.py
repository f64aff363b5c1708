"""The UNet in OpenVINO (--unet-backend openvino) on the tiny checkpoint: the same output as
PyTorch float32 within tolerance, alone and in quality and realtime generations, and the cache of
conversions. Skipped where OpenVINO is not installed (pip install 'riffusion[openvino]').

Every conversion of the tiny UNet takes tens of seconds on a loaded 2-core CPU: the module
converts two (the model's UNet, and the LCM-LoRA's) and shares them through its cache.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("openvino")

from riffusion.diffusion import openvino_unet as ov
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.diffusion.pipeline import RiffusionPipeline
from riffusion.diffusion.presets import FAST
from riffusion.errors import RiffusionError

pytestmark = pytest.mark.slow

#: Float32 in both: they differ by the order of additions only.
RELATIVE_TOLERANCE = 1e-4
CONVERTING = "converting the UNet for OpenVINO (once) ..."


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    difference = (output.double() - reference.double()).norm()
    return float(difference / reference.double().norm())


@pytest.fixture(scope="module", autouse=True)
def conversion_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache folder of this module's own, so that its first conversion is a real one."""
    folder = tmp_path_factory.mktemp("riffusion-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIFFUSION_CACHE_DIR", str(folder))
        yield folder / "openvino"


@pytest.fixture(scope="module")
def reports() -> list[str]:
    """What conversions reported, in order, across the module."""
    return []


@pytest.fixture(scope="module")
def openvino_pipeline(tiny_checkpoint: Path, reports: list[str]) -> RiffusionPipeline:
    """The tiny model, float32 on the CPU, its UNet in OpenVINO (quality preset)."""
    return RiffusionPipeline.load_checkpoint(
        tiny_checkpoint,
        device="cpu",
        dtype="float32",
        presets=["quality"],
        unet_backend="openvino",
        report=reports.append,
    )


@pytest.fixture(scope="module")
def openvino_realtime_pipeline(
    tiny_checkpoint: Path, preset_weights: Any, openvino_pipeline: RiffusionPipeline
) -> tuple[RiffusionPipeline, list[str]]:
    """The tiny model for the realtime preset alone (LCM-LoRA fused in place), its UNet in
    OpenVINO, and what loading it reported (after the quality pipeline's conversion)."""
    messages: list[str] = []
    pipeline = RiffusionPipeline.load_checkpoint(
        tiny_checkpoint,
        device="cpu",
        dtype="float32",
        preset_weights=preset_weights,
        presets=["realtime"],
        unet_backend="openvino",
        report=messages.append,
    )
    return pipeline, messages


def unet_inputs(batch: int, tokens: int = 77, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(batch, 4, 64, 64, generator=generator),
        "encoder_hidden_states": torch.randn(batch, tokens, 32, generator=generator),
    }


def openvino_of(pipeline: RiffusionPipeline) -> ov.OpenVINOUNet:
    converted = pipeline._openvino_unets
    assert converted is not None
    (unet,) = converted.values()
    return unet


@pytest.fixture(scope="module")
def seed_image() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def torch_noise(
    pipeline: RiffusionPipeline,
    inputs: dict[str, torch.Tensor],
    timestep: torch.Tensor,
    **extra: Any,
) -> torch.Tensor:
    with torch.no_grad():
        noise: torch.Tensor = pipeline.unet(
            inputs["sample"],
            timestep,
            encoder_hidden_states=inputs["encoder_hidden_states"],
            **extra,
        ).sample
    return noise


@pytest.mark.parametrize("batch", [1, 2])
def test_unet_output_matches_torch_float32(
    openvino_pipeline: RiffusionPipeline, tiny_pipeline: RiffusionPipeline, batch: int
) -> None:
    converted = openvino_of(openvino_pipeline)
    assert converted.precision == "f32"
    inputs = unet_inputs(batch)
    timestep = torch.tensor(321)
    reference = torch_noise(tiny_pipeline, inputs, timestep)
    output = converted(
        inputs["sample"], timestep, encoder_hidden_states=inputs["encoder_hidden_states"]
    ).sample
    assert output.shape == reference.shape == (batch, 4, 64, 64)
    assert output.dtype == torch.float32
    assert relative_error(output, reference) < RELATIVE_TOLERANCE
    (as_tuple,) = converted(
        inputs["sample"], timestep, inputs["encoder_hidden_states"], return_dict=False
    )
    assert torch.equal(as_tuple, output)


def test_padded_rows_match_torch_with_the_mask(
    openvino_pipeline: RiffusionPipeline, tiny_pipeline: RiffusionPipeline
) -> None:
    """Requests with prompts of different token lengths share a batch, zero-padded and masked
    (riffusion.diffusion.batch): each row is what the masked PyTorch UNet computes."""
    inputs = unet_inputs(3, tokens=154, seed=1)
    lengths = torch.tensor([154, 77, 77])
    mask = (torch.arange(154)[None, :] < lengths[:, None]).float()
    inputs["encoder_hidden_states"] *= mask[:, :, None]
    timestep = torch.tensor(700)
    reference = torch_noise(tiny_pipeline, inputs, timestep, encoder_attention_mask=mask)
    output = openvino_of(openvino_pipeline)(
        inputs["sample"],
        timestep,
        encoder_hidden_states=inputs["encoder_hidden_states"],
        encoder_attention_mask=mask,
    ).sample
    for row in range(3):
        assert relative_error(output[row], reference[row]) < RELATIVE_TOLERANCE, row


def riffuse_inputs(steps: int, guidance: float) -> InferenceInput:
    start = PromptInput(prompt="church bells", seed=3, denoising=0.75, guidance=guidance)
    end = PromptInput(prompt="jazz piano", seed=4, denoising=0.75, guidance=guidance)
    return InferenceInput(start=start, end=end, alpha=0.3, num_inference_steps=steps)


def test_quality_riffuse_matches_torch(
    openvino_pipeline: RiffusionPipeline, tiny_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    inputs = riffuse_inputs(steps=6, guidance=7.0)  # guidance: the UNet sees batches of 2
    reference = tiny_pipeline.riffuse(inputs, seed_image, output_type="latent")
    output = openvino_pipeline.riffuse(inputs, seed_image, output_type="latent")
    assert relative_error(output, reference) < RELATIVE_TOLERANCE


def test_realtime_riffuse_matches_torch(
    openvino_realtime_pipeline: tuple[RiffusionPipeline, list[str]],
    preset_pipeline: RiffusionPipeline,
    seed_image: Image.Image,
) -> None:
    pipeline, _ = openvino_realtime_pipeline
    inputs = dataclasses.replace(riffuse_inputs(steps=2, guidance=1.0), preset="realtime")
    reference = preset_pipeline.riffuse(inputs, seed_image, output_type="latent")
    output = pipeline.riffuse(inputs, seed_image, output_type="latent")
    assert relative_error(output, reference) < RELATIVE_TOLERANCE


def test_the_first_conversion_is_reported(
    openvino_pipeline: RiffusionPipeline, reports: list[str]
) -> None:
    assert reports[0] == CONVERTING
    assert reports[1].startswith("converted the UNet for OpenVINO in ")


def test_a_second_load_reuses_the_conversion(
    openvino_pipeline: RiffusionPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_conversion(*_: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(ov, "_convert", no_conversion)
    messages: list[str] = []
    again = ov.openvino_unet(openvino_pipeline.unet, messages.append)
    assert again.ir_path == openvino_of(openvino_pipeline).ir_path
    assert messages == []


def test_other_weights_are_converted_again(
    openvino_pipeline: RiffusionPipeline,
    openvino_realtime_pipeline: tuple[RiffusionPipeline, list[str]],
    conversion_cache: Path,
) -> None:
    """The LCM-LoRA fused in gives the realtime pipeline's UNet a conversion of its own."""
    pipeline, messages = openvino_realtime_pipeline
    assert messages[0] == CONVERTING
    assert openvino_of(pipeline).ir_path != openvino_of(openvino_pipeline).ir_path
    assert len([entry for entry in conversion_cache.iterdir() if entry.is_dir()]) == 2


def test_the_digest_follows_every_weight(tiny_pipeline: RiffusionPipeline) -> None:
    changed = copy.deepcopy(tiny_pipeline.unet)
    with torch.no_grad():
        changed.conv_out.bias[0] += 1e-3
    assert ov.weights_digest(changed) != ov.weights_digest(tiny_pipeline.unet)
    assert ov.weights_digest(copy.deepcopy(tiny_pipeline.unet)) == ov.weights_digest(
        tiny_pipeline.unet
    )


def test_the_fast_preset_is_refused(
    openvino_pipeline: RiffusionPipeline, seed_image: Image.Image
) -> None:
    inputs = dataclasses.replace(riffuse_inputs(steps=3, guidance=7.0), preset=FAST.name)
    with pytest.raises(RiffusionError, match="cannot run the fast preset: its DeepCache"):
        openvino_pipeline.riffuse(inputs, seed_image)
