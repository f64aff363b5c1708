"""Batched generation on the tiny checkpoint: RiffusionPipeline.riffuse_batch against the original
algorithm and against separate riffuse calls, the inference worker's batching of queued jobs, and
`serve --max-batch`."""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
import soundfile
import torch
from click.testing import CliRunner
from original_riffusion import original_riffuse
from PIL import Image
from server_support import TINY_SEED_ID, write_seed_images

from riffusion import InferenceInput, PromptInput, RiffusionPipeline
from riffusion.cli.main import cli
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.pipeline import Cancelled, RiffuseRequest
from riffusion.errors import RiffusionError
from riffusion.server.app import ServerConfig, create_app
from riffusion.server.model import ModelHolder
from riffusion.server.worker import JPEG_QUALITY, InferenceWorker, resolve_max_batch

SIZE = 128
STEPS = 4
# Batched matrix products round differently from single ones: latents (magnitudes ~10) agree to
# about 1e-5 on the tiny model, while different requests differ by ~10.
LATENT_TOLERANCE = 1e-4
LONG_PROMPT = " ".join(["jazz piano"] * 60)  # over 75 tokens: two 77-token chunks


@pytest.fixture(scope="module")
def pipe(tiny_pipeline: RiffusionPipeline) -> RiffusionPipeline:
    return tiny_pipeline


def noise_image(seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def left_half_kept() -> Image.Image:
    pixels = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    pixels[:, : SIZE // 2] = 0
    return Image.fromarray(pixels, mode="L")


def request(
    start: PromptInput,
    end: PromptInput | None = None,
    alpha: float = 0.0,
    steps: int = STEPS,
    image: Image.Image | None = None,
    **kwargs: Any,
) -> RiffuseRequest:
    inputs = InferenceInput(start, end or start, alpha=alpha, num_inference_steps=steps)
    return RiffuseRequest(inputs, image or noise_image(0), **kwargs)


def alone(pipe: RiffusionPipeline, item: RiffuseRequest, **kwargs: Any) -> Any:
    return pipe.riffuse(item.inputs, item.init_image, item.mask_image, **kwargs)


@pytest.fixture
def unet_rows(pipe: RiffusionPipeline) -> Iterator[list[int]]:
    """The batch size (rows) of every UNet call while the test runs."""
    rows: list[int] = []
    handle = pipe.unet.register_forward_pre_hook(lambda _, args: rows.append(args[0].shape[0]))
    try:
        yield rows
    finally:
        handle.remove()


# --- riffuse_batch ------------------------------------------------------------------------------


def test_each_request_of_a_batch_gets_what_the_original_gives_it(
    pipe, unet_rows: list[int]
) -> None:
    """Against an independent reference: the original riffusion's riffuse, written out plainly
    in tests/original_riffusion.py, run for each request on its own."""
    progress: list[list[tuple[int, int]]] = [[], [], []]
    items = [
        request(
            PromptInput("lofi beat", seed=1, guidance=7.0),
            PromptInput("church bells", seed=2, guidance=3.0, denoising=0.8),
            alpha=0.25,  # denoising 0.7625: int(4 * 0.7625) = 3 steps, as 0.75 gives
            callback=lambda *step: progress[0].append(step),
        ),
        request(
            PromptInput("techno", seed=9, guidance=2.0),
            PromptInput("house", seed=10, guidance=9.0),
            alpha=0.6,
            image=noise_image(1),
            callback=lambda *step: progress[1].append(step),
        ),
        request(
            PromptInput("ambient pads", seed=3, guidance=5.0),
            image=noise_image(2),
            callback=lambda *step: progress[2].append(step),
        ),
    ]
    batched = pipe.riffuse_batch(items, output_type="latent")
    batched_rows = list(unet_rows)
    for latents, item in zip(batched, items, strict=True):
        expected = original_riffuse(pipe, item.inputs, item.init_image)
        torch.testing.assert_close(latents, expected, rtol=0, atol=LATENT_TOLERANCE)
    # One UNet call per step for the whole batch, each request reporting every step.
    total = len(batched_rows)
    assert total >= 3 and batched_rows == [6] * total
    assert progress == [[(done, total) for done in range(total + 1)]] * len(items)


def test_batch_matches_separate_calls(pipe, unet_rows: list[int]) -> None:
    """Different prompts, seeds, alphas, guidances, a mask and a two-chunk prompt in one batch."""
    totals: list[int] = []
    items = [
        request(
            PromptInput("lofi beat", seed=1, negative_prompt="noise", guidance=7.0),
            PromptInput("church bells", seed=2, guidance=3.0, denoising=0.8),
            alpha=0.25,  # denoising 0.76: int(4 * 0.76) = 3 steps, as 0.75 gives
            callback=lambda done, total: totals.append(total),
        ),
        request(
            PromptInput(LONG_PROMPT, seed=5, guidance=5.0),
            image=noise_image(1),
            mask_image=left_half_kept(),
        ),
        request(
            PromptInput("techno", seed=9, guidance=2.0),
            PromptInput("house", seed=10, guidance=9.0),
            alpha=0.6,
        ),
    ]
    batched = pipe.riffuse_batch(items, output_type="latent")
    assert unet_rows == [6] * totals[0]  # one call per step, two rows per request
    separate = [alone(pipe, item, output_type="latent") for item in items]
    for latents, expected in zip(batched, separate, strict=True):
        torch.testing.assert_close(latents, expected, rtol=0, atol=LATENT_TOLERANCE)
    assert (separate[0] - separate[2]).abs().max() > 1.0  # the requests' results do differ


def test_unguided_batch_with_per_step_noise_matches_separate_calls(pipe) -> None:
    """EulerAncestral draws noise every step, from each request's own generator."""
    tagged = noise_image(2)
    tagged.getexif()[0x010E] = "a seed with a description"
    items = [
        request(PromptInput("ambient pads", seed=3, guidance=1.0), image=tagged),
        request(PromptInput("drum and bass", seed=4, guidance=0.5, denoising=0.9)),
    ]
    batched = pipe.riffuse_batch(items, scheduler="EulerAncestral")
    separate = [alone(pipe, item, scheduler="EulerAncestral") for item in items]
    for image, expected in zip(batched, separate, strict=True):
        difference = np.abs(np.asarray(image, dtype=int) - np.asarray(expected, dtype=int))
        assert difference.max() <= 1  # a level of rounding at most
    assert batched[0].getexif()[0x010E] == "a seed with a description"
    assert 0x010E not in batched[1].getexif()


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"steps": 6}, "num_inference_steps 4 != 6; denoising_steps 3 != 4"),
        ({"denoising": 0.5}, r"denoising_steps 3 != 2$"),
        ({"guidance": 1.0}, r"guided True != False$"),
        ({"image": noise_image(0, (2 * SIZE, SIZE))}, r"latent_size \(16, 16\) != \(16, 32\)$"),
    ],
)
def test_incompatible_requests_are_refused(pipe, unet_rows, other: dict, message: str) -> None:
    prompt = {key: value for key, value in other.items() if key in ("denoising", "guidance")}
    shape = {key: value for key, value in other.items() if key not in prompt}
    items = [
        request(PromptInput("jazz", seed=1)),
        request(PromptInput("rock", 2, **prompt), **shape),
    ]
    with pytest.raises(RiffusionError, match=f"requests 0 and 1 cannot share a batch: {message}"):
        pipe.riffuse_batch(items)
    assert unet_rows == []


def test_cancelled_members_do_not_stop_the_others(pipe, unet_rows: list[int]) -> None:
    def stop_after_first_step(done: int, total: int) -> None:
        if done == 1:
            raise Cancelled("listener left")

    cancelled = threading.Event()
    cancelled.set()
    totals: list[int] = []
    items = [
        request(
            PromptInput("lofi beat", seed=1), callback=lambda done, total: totals.append(total)
        ),
        request(PromptInput("church bells", seed=2), callback=stop_after_first_step),
        request(PromptInput("techno", seed=3), cancel=cancelled),
    ]
    first, second, third = pipe.riffuse_batch(items, output_type="latent")
    assert isinstance(second, Cancelled) and str(second) == "listener left"
    total = totals[0]
    assert isinstance(third, Cancelled) and str(third) == f"cancelled after 0 of {total} steps"
    # The third never reached the UNet, the second left after one step.
    assert unet_rows == [4] + [2] * (total - 1)
    expected = alone(pipe, items[0], output_type="latent")
    torch.testing.assert_close(first, expected, rtol=0, atol=LATENT_TOLERANCE)


# --- the worker ---------------------------------------------------------------------------------


class SteppedPipeline:
    """The tiny pipeline, recording which jobs each generation call ran (by start prompt); call
    n of the first len(gates) waits for gates[n] after setting entered[n]."""

    def __init__(self, pipeline: RiffusionPipeline, gated_calls: int) -> None:
        self.pipeline = pipeline
        self.runs: list[list[str]] = []
        self.images: dict[str, Image.Image] = {}
        self.gates = [threading.Event() for _ in range(gated_calls)]
        self.entered = [threading.Event() for _ in range(gated_calls)]

    def _turn(self, prompts: list[str]) -> None:
        call = len(self.runs)
        self.runs.append(prompts)
        if call < len(self.gates):
            self.entered[call].set()
            if not self.gates[call].wait(60):
                raise TimeoutError("the test never opened the gate")

    def riffuse_batch(self, requests: list[RiffuseRequest], *args: Any, **kwargs: Any) -> list:
        self._turn([item.inputs.start.prompt for item in requests])
        results = self.pipeline.riffuse_batch(requests, *args, **kwargs)
        for item, result in zip(requests, results, strict=True):
            self.images[item.inputs.start.prompt] = result
        return results

    def batch_key(self, *args: Any, **kwargs: Any) -> Any:
        return self.pipeline.batch_key(*args, **kwargs)

    def audio_from_image(self, *args: Any, **kwargs: Any) -> Any:
        return self.pipeline.audio_from_image(*args, **kwargs)


@pytest.fixture(scope="module")
def server_seed(tmp_path_factory: pytest.TempPathFactory) -> Image.Image:
    """The server tests' 64 x 512 seed image: its clips reconstruct quickly."""
    folder = write_seed_images(tmp_path_factory.mktemp("batching"))
    return Image.open(folder / f"{TINY_SEED_ID}.png").convert("RGB")


def start_worker(pipeline: SteppedPipeline, max_batch: int, **options: Any) -> InferenceWorker:
    holder = ModelHolder("tiny", "cpu", lambda progress: pipeline)
    holder.start()
    holder.wait(30)
    worker = InferenceWorker(holder, max_batch=max_batch, **options)
    worker.start()
    return worker


def inputs(prompt: str, steps: int = 2) -> InferenceInput:
    start = PromptInput(prompt, seed=ord(prompt), denoising=1.0)
    return InferenceInput(start, start, alpha=0.0, num_inference_steps=steps)


def jpeg(image: Image.Image) -> bytes:
    """image encoded as the worker encodes clips."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, exif=image.getexif())
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("max_batch", "runs"),
    [
        (1, [["A"], ["B"], ["C"], ["X"], ["D"], ["E"]]),
        # B takes D (C needs other steps, X is unusable); the others keep their order.
        (2, [["A"], ["B", "D"], ["C"], ["X"], ["E"]]),
    ],
)
def test_worker_batches_compatible_waiting_jobs(
    pipe, server_seed: Image.Image, max_batch: int, runs: list[list[str]]
) -> None:
    stepped = SteppedPipeline(pipe, gated_calls=1)
    worker = start_worker(stepped, max_batch)
    try:
        jobs = {"A": worker.submit(inputs("A"), server_seed, None)}
        assert stepped.entered[0].wait(60)  # A runs; the others queue behind it
        jobs["B"] = worker.submit(inputs("B"), server_seed, None)
        jobs["C"] = worker.submit(inputs("C", steps=3), server_seed, None)
        jobs["X"] = worker.submit(inputs("X"), server_seed.crop((0, 0, 100, 512)), None)
        jobs["D"] = worker.submit(inputs("D"), server_seed, None)
        jobs["E"] = worker.submit(inputs("E"), server_seed, None)
        stepped.gates[0].set()

        with pytest.raises(RiffusionError, match="seed image is 100x512 pixels"):
            jobs["X"].future.result(60)
        clips = {name: job.future.result(60) for name, job in jobs.items() if name != "X"}
        assert stepped.runs == runs
        assert worker.batch_sizes == Counter(len(run) for run in runs)
        assert worker.completed == 6
        # Each future holds its own job's clip: the JPEG of the image the pipeline made for it.
        assert len({clip.jpeg for clip in clips.values()}) == len(clips)
        for name, clip in clips.items():
            assert clip.jpeg == jpeg(stepped.images[name])
    finally:
        worker.stop()


def test_cancelling_one_job_of_a_running_batch_drops_only_that_job(
    pipe, server_seed: Image.Image
) -> None:
    stepped = SteppedPipeline(pipe, gated_calls=2)
    worker = start_worker(stepped, max_batch=4)
    try:
        first = worker.submit(inputs("A"), server_seed, None)
        assert stepped.entered[0].wait(60)
        kept = worker.submit(inputs("B"), server_seed, None)
        dropped = worker.submit(inputs("C"), server_seed, None)
        stepped.gates[0].set()
        assert stepped.entered[1].wait(60)  # B and C are running together
        worker.cancel(dropped)
        stepped.gates[1].set()

        with pytest.raises(Cancelled):
            dropped.future.result(60)
        assert kept.future.result(60).duration_s == pytest.approx(0.64)
        assert first.future.result(60).duration_s == pytest.approx(0.64)
        assert stepped.runs == [["A"], ["B", "C"]]
        assert worker.completed == 3 and worker.dropped == 0
    finally:
        worker.stop()


def test_jobs_with_and_without_audio_share_a_batch_and_keep_their_kind(
    pipe, server_seed: Image.Image
) -> None:
    """The jam's jobs (no audio: it joins the images itself) batch with the API's."""
    stepped = SteppedPipeline(pipe, gated_calls=1)
    worker = start_worker(stepped, max_batch=4)
    try:
        first = worker.submit(inputs("A"), server_seed, None)
        assert stepped.entered[0].wait(60)
        jam = worker.submit(inputs("B"), server_seed, None, with_audio=False)
        api = worker.submit(inputs("C"), server_seed, None)
        stepped.gates[0].set()

        jam_clip, api_clip = jam.future.result(60), api.future.result(60)
        first.future.result(60)
        assert stepped.runs == [["A"], ["B", "C"]]
        assert jam_clip.mp3 == b"" and jam_clip.duration_s == 0.0
        assert jam_clip.image is stepped.images["B"]
        assert jam_clip.jpeg == jpeg(stepped.images["B"])
        assert soundfile.info(io.BytesIO(api_clip.mp3)).format == "MP3"
        assert api_clip.duration_s == pytest.approx(0.64)
        assert api_clip.jpeg == jpeg(stepped.images["C"])
    finally:
        worker.stop()


def test_a_failing_batch_key_runs_the_job_alone_and_the_worker_goes_on(
    pipe, server_seed: Image.Image
) -> None:
    stepped = SteppedPipeline(pipe, gated_calls=1)
    worker = start_worker(stepped, max_batch=2)
    try:
        first = worker.submit(inputs("A"), server_seed, None)
        assert stepped.entered[0].wait(60)
        with mock.patch.object(stepped, "batch_key", side_effect=ValueError("no key today")):
            queued = [worker.submit(inputs(name), server_seed, None) for name in "BC"]
            stepped.gates[0].set()
            clips = [job.future.result(60) for job in [first, *queued]]
        assert stepped.runs == [["A"], ["B"], ["C"]]
        assert all(clip.jpeg for clip in clips)
        assert worker.submit(inputs("D"), server_seed, None).future.result(60).jpeg
    finally:
        worker.stop()


def test_worker_waits_for_the_client_it_just_served_only_when_jobs_wait(
    pipe, server_seed: Image.Image
) -> None:
    """Two clients that each send their next job when the last one is done share batches."""
    stepped = SteppedPipeline(pipe, gated_calls=1)
    worker = start_worker(stepped, max_batch=2, gather_s=120.0)
    try:
        first = worker.submit(inputs("A"), server_seed, None)
        # An idle worker starts at once: it waits for a fuller batch only when jobs are waiting.
        assert stepped.entered[0].wait(30)
        waiting = worker.submit(inputs("B"), server_seed, None)
        stepped.gates[0].set()
        first.future.result(60)
        # The worker holds B back for A's client, whose next job then joins it.
        following = worker.submit(inputs("C"), server_seed, None)
        waiting.future.result(60)
        following.future.result(60)
        assert stepped.runs == [["A"], ["B", "C"]]
    finally:
        worker.stop()


# --- the setting --------------------------------------------------------------------------------


def test_auto_max_batch_is_per_device() -> None:
    assert resolve_max_batch("auto", "cpu") == 2
    assert resolve_max_batch("auto", "cuda:1") == 4
    assert resolve_max_batch("auto", "mps") == 1
    assert resolve_max_batch(3, "cpu") == 3
    for bad in (0, -2, 1.5, "four", True):
        with pytest.raises(RiffusionError, match="max_batch must be 'auto' or a whole number"):
            resolve_max_batch(bad, "cpu")


def test_server_config_sets_the_workers_batch() -> None:
    on_cpu = ModelSettings(device="cpu")
    assert create_app(ServerConfig(on_cpu)).state.worker.max_batch == 2
    assert create_app(ServerConfig(on_cpu, max_batch=3)).state.worker.max_batch == 3


@pytest.mark.parametrize(("value", "expected"), [("auto", 2), ("3", 3), (" 2 ", 2)])
def test_serve_max_batch_option(value: str, expected: int) -> None:
    with mock.patch("uvicorn.run") as run:
        result = CliRunner().invoke(cli, ["serve", "--device", "cpu", "--max-batch", value])
    assert result.exit_code == 0, result.output
    (app,), _ = run.call_args
    assert app.state.worker.max_batch == expected


@pytest.mark.parametrize("value", ["0", "-1", "lots", "2.5", ""])
def test_serve_refuses_a_bad_max_batch_in_one_line(value: str) -> None:
    with mock.patch("uvicorn.run") as run:
        result = CliRunner().invoke(cli, ["serve", "--max-batch", value])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.strip().splitlines() == [
        f"Error: --max-batch must be 'auto' or a whole number of at least 1, got {value!r}"
    ]
    run.assert_not_called()
