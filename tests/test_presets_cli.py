"""--preset on the commands that run the model, its one-line errors, and `compare-presets`, on
the tiny checkpoint with stand-ins for the LCM-LoRA and TAESD."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from cli_support import failed, run, succeeded

from riffusion import Audio, RiffusionPipeline
from riffusion.diffusion.presets import FAST, PRESETS, QUALITY
from riffusion.render import preset_comparison

CPU = ["--dtype", "float32", "--device", "cpu"]


@pytest.fixture
def weights(tiny_lcm_lora: Path, tiny_vae: Path) -> list[object]:
    return ["--lcm-lora", tiny_lcm_lora, "--tiny-vae", tiny_vae]


def test_generate_realtime_and_fast(
    tiny_checkpoint: Path, weights: list[object], tmp_path: Path
) -> None:
    for preset, steps in (("realtime", []), ("fast", ["--steps", 3])):
        out = tmp_path / f"{preset}.wav"
        args = ["generate", "jazz", "-o", out, "--seed", 3, "--seed-image", "og_beat"]
        succeeded(
            run(*args, "--preset", preset, *steps, "--model", tiny_checkpoint, *CPU, *weights)
        )
        assert Audio.load(out).duration_s > 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "realtime", "--guidance", "3"], "runs without guidance: --guidance would"),
        (["--preset", "realtime", "--negative", "x"], "--negative would have no effect"),
        (["--preset", "fast", "--scheduler", "DDIM"], "--scheduler is for --preset quality"),
        (["--preset", "realtime", "--steps", "20"], "--steps must be at most 8"),
        (["--preset", "turbo"], "'turbo' is not one of 'quality', 'fast', 'realtime'"),
    ],
)
def test_preset_mistakes_fail_before_loading(tmp_path: Path, args: list[str], message: str) -> None:
    os.chdir(tmp_path)
    result = run("generate", "jazz", "-o", "out.wav", "--model", "./no-model", *args)
    if "turbo" in args:
        assert result.exit_code == 2 and message in result.output
    else:
        failed(result, message)


def test_missing_preset_weights_fail_with_one_line(
    tiny_checkpoint: Path, tiny_vae: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.wav"
    base = ["generate", "jazz", "-o", out, "--model", tiny_checkpoint, *CPU, "--preset", "realtime"]
    # The Hub id, offline and not in the (empty) cache.
    failed(
        run(*base, "--cache-dir", tmp_path / "cache", "--tiny-vae", tiny_vae),
        "bring here as --lcm-lora DIR",
    )
    failed(run(*base, "--lcm-lora", tmp_path / "none.safetensors"), "no such file or folder")
    assert not out.exists()


@pytest.mark.parametrize("command", ["riff", "interpolate", "jam"])
def test_long_form_commands_take_the_preset(
    tiny_checkpoint: Path, weights: list[object], tmp_path: Path, command: str
) -> None:
    tone = tmp_path / "tone.wav"
    t = np.arange(44100) / 44100
    Audio((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], 44100).save(tone)
    arguments = {
        "riff": ["riff", tone, "--prompt", "a"],
        "interpolate": ["interpolate", "--start", "a", "--end", "b", "--num-steps", "2"],
        "jam": ["jam", "--prompt", "a", "--duration", "1"],
    }[command]
    seen: list[tuple[str, int]] = []
    original = RiffusionPipeline.riffuse

    def spy(self: RiffusionPipeline, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((inputs.preset, inputs.num_inference_steps))
        return original(self, inputs, *args, **kwargs)

    with mock.patch.object(RiffusionPipeline, "riffuse", spy):
        succeeded(
            run(
                *arguments,
                "-o",
                tmp_path / "out.wav",
                "--preset",
                "realtime",
                "--model",
                tiny_checkpoint,
                *CPU,
                *weights,
            )
        )
    assert seen and set(seen) == {("realtime", PRESETS["realtime"].steps)}


def test_compare_presets_writes_a_listening_page(
    tiny_checkpoint: Path, weights: list[object], tmp_path: Path
) -> None:
    short = {
        "quality": dataclasses.replace(QUALITY, steps=4),
        "fast": dataclasses.replace(FAST, steps=4),
    }
    clips = preset_comparison.CLIPS[:1] + preset_comparison.CLIPS[2:]
    out = tmp_path / "compare"
    with mock.patch.dict(PRESETS, short), mock.patch.object(preset_comparison, "CLIPS", clips):
        result = succeeded(
            run("compare-presets", "--model", tiny_checkpoint, "-o", out, *CPU, *weights)
        )
    assert "| realtime |" in result.output
    page = (out / "index.html").read_text()
    assert "http" not in page and "<script" not in page
    results = json.loads((out / "results.json").read_text())
    summary = {row["preset"]: row for row in results["summary"]}
    assert list(summary) == ["quality", "fast", "realtime"]
    assert summary["quality"]["distance_db"] == 0
    assert summary["fast"]["distance_db"] > 0 and summary["realtime"]["distance_db"] > 0
    for row in results["clips"]:
        assert (out / row["image"]).is_file() and (out / row["audio"]).is_file()
        assert f'src="{row["audio"]}"' in page and f'src="{row["image"]}"' in page
    assert len(results["clips"]) == 3 * len(clips)
    failed(
        run("compare-presets", "--model", tiny_checkpoint, "-o", out, *CPU, *weights),
        "already exists",
    )
    failed(
        run("compare-presets", "--model", "./none", "-o", tmp_path / "x", "--presets", "turbo"),
        "unknown preset 'turbo'",
    )
