"""`riffusion serve --ray` against `riffusion serve`: sustained jam clips per minute with 1, 2
and 4 concurrent sessions for each number of model replicas, and what the Ray hop adds to one
request.

Both servers run the same app (create_app): `riffusion serve` as its own process (the command),
the Ray application (riffusion.server.ray_deployment.build_app) on a local Ray instance of --cpus
CPUs, each replica reserving one. Jam sessions talk to each over real WebSockets and acknowledge
every clip the moment it arrives (bench_server.sustained), so the servers generate as fast as
they can. Figures:

- clips/min: all sessions together, over --seconds per measurement, after one jam's first clip
  (which pays each server's first-use costs).
- hop: the median time of --requests sequential POST /run_inference/ requests that run no
  diffusion step (a 64-px seed, one step at denoising 0.5 runs none), on `riffusion serve` with
  one torch thread (as a replica reserving one CPU has: Ray sets OMP_NUM_THREADS to it) and on
  the Ray application with one replica; their difference is what the ingress -> replica call
  (and Ray Serve's proxy) adds per request.

    .venv/bin/python bench/bench_ray.py [--steps 10] [--seconds 20] [--sessions 1,2,4]
        [--replicas 1,2] [--requests 40] [--cpus 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import ray
import torch
from bench_server import first_clip_s, free_port, sustained
from PIL import Image
from random_checkpoints import default_checkpoint_dir, random_checkpoint
from ray import serve

from riffusion.diffusion.model_settings import ModelSettings
from riffusion.server.app import ServerConfig
from riffusion.server.ray_deployment import APP_NAME, Scaling, build_app

HOP_SEED = "hop_seed"


def cpu_description() -> str:
    """The CPU's model name and its vector flags of interest, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    lines = dict(
        line.split(":", 1) for line in info.splitlines() if ":" in line and line.strip()
    )
    name = lines.get("model name\t", "unknown CPU").strip()
    flags = set(lines.get("flags\t\t", "").split())
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name} ({os.cpu_count()} CPUs; {', '.join(wanted) or 'no AVX2'})"


def write_hop_seed(folder: Path) -> Path:
    """A seed images folder with a 64-px noise seed: the cheapest request."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, size=(512, 64), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").convert("RGB").save(folder / f"{HOP_SEED}.png")
    return folder


def hop_request() -> dict[str, object]:
    prompt = {"prompt": "bells", "seed": 1, "denoising": 0.5, "guidance": 7.0}
    return {
        "alpha": 0.0,
        "num_inference_steps": 1,
        "seed_image_id": HOP_SEED,
        "start": prompt,
        "end": prompt,
    }


def median_request_ms(url: str, requests: int) -> float:
    """Median ms of sequential hop requests, after two to warm up."""
    times = []
    with httpx.Client(timeout=120) as client:
        for number in range(requests + 2):
            started = time.perf_counter()
            response = client.post(f"{url}/run_inference/", json=hop_request())
            response.raise_for_status()
            if number >= 2:
                times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def wait_ready(url: str, replicas: int | None) -> None:
    """Until /health is ready (with `replicas` ready replicas, for Ray)."""
    while True:
        try:
            body = httpx.get(f"{url}/health", timeout=10).json()
        except httpx.HTTPError:
            body = {}
        ready = [r for r in body.get("replicas") or [] if r["status"] == "ready"]
        if body.get("status") == "ready" and (replicas is None or len(ready) == replicas):
            return
        time.sleep(0.5)


@contextlib.contextmanager
def riffusion_serve(checkpoint: Path, seeds: Path, threads: int | None = None) -> Iterator[str]:
    """`riffusion serve` of checkpoint on the CPU as a process of its own, with `threads` torch
    threads (None: torch's default); yields its address."""
    port = free_port()
    command = [
        sys.executable, "-m", "riffusion.cli", "serve", "--port", str(port),
        "--model", str(checkpoint), "--device", "cpu", "--seed-images", str(seeds),
    ]  # fmt: skip
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}", None)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def jam_figures(address: str, args: argparse.Namespace, label: str) -> None:
    asyncio.run(first_clip_s(address, args))
    for sessions in (int(n) for n in args.sessions.split(",")):
        per_minute, clip_s = asyncio.run(sustained(address, args, sessions))
        realtime = per_minute / sessions * clip_s / 60.0
        print(
            f"{label}, {sessions} session(s): {per_minute:.1f} clips/min in total "
            f"({realtime:.2f}x real time per session)",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="diffusion steps of jam clips")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each jam run, s")
    parser.add_argument("--sessions", default="1,2,4", help="concurrent jams to try")
    parser.add_argument("--replicas", default="1,2", help="model replica counts to try")
    parser.add_argument("--requests", type=int, default=40, help="requests timed for the hop")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--seed-image", default="og_beat", help="seed image of the jams")
    args = parser.parse_args()
    checkpoint = random_checkpoint(default_checkpoint_dir("tiny"), "tiny")
    seeds = write_hop_seed(Path(tempfile.mkdtemp(prefix="bench-ray-seeds-")))
    print(
        f"{cpu_description()}; torch {torch.__version__}, ray {ray.__version__}; tiny model "
        f"(random weights), {args.steps} steps, seed image {args.seed_image}; load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )

    with riffusion_serve(checkpoint, seeds) as address:
        default_ms = median_request_ms(f"http://{address}", args.requests)
        print(f"riffusion serve: {default_ms:.1f} ms per hop request (median)", flush=True)
        jam_figures(address, args, "riffusion serve")
    with riffusion_serve(checkpoint, seeds, threads=1) as address:
        local_ms = median_request_ms(f"http://{address}", args.requests)
        print(
            f"riffusion serve, 1 torch thread: {local_ms:.1f} ms per hop request (median)",
            flush=True,
        )

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    config = ServerConfig(
        ModelSettings(str(checkpoint), device="cpu"), seed_images_dir=seeds, max_batch="auto"
    )
    try:
        for replicas in (int(n) for n in args.replicas.split(",")):
            serve.run(build_app(config, Scaling(replicas=replicas)), name=APP_NAME)
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, replicas)
            if replicas == 1:
                ray_ms = median_request_ms(url, args.requests)
                print(
                    f"serve --ray, 1 replica: {ray_ms:.1f} ms per hop request (median): "
                    f"the Ray hop adds {ray_ms - local_ms:.1f} ms",
                    flush=True,
                )
            jam_figures(f"127.0.0.1:{port}", args, f"serve --ray, {replicas} replica(s)")
            serve.delete(APP_NAME)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
