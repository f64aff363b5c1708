"""The server end to end: time to first audio and sustained clips per minute over the jam WebSocket,
with one and with several concurrent sessions, and what batching their UNet calls gives.

A real `riffusion serve` app runs in this process under uvicorn on a free port; clients talk to it
over real WebSockets. Each session acknowledges every clip as soon as it arrives (as if played
instantly), so the server generates as fast as it can. Figures:

- load: seconds from starting the server until /health says ready.
- first audio, cold: from starting the server (model not loaded) to the first clip of a jam.
- first audio, warm: from "start" on a new connection to its first clip, model loaded.
- clips/min: clips pushed per minute over --seconds, for 1..N concurrent sessions; a jam plays
  in real time when clips/min per session * clip length (s) >= 60.
- per clip: diffusion (riffuse) and phase reconstruction + encoding, measured directly.
- UNet batching: one UNet call on the latents of B requests (2B rows with guidance) against B
  calls on 2 rows: the most batching concurrent sessions into one call could save per step.
- worker batching: clips/min of the inference worker itself (InferenceWorker, diffusion to MP3)
  with each --max-batches setting, fed by --worker-sessions clients that each keep one job in the
  queue (as jams do), over --seconds per setting and round: the median over --rounds rounds in
  which the settings take turns, as ratios to the first setting, with the mean number of jobs per
  batch the worker ran.

    .venv/bin/python bench/bench_server.py [--size tiny|sd15] [--steps 10] [--seconds 60]
        [--sessions 1,2] [--seed-image og_beat] [--checkpoint-dir DIR] [--device cpu]
        [--max-batches 1,2,4] [--worker-sessions 4] [--rounds 1] [--worker-only]

--worker-only loads the model and measures worker batching alone.

--size sd15 uses riffusion.testing.make_random_checkpoint's random weights of Stable Diffusion
1.5's sizes (written once, about 4.3 GB): riffusion-model-v1's compute without downloading it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import torch
import uvicorn
from random_checkpoints import default_checkpoint_dir, random_checkpoint
from websockets.asyncio.client import connect

from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.server.app import ServerConfig, create_app
from riffusion.server.worker import InferenceWorker

PROMPTS = ("lo-fi beat for the holidays", "jazz piano trio", "techno with a heavy kick")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    checkpoint: Path, device: str
) -> tuple[uvicorn.Server, threading.Thread, str, object]:
    """The app under uvicorn on a free port, started now; returns (server, thread, url, app)."""
    app = create_app(ServerConfig(ModelSettings(str(checkpoint), device=device)))
    return (*serve_app(app), app)


def serve_app(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    """app under uvicorn on a free port, started now; returns (server, thread, address)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"127.0.0.1:{port}"


def start_message(prompt: str, args: argparse.Namespace, seed: int) -> str:
    settings = {"seed_image_id": args.seed_image, "num_inference_steps": args.steps, "seed": seed}
    return json.dumps({"type": "start", "prompt": prompt, "settings": settings, "clips_ahead": 1})


async def first_clip_s(address: str, args: argparse.Namespace) -> float:
    """Seconds from sending "start" on a new connection to its first clip."""
    async with connect(f"ws://{address}/api/jam", max_size=None) as socket:
        started = time.perf_counter()
        await socket.send(start_message(PROMPTS[0], args, seed=1))
        while json.loads(await socket.recv())["type"] != "clip":
            pass
        return time.perf_counter() - started


async def jam_session(
    address: str, args: argparse.Namespace, number: int, stop_at: float, counts: list[int]
) -> float:
    """Play a jam, acknowledging each clip at once, until stop_at; returns its clip length (s)."""
    duration_s = 0.0
    async with connect(f"ws://{address}/api/jam", max_size=None) as socket:
        await socket.send(start_message(PROMPTS[number % len(PROMPTS)], args, seed=number))
        while time.perf_counter() < stop_at:
            try:
                text = await asyncio.wait_for(socket.recv(), stop_at - time.perf_counter())
            except asyncio.TimeoutError:
                break
            message = json.loads(text)
            if message["type"] == "clip":
                counts[number] += 1
                duration_s = message["duration_s"]
                await socket.send(json.dumps({"type": "played", "index": message["index"]}))
    return duration_s


async def sustained(address: str, args: argparse.Namespace, sessions: int) -> tuple[float, float]:
    """(clips per minute in total, clip length s) with `sessions` jams at once."""
    counts = [0] * sessions
    started = time.perf_counter()
    stop_at = started + args.seconds
    durations = await asyncio.gather(
        *(jam_session(address, args, number, stop_at, counts) for number in range(sessions))
    )
    elapsed = time.perf_counter() - started
    return sum(counts) * 60.0 / elapsed, max(durations)


def clip_inputs(args: argparse.Namespace, number: int, seed: int) -> InferenceInput:
    """A jam-like clip: halfway between two prompts and two seeds, denoising 0.75, guidance 7."""
    return InferenceInput(
        start=PromptInput(PROMPTS[number % len(PROMPTS)], seed),
        end=PromptInput(PROMPTS[(number + 1) % len(PROMPTS)], seed + 1),
        alpha=0.5,
        num_inference_steps=args.steps,
    )


def per_clip_stages(app: object, args: argparse.Namespace) -> tuple[float, float]:
    """(diffusion s, reconstruction + encoding s) of one clip, on the server's own pipeline."""
    pipeline = app.state.model.pipeline()
    seed_image = app.state.library.seed_image(args.seed_image)
    inputs = clip_inputs(args, 0, 5)
    synchronize = device_synchronizer(pipeline.device)
    started = time.perf_counter()
    image = pipeline.riffuse(inputs, seed_image)
    synchronize()
    diffused = time.perf_counter()
    pipeline.audio_from_image(image).to_bytes("mp3")
    return diffused - started, time.perf_counter() - diffused


@torch.no_grad()
def unet_batching(app: object, batches: tuple[int, ...] = (1, 2, 4)) -> list[tuple[int, float]]:
    """[(requests B, ms per request per step)] for one UNet call on 2B rows (64 x 64 latents)."""
    pipeline = app.state.model.pipeline()
    unet = pipeline.unet
    width = unet.config.cross_attention_dim
    synchronize = device_synchronizer(pipeline.device)
    results = []
    for requests in batches:
        rows = 2 * requests
        latents = torch.randn(rows, 4, 64, 64, dtype=unet.dtype, device=pipeline.device)
        text = torch.randn(rows, 77, width, dtype=unet.dtype, device=pipeline.device)
        unet(latents, 500, encoder_hidden_states=text)  # warm-up
        repeats = 3
        synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            unet(latents, 500, encoder_hidden_states=text)
        synchronize()
        call_s = (time.perf_counter() - started) / repeats
        results.append((requests, call_s * 1000.0 / requests))
    return results


def worker_throughput(
    app: object, args: argparse.Namespace, max_batch: int
) -> tuple[int, float, int]:
    """(clips, seconds, batches) of an InferenceWorker with max_batch on the app's pipeline,
    after a warm-up batch.

    --worker-sessions clients each submit a clip, wait for it and submit the next, until
    --seconds have passed; every clip counts, over the time until the last one is done (so a few
    clips in the window are not rounded down to the whole ones finished in it).
    """
    sessions = args.worker_sessions
    worker = InferenceWorker(app.state.model, capacity=sessions, max_batch=max_batch)
    worker.start()
    seed_image = app.state.library.seed_image(args.seed_image)
    try:
        # Warm-up: first calls pay one-time set-up (kernel choice, FFT plans).
        warm_up = [
            worker.submit(clip_inputs(args, n, n), seed_image, None)
            for n in range(min(max_batch, sessions))
        ]
        for job in warm_up:
            job.future.result()
        worker.batch_sizes.clear()

        counts = [0] * sessions
        started = time.perf_counter()
        deadline = started + args.seconds

        def session(number: int) -> None:
            seed = 1000 * (number + 1)
            while time.perf_counter() < deadline:
                job = worker.submit(clip_inputs(args, number, seed), seed_image, None)
                job.future.result()
                seed += 2
                counts[number] += 1

        threads = [threading.Thread(target=session, args=(n,)) for n in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        worker.stop()
    return sum(counts), elapsed, sum(worker.batch_sizes.values())


def worker_batching(app: object, args: argparse.Namespace) -> None:
    """Print the worker's clips/min for each --max-batches setting: the median over --rounds
    rounds in which the settings take turns, so that a change of the machine's load, or one
    stalled round, hits them alike."""
    settings = [int(n) for n in args.max_batches.split(",")]
    rates: dict[int, list[float]] = {max_batch: [] for max_batch in settings}
    jobs_per_batch: dict[int, list[float]] = {max_batch: [] for max_batch in settings}
    for _ in range(args.rounds):
        for max_batch in settings:
            clips, seconds, batches = worker_throughput(app, args, max_batch)
            rates[max_batch].append(clips * 60.0 / seconds)
            jobs_per_batch[max_batch].append(clips / batches)
    base = statistics.median(rates[settings[0]])
    for max_batch in settings:
        median = statistics.median(rates[max_batch])
        rounds = ", ".join(f"{rate:.1f}" for rate in rates[max_batch])
        print(
            f"worker, {args.worker_sessions} sessions, max_batch {max_batch}: "
            f"{median:.1f} clips/min ({median / base:.2f}x max_batch {settings[0]}; rounds "
            f"{rounds}), {statistics.mean(jobs_per_batch[max_batch]):.2f} jobs per batch",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def device_synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--steps", type=int, default=10, help="diffusion steps of the schedule")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run, s")
    parser.add_argument("--sessions", default="1,2", help="concurrent jams to try, e.g. 1,2,4")
    parser.add_argument("--seed-image", default="og_beat")
    parser.add_argument("--checkpoint-dir", type=Path, help="default: $TMPDIR/riffusion-bench-SIZE")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    parser.add_argument("--max-batches", default="1,2,4", help="worker max_batch settings to try")
    parser.add_argument("--worker-sessions", type=int, default=4, help="clients of the worker")
    parser.add_argument("--rounds", type=int, default=1, help="turns of each max_batch setting")
    parser.add_argument("--worker-only", action="store_true", help="measure worker batching only")
    args = parser.parse_args()
    checkpoint = random_checkpoint(
        args.checkpoint_dir or default_checkpoint_dir(args.size), args.size
    )

    print(
        f"model {args.size} (random weights), {args.steps} steps, denoising 0.75, seed image "
        f"{args.seed_image}, {args.device}, {torch.get_num_threads()} torch threads, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    started = time.perf_counter()
    server, thread, address, app = start_server(checkpoint, args.device)
    try:
        if args.worker_only:
            app.state.model.wait()
        else:
            server_figures(address, app, args, started)
        worker_batching(app, args)
    finally:
        server.should_exit = True
        thread.join(30)
    return 0


def server_figures(address: str, app: object, args: argparse.Namespace, started: float) -> None:
    """Print load and first-audio times, per-clip stages, sustained jams and UNet batching."""
    asyncio.run(first_clip_s(address, args))
    cold_s = time.perf_counter() - started
    load_s = httpx.get(f"http://{address}/health").json()["elapsed_s"]
    warm_s = asyncio.run(first_clip_s(address, args))
    diffusion_s, audio_s = per_clip_stages(app, args)
    print(f"load: {load_s:.1f} s")
    print(f"first audio, cold (server start to first clip): {cold_s:.1f} s")
    print(f"first audio, warm (start message to first clip): {warm_s:.1f} s")
    print(f"per clip: diffusion {diffusion_s:.2f} s, reconstruction + encoding {audio_s:.2f} s")
    for sessions in (int(n) for n in args.sessions.split(",")):
        per_minute, clip_s = asyncio.run(sustained(address, args, sessions))
        realtime = per_minute / sessions * clip_s / 60.0
        print(
            f"{sessions} session(s): {per_minute:.1f} clips/min in total, "
            f"{per_minute / sessions:.1f} per session ({clip_s:.2f}-s clips: "
            f"{realtime:.2f}x real time per session)",
            flush=True,
        )
    batching = unet_batching(app)
    single = batching[0][1]
    for requests, per_request_ms in batching:
        print(
            f"UNet, {requests} request(s) in one call: {per_request_ms:.0f} ms per request "
            f"per step ({single / per_request_ms:.2f}x the throughput of one at a time)"
        )


if __name__ == "__main__":
    sys.exit(main())
