"""The server end to end: time to first audio and sustained clips per minute over the jam WebSocket,
with one and with several concurrent sessions, plus what batching their UNet calls would give.

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

    .venv/bin/python bench/bench_server.py [--size tiny|sd15] [--steps 10] [--seconds 60]
        [--sessions 1,2] [--seed-image og_beat] [--checkpoint-dir DIR]

--size sd15 uses riffusion.testing.make_random_checkpoint's random weights of Stable Diffusion
1.5's sizes (written once, about 4.3 GB): riffusion-model-v1's compute without downloading it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import torch
import uvicorn
from websockets.asyncio.client import connect

from riffusion.server.app import ServerConfig, create_app
from riffusion.testing import make_random_checkpoint

PROMPTS = ("lo-fi beat for the holidays", "jazz piano trio", "techno with a heavy kick")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(checkpoint: Path) -> tuple[uvicorn.Server, threading.Thread, str, object]:
    """The app under uvicorn on a free port, started now; returns (server, thread, url, app)."""
    app = create_app(ServerConfig(model=str(checkpoint), device="cpu"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"127.0.0.1:{port}", app


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


def per_clip_stages(app: object, args: argparse.Namespace) -> tuple[float, float]:
    """(diffusion s, reconstruction + encoding s) of one clip, on the server's own pipeline."""
    from riffusion.diffusion.inputs import InferenceInput, PromptInput

    pipeline = app.state.model.pipeline()
    seed_image = app.state.library.seed_image(args.seed_image)
    inputs = InferenceInput(
        start=PromptInput(PROMPTS[0], 5),
        end=PromptInput(PROMPTS[1], 6),
        alpha=0.5,
        num_inference_steps=args.steps,
    )
    started = time.perf_counter()
    image = pipeline.riffuse(inputs, seed_image)
    diffused = time.perf_counter()
    pipeline.audio_from_image(image).to_bytes("mp3")
    return diffused - started, time.perf_counter() - diffused


@torch.no_grad()
def unet_batching(app: object, batches: tuple[int, ...] = (1, 2, 4)) -> list[tuple[int, float]]:
    """[(requests B, ms per request per step)] for one UNet call on 2B rows (64 x 64 latents)."""
    pipeline = app.state.model.pipeline()
    unet = pipeline.unet
    width = unet.config.cross_attention_dim
    results = []
    for requests in batches:
        rows = 2 * requests
        latents = torch.randn(rows, 4, 64, 64, dtype=unet.dtype)
        text = torch.randn(rows, 77, width, dtype=unet.dtype)
        unet(latents, 500, encoder_hidden_states=text)  # warm-up
        repeats = 3
        started = time.perf_counter()
        for _ in range(repeats):
            unet(latents, 500, encoder_hidden_states=text)
        call_s = (time.perf_counter() - started) / repeats
        results.append((requests, call_s * 1000.0 / requests))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--steps", type=int, default=10, help="diffusion steps of the schedule")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run, s")
    parser.add_argument("--sessions", default="1,2", help="concurrent jams to try, e.g. 1,2,4")
    parser.add_argument("--seed-image", default="og_beat")
    parser.add_argument("--checkpoint-dir", type=Path, help="default: $TMPDIR/riffusion-bench-SIZE")
    args = parser.parse_args()
    checkpoint = args.checkpoint_dir or (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"riffusion-bench-{args.size}"
    )
    if not (checkpoint / "model_index.json").is_file():
        print(f"writing a random-weight {args.size} checkpoint to {checkpoint} ...", flush=True)
        make_random_checkpoint(checkpoint, size=args.size)

    print(
        f"model {args.size} (random weights), {args.steps} steps, denoising 0.75, seed image "
        f"{args.seed_image}, CPU, {torch.get_num_threads()} torch threads, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    started = time.perf_counter()
    server, thread, address, app = start_server(checkpoint)
    try:
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
    finally:
        server.should_exit = True
        thread.join(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
