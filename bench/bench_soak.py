"""Soak test of the server: concurrent jam sessions over the WebSocket for minutes, watching the
server process's memory, threads and open files (they should stay flat) and how /health answers.

`riffusion serve` runs as its own process on the tiny random-weight checkpoint; --sessions
clients jam on /api/jam at once, each acknowledging every clip as it arrives (so the server
generates as fast as it can), queueing a new prompt every --prompt-every clips, changing its
denoising every --settings-every clips, and closing its connection and starting a new jam every
--reconnect-every clips (connection churn is where per-connection leaks show). A poller asks
/health every second throughout.

Figures: the server's resident memory (RSS), threads and open file descriptors when the model is
ready, once every session has had its first clip ("warm"), at the end of the run with the
sessions still connected, and after they have gone; their largest values during the run; clips
delivered (in total, per minute and per session), jams started, error messages, and /health's
response times.

    .venv/bin/python bench/bench_soak.py [--minutes 10] [--sessions 8] [--steps 4]
        [--seed-image og_beat] [--reconnect-every 5] [--prompt-every 2] [--settings-every 3]
        [--checkpoint-dir DIR] [--max-steps N]

Linux only: the server process is measured through /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from random_checkpoints import default_checkpoint_dir, random_checkpoint
from websockets.asyncio.client import connect

PROMPTS = ("lo-fi beat for the holidays", "jazz piano trio", "techno with a heavy kick")
# How often (s) the server process is measured during the run.
SAMPLE_S = 10.0
# How long (s) the server may take to load the model and answer ready.
READY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Usage:
    """What the server process holds: resident memory (MB), threads, open file descriptors."""

    rss_mb: float
    threads: int
    open_files: int

    @classmethod
    def of(cls, pid: int) -> Usage:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return cls(
            rss_mb=int(fields["VmRSS"].split()[0]) / 1024.0,
            threads=int(fields["Threads"]),
            open_files=len(os.listdir(f"/proc/{pid}/fd")),
        )


@dataclass
class Tally:
    """What the clients saw, all sessions together."""

    clips: list[int]
    first_clip: list[asyncio.Event]
    jams_started: int = 0
    errors: list[str] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    health_failures: int = 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(args: argparse.Namespace, checkpoint: Path, log: Path) -> subprocess.Popen:
    """`riffusion serve` on the checkpoint, on args.port, its output to log."""
    command = [
        *(sys.executable, "-m", "riffusion.cli", "serve", "--port", str(args.port)),
        *("--model", str(checkpoint), "--device", "cpu", "--dtype", "float32"),
    ]
    if args.max_steps is not None:
        command += ["--max-steps", str(args.max_steps)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("w") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


def wait_until_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            status = httpx.get(f"{url}/health", timeout=5).json()["status"]
        except httpx.TransportError:
            status = "not listening"
        if status == "failed":
            raise RuntimeError(httpx.get(f"{url}/health").json()["message"])
        if status == "ready":
            return
        time.sleep(0.5)
    raise TimeoutError("the server did not get ready in time")


def start_message(args: argparse.Namespace, number: int, jam: int) -> str:
    settings = {
        "seed_image_id": args.seed_image,
        "num_inference_steps": args.steps,
        "seed": 1000 * number + jam,
    }
    prompt = PROMPTS[(number + jam) % len(PROMPTS)]
    return json.dumps({"type": "start", "prompt": prompt, "settings": settings})


async def jam_session(
    address: str, args: argparse.Namespace, number: int, stop_at: float, tally: Tally
) -> None:
    """Jam until stop_at, starting a new connection every --reconnect-every clips."""
    jam = 0
    while time.monotonic() < stop_at:
        async with connect(f"ws://{address}/api/jam", max_size=None) as websocket:
            await websocket.send(start_message(args, number, jam))
            tally.jams_started += 1
            clips_this_jam = 0
            while time.monotonic() < stop_at:
                try:
                    text = await asyncio.wait_for(websocket.recv(), stop_at - time.monotonic())
                except asyncio.TimeoutError:
                    return
                message = json.loads(text)
                if message["type"] == "error":
                    tally.errors.append(message["message"])
                if message["type"] != "clip":
                    continue
                tally.clips[number] += 1
                tally.first_clip[number].set()
                clips_this_jam += 1
                await websocket.send(json.dumps({"type": "played", "index": message["index"]}))
                if clips_this_jam % args.prompt_every == 0:
                    prompt = PROMPTS[(number + clips_this_jam) % len(PROMPTS)]
                    await websocket.send(json.dumps({"type": "prompt", "prompt": prompt}))
                if clips_this_jam % args.settings_every == 0:
                    denoising = 0.6 if clips_this_jam // args.settings_every % 2 else 0.75
                    settings = {"denoising": denoising}
                    await websocket.send(json.dumps({"type": "settings", "settings": settings}))
                if args.reconnect_every and clips_this_jam >= args.reconnect_every:
                    break
        jam += 1


async def poll_health(url: str, stop_at: float, tally: Tally) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                response = await client.get(f"{url}/health")
                response.raise_for_status()
                tally.health_ms.append((time.perf_counter() - started) * 1000.0)
            except httpx.HTTPError:
                tally.health_failures += 1
            await asyncio.sleep(1.0)


async def soak(
    url: str, address: str, pid: int, args: argparse.Namespace
) -> tuple[dict[str, Usage], Usage, Tally, float]:
    """Run the sessions; (usage at each mark, largest usage, tally, seconds of the run)."""
    tally = Tally(
        clips=[0] * args.sessions, first_clip=[asyncio.Event() for _ in range(args.sessions)]
    )
    marks = {"ready": Usage.of(pid)}
    started = time.monotonic()
    stop_at = started + args.minutes * 60.0
    tasks = [
        asyncio.create_task(jam_session(address, args, number, stop_at, tally))
        for number in range(args.sessions)
    ]
    tasks.append(asyncio.create_task(poll_health(url, stop_at, tally)))
    samples = [marks["ready"]]

    async def warm() -> None:
        await asyncio.gather(*(event.wait() for event in tally.first_clip))
        marks["warm"] = Usage.of(pid)
        print(f"every session has had a clip after {time.monotonic() - started:.0f} s", flush=True)

    warming = asyncio.create_task(warm())
    next_minute = started + 60.0
    while time.monotonic() < stop_at:
        await asyncio.sleep(min(SAMPLE_S, max(0.0, stop_at - time.monotonic())))
        samples.append(Usage.of(pid))
        if time.monotonic() >= next_minute:
            usage = samples[-1]
            print(
                f"minute {round((time.monotonic() - started) / 60)}: RSS {usage.rss_mb:.0f} MB, "
                f"{usage.threads} threads, {usage.open_files} open files, "
                f"{sum(tally.clips)} clips, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            next_minute += 60.0
    marks["end"] = Usage.of(pid)
    elapsed = time.monotonic() - started
    await asyncio.gather(*tasks)
    warming.cancel()
    await asyncio.sleep(5.0)  # the server closes the connections and ends their tasks
    marks["after the sessions closed"] = Usage.of(pid)
    samples.append(marks["after the sessions closed"])
    largest = Usage(
        rss_mb=max(sample.rss_mb for sample in samples),
        threads=max(sample.threads for sample in samples),
        open_files=max(sample.open_files for sample in samples),
    )
    return marks, largest, tally, elapsed


def cpu_description() -> str:
    model = platform.processor() or "unknown CPU"
    flags = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                flags = " ".join(flag for flag in line.split(":", 1)[1].split() if flag in wanted)
                break
    return f"{model}, {os.cpu_count()} cores, flags: {flags or 'none of avx2/avx512/amx'}"


def report(
    marks: dict[str, Usage], largest: Usage, tally: Tally, elapsed: float, args: argparse.Namespace
) -> None:
    print(
        f"\n{args.sessions} sessions for {elapsed / 60:.1f} min, {args.steps} steps, "
        f"seed image {args.seed_image}"
    )
    print("| when | RSS (MB) | threads | open files |")
    print("|---|---|---|---|")
    for name, usage in [*marks.items(), ("largest during the run", largest)]:
        print(f"| {name} | {usage.rss_mb:.0f} | {usage.threads} | {usage.open_files} |")
    total = sum(tally.clips)
    print(
        f"clips: {total} ({total * 60.0 / elapsed:.1f}/min), per session "
        f"{min(tally.clips)} to {max(tally.clips)}; jams started {tally.jams_started}; "
        f"error messages {len(tally.errors)}"
    )
    for message in sorted(set(tally.errors))[:5]:
        print(f"  error: {message}")
    if tally.health_ms:
        ordered = sorted(tally.health_ms)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        print(
            f"/health: {len(ordered)} answers, median {statistics.median(ordered):.0f} ms, "
            f"99th percentile {p99:.0f} ms, slowest {ordered[-1]:.0f} ms; "
            f"failures {tally.health_failures}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--sessions", type=int, default=8, help="concurrent jam sessions")
    parser.add_argument("--steps", type=int, default=4, help="diffusion steps of each clip")
    parser.add_argument("--seed-image", default="og_beat")
    parser.add_argument("--reconnect-every", type=int, default=5, help="clips per connection")
    parser.add_argument("--prompt-every", type=int, default=2, help="clips per new prompt")
    parser.add_argument("--settings-every", type=int, default=3, help="clips per settings change")
    parser.add_argument("--max-steps", type=int, help="serve --max-steps")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=default_checkpoint_dir("tiny"),
        help="where the tiny random checkpoint is written once and reused",
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    args = parser.parse_args()
    if not Path("/proc/self/status").is_file():
        parser.error("the server is measured through /proc: Linux only")
    args.port = args.port or free_port()
    checkpoint = random_checkpoint(args.checkpoint_dir, "tiny")
    address = f"127.0.0.1:{args.port}"
    url = f"http://{address}"
    print(f"{cpu_description()}; load average {os.getloadavg()[0]:.1f}", flush=True)

    log = Path(tempfile.gettempdir()) / f"riffusion-soak-{args.port}.log"
    process = start_server(args, checkpoint, log)
    try:
        wait_until_ready(url, process)
        marks, largest, tally, elapsed = asyncio.run(soak(url, address, process.pid, args))
        report(marks, largest, tally, elapsed, args)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    print(f"load average after: {os.getloadavg()[0]:.1f}; server log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
