"""`riffusion train` on the tiny checkpoint: it learns, its LoRA loads the same everywhere, a
resumed run is bit-identical to an uninterrupted one, Ctrl-C leaves a resumable checkpoint, and
`accelerate launch` runs it data-parallel. Crops are 64 columns wide to keep steps fast."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from cli_support import failed, run, succeeded
from click.testing import Result
from PIL import Image
from safetensors.torch import load_file

from riffusion.cli.common import EXIT_INTERRUPTED
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.spectrogram.image import save_spectrogram_image
from riffusion.spectrogram.params import SpectrogramParams

RATE = 22050
CAPTIONS = ("low hum", "bright whistle", "middle tone", "buzzing drone")
FAST = ("--dtype", "float32", "--width", "64", "--validation-every", "0")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Steps of the tiny model are too small to share between threads: on a loaded machine,
    threads waiting on each other made them 30x slower. Commands started here get the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def four_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of four one-clip tracks, each a different sound with its own caption."""
    root = tmp_path_factory.mktemp("four")
    audio = root / "audio"
    audio.mkdir()
    times = np.arange(int(5.2 * RATE)) / RATE
    for index, (caption, hz) in enumerate(zip(CAPTIONS, (110, 2400, 600, 180), strict=True)):
        wave = np.sin(2 * np.pi * hz * times)
        if index == 3:
            wave = np.sign(wave)
        soundfile.write(audio / f"track{index}.wav", (0.3 * wave).astype(np.float32), RATE)
        (audio / f"track{index}.txt").write_text(caption)
    succeeded(run("dataset", audio, "-o", root / "dataset"))
    return root / "dataset"


def train(dataset: Path, run_dir: Path, checkpoint: Path, *args: object) -> Result:
    return run("train", dataset, "-o", run_dir, "--model", checkpoint, *FAST, *args)


def losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "loss.csv").read_text().splitlines()[1:]
    return [float(line.split(",")[1]) for line in lines]


@pytest.mark.slow
def test_a_run_overfits_four_clips(four_clips: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = train(
        four_clips,
        run_dir,
        tiny_checkpoint,
        *("--steps", 60, "--batch-size", 4, "--learning-rate", "1e-2", "--rank", 8),
        *("--caption-dropout", 0, "--warmup-steps", 0, "--checkpoint-every", 0),
        # Convolutions too: a random-weight model learns little through attention alone.
        *("--target-modules", "to_q,to_k,to_v,to_out.0,conv_in,conv_out,conv1,conv2"),
    )
    succeeded(result)
    loss = losses(run_dir)
    assert len(loss) == 60
    first, last = np.mean(loss[:10]), np.mean(loss[-10:])
    assert last < 0.7 * first, (first, last)
    # The run folder's parts.
    for name in ("run.json", "loss.png", "README.md", "pytorch_lora_weights.safetensors"):
        assert (run_dir / name).is_file(), name
    assert [path.name for path in (run_dir / "checkpoints").iterdir()] == ["step-000060"]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["dataset"]["clips"] == 4
    assert record["settings"]["rank"] == 8
    card = (run_dir / "README.md").read_text()
    assert "4 spectrogram clips" in card and "LoRA (rank 8)" in card
    assert Image.open(run_dir / "loss.png").size == (800, 400)


@pytest.fixture(scope="module")
def lora_run(
    four_clips: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A short run with alpha twice the rank."""
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    args = ("--steps", 4, "--learning-rate", "1e-2", "--rank", 4, "--lora-alpha", 8)
    succeeded(train(four_clips, run_dir, tiny_checkpoint, *args))
    return run_dir


def test_the_lora_changes_riffuse(lora_run: Path, tiny_checkpoint: Path, tiny_pipeline) -> None:
    from riffusion.diffusion.pipeline import RiffusionPipeline

    tuned = RiffusionPipeline.load_checkpoint(
        tiny_checkpoint,
        device="cpu",
        dtype="float32",
        lora=lora_run / "pytorch_lora_weights.safetensors",
    )
    seed_image = Image.new("RGB", (64, 512), "white")
    prompt = PromptInput(CAPTIONS[0], seed=3, denoising=0.8)
    inputs = InferenceInput(start=prompt, end=prompt, alpha=0.0, num_inference_steps=4)
    base = np.asarray(tiny_pipeline.riffuse(inputs, seed_image), dtype=np.float32)
    changed = np.asarray(tuned.riffuse(inputs, seed_image), dtype=np.float32)
    assert np.abs(changed - base).mean() > 0.5


def test_the_lora_loads_identically_here_and_in_stock_diffusers(
    lora_run: Path, tiny_checkpoint: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    from riffusion.diffusion.pipeline import RiffusionPipeline

    lora = lora_run / "pytorch_lora_weights.safetensors"
    ours = RiffusionPipeline.load_checkpoint(
        tiny_checkpoint, device="cpu", lora=lora, dtype="float32"
    )
    stock = StableDiffusionPipeline.from_pretrained(tiny_checkpoint, safety_checker=None)
    stock.load_lora_weights(str(lora_run), weight_name=lora.name)
    stock.fuse_lora()
    stock.unload_lora_weights()
    base = StableDiffusionPipeline.from_pretrained(tiny_checkpoint, safety_checker=None)
    # The trained factors, unscaled: the fused update must be alpha / rank = 2 times B @ A.
    # The CLIP weights are untouched.
    trained = load_file(
        str(sorted((lora_run / "checkpoints").iterdir())[-1] / "trainable.safetensors")
    )
    for part in ("unet",):
        ours_weights = getattr(ours, part).state_dict()
        stock_weights = getattr(stock, part).state_dict()
        base_weights = getattr(base, part).state_dict()
        assert ours_weights.keys() == stock_weights.keys()
        changed = 0
        for name, weight in ours_weights.items():
            torch.testing.assert_close(weight, stock_weights[name], rtol=0, atol=1e-6)
            if not torch.equal(weight, base_weights[name]):
                changed += 1
                module = name.removesuffix(".weight")
                down = trained[f"{part}.{module}.lora_A.default.weight"]
                up = trained[f"{part}.{module}.lora_B.default.weight"]
                expected = base_weights[name] + 2.0 * up @ down
                torch.testing.assert_close(weight, expected, rtol=1e-4, atol=1e-5)
        assert changed > 0, part
    for name, weight in ours.text_encoder.state_dict().items():
        assert torch.equal(weight, base.text_encoder.state_dict()[name]), name


def test_a_text_encoder_lora_loads_in_stock_diffusers_or_is_refused(
    four_clips: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """transformers' peft integration decides whether CLIP can hold a LoRA: where it can, the
    run's LoRA changes CLIP as loaded by stock diffusers; where it cannot, the run is refused
    before any work, since such a LoRA would load nowhere."""
    from riffusion.errors import RiffusionError
    from riffusion.training.adapters import check_text_encoder_lora_support

    run_dir = tmp_path / "run"
    args = ("--steps", 2, "--learning-rate", "1e-2", "--rank", 4, "--train-text-encoder")
    try:
        check_text_encoder_lora_support()
    except RiffusionError as error:
        failed(train(four_clips, run_dir, tiny_checkpoint, *args), str(error))
        assert not run_dir.exists()
        return
    from diffusers import StableDiffusionPipeline

    succeeded(train(four_clips, run_dir, tiny_checkpoint, *args))
    stock = StableDiffusionPipeline.from_pretrained(tiny_checkpoint, safety_checker=None)
    base = stock.text_encoder.state_dict()
    base = {name: weight.clone() for name, weight in base.items()}
    stock.load_lora_weights(str(run_dir), weight_name="pytorch_lora_weights.safetensors")
    stock.fuse_lora()
    changed = [
        name
        for name, weight in stock.text_encoder.state_dict().items()
        if not torch.equal(weight, base.get(name, weight))
    ]
    assert changed


def test_resume_from_a_mid_run_checkpoint_is_bit_identical(
    four_clips: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    args = ("--steps", 6, "--checkpoint-every", 3, "--keep-checkpoints", 0, "--batch-size", 2)
    args += ("--gradient-accumulation-steps", 2, "--rank", 4, "--snr-gamma", 5)
    whole = tmp_path / "whole"
    succeeded(train(four_clips, whole, tiny_checkpoint, *args))
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-000006")
    for name in ("pytorch_lora_weights.safetensors", "README.md", "loss.png"):
        (resumed / name).unlink()
    result = succeeded(run("train", four_clips, "-o", resumed, "--resume", "--checkpoint-every", 3))
    assert "Resuming from the checkpoint of step 3." in result.stderr
    for name in (
        "pytorch_lora_weights.safetensors",
        "checkpoints/step-000006/trainable.safetensors",
    ):
        expected, got = load_file(str(whole / name)), load_file(str(resumed / name))
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), key
    assert losses(resumed) == losses(whole)
    optimizer = torch.load(resumed / "checkpoints/step-000006/optimizer.pt", weights_only=True)
    reference = torch.load(whole / "checkpoints/step-000006/optimizer.pt", weights_only=True)
    for state, other in zip(
        optimizer["optimizer"]["state"].values(),
        reference["optimizer"]["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(state[key], other[key]) for key in state)


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_checkpoint(
    four_clips: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    args = ["train", four_clips, "-o", run_dir, "--model", tiny_checkpoint, *FAST]
    args += ["--steps", "12", "--checkpoint-every", "0", "--rank", "4"]
    process = subprocess.Popen(
        [sys.executable, "-m", "riffusion.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 300
        while len(losses(run_dir) if (run_dir / "loss.csv").is_file() else []) < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no step done in 300 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    (checkpoint,) = (run_dir / "checkpoints").iterdir()
    step = int(checkpoint.name.removeprefix("step-"))
    assert 2 <= step < 12
    assert f"Interrupted after step {step} of 12: saved {checkpoint}" in stderr
    assert not (run_dir / "pytorch_lora_weights.safetensors").exists()

    result = succeeded(run("train", four_clips, "-o", run_dir, "--resume"))
    assert f"Resuming from the checkpoint of step {step}." in result.stderr
    steps = [
        int(line.split(",")[0]) for line in (run_dir / "loss.csv").read_text().splitlines()[1:]
    ]
    assert steps == list(range(1, 13))
    assert (run_dir / "pytorch_lora_weights.safetensors").is_file()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_accelerate_launch_runs_two_cpu_processes(
    four_clips: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("accelerate")
    run_dir = tmp_path / "run"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", str(free_port())]
    args = ["-m", "riffusion.cli", "train", four_clips, "-o", run_dir]
    args += ["--model", tiny_checkpoint, "--device", "cpu", *FAST, "--steps", "3", "--rank", "4"]
    completed = subprocess.run(
        [*launch, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["processes"] == 2
    assert len(losses(run_dir)) == 3
    assert (run_dir / "pytorch_lora_weights.safetensors").is_file()
    assert "Batch | 1 x 1 accumulation x 2 processes = 2" in (run_dir / "README.md").read_text()


def test_full_fine_tuning_writes_a_model_folder(
    four_clips: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from riffusion.diffusion.pipeline import RiffusionPipeline

    run_dir = tmp_path / "run"
    succeeded(
        train(
            four_clips, run_dir, tiny_checkpoint, "--steps", 2, "--full", "--learning-rate", "1e-3"
        )
    )
    tuned = RiffusionPipeline.load_checkpoint(run_dir / "model", device="cpu", dtype="float32")
    base = RiffusionPipeline.load_checkpoint(tiny_checkpoint, device="cpu", dtype="float32")
    weight = "conv_in.weight"
    assert not torch.equal(tuned.unet.state_dict()[weight], base.unet.state_dict()[weight])
    assert not (run_dir / "pytorch_lora_weights.safetensors").exists()


def write_image(path: Path, size: tuple[int, int], exif: bool = True) -> None:
    image = Image.new("RGB", size, "white")
    if exif:
        image.getexif().update(SpectrogramParams().to_exif())
        save_spectrogram_image(image, path)
    else:
        image.save(path)


def test_errors_before_any_work(four_clips: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    failed(train(tmp_path / "missing", out, tiny_checkpoint), "missing: no such dataset folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    failed(train(empty, out, tiny_checkpoint), "not a dataset (it has no metadata.jsonl)")
    (empty / "metadata.jsonl").write_text("")
    failed(train(empty, out, tiny_checkpoint), "the dataset is empty")

    for name, size, exif, message in (
        ("tall.png", (512, 256), True, "256 pixels tall; the model's spectrograms have 512 rows"),
        ("plain.png", (512, 512), False, "no spectrogram parameters in its EXIF"),
        ("narrow.png", (32, 512), True, "32 columns wide, narrower than the training width 64"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        write_image(folder / name, size, exif)
        (folder / "metadata.jsonl").write_text(json.dumps({"file_name": name, "text": "x"}) + "\n")
        failed(train(folder, out, tiny_checkpoint), message)
    assert not out.exists()

    failed(train(four_clips, out, tiny_checkpoint, "--rank", 0), "--rank must be at least 1, got 0")
    failed(
        train(four_clips, out, tiny_checkpoint, "--dtype", "float16"),
        "float16 training needs a CUDA GPU",
    )
    failed(run("train", four_clips, "-o", out, "--resume"), "no training run to resume")


def test_an_output_folder_with_another_run(
    four_clips: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    succeeded(train(four_clips, out, tiny_checkpoint, "--steps", 1, "--rank", 4))
    failed(train(four_clips, out, tiny_checkpoint), "holds another training run; pass --resume")
    failed(
        run("train", four_clips, "-o", out, "--resume", "--rank", 8),
        "--rank 8 differs from the run's 4; a resumed run keeps its settings",
    )
    failed(run("train", four_clips, "-o", out, "--resume"), "the run is complete (1 of 1 steps)")


def test_not_enough_memory_says_what_to_lower(
    four_clips: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from riffusion.training import trainer

    monkeypatch.setattr(trainer, "available_bytes", lambda device: 1024)
    out = tmp_path / "run"
    result = train(four_clips, out, tiny_checkpoint, "--batch-size", 4, "--steps", 1)
    failed(result, "not enough memory for --batch-size 4")
    assert "lower --batch-size (to 2 with --gradient-accumulation-steps 2" in result.stderr
    assert not out.exists() or not any(out.iterdir())
