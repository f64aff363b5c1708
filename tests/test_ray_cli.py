"""The command line's `--ray`: its refusals (with or without Ray installed), and `riff --ray` over
a folder of tracks on a local Ray instance, equal to riff on each track alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import failed, run, succeeded

from riffusion import Audio
from riffusion.ray_support import RAY_INSTALL

FAST = ["--steps", "2", "--dtype", "float32", "--device", "cpu"]
RIFF = ["--prompt", "jazz", "--seed", "3", "--clip-duration", "1.28", "--overlap", "0.1"]


def hide_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Ray look not installed to riffusion.ray_support."""
    find_spec = importlib.util.find_spec

    def without_ray(name: str, *args: object) -> object:
        return None if name.split(".")[0] == "ray" else find_spec(name, *args)

    monkeypatch.setattr("riffusion.ray_support.importlib.util.find_spec", without_ray)


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--ray"],
        ["riff", "tracks", "-o", "out", "--prompt", "x", "--ray"],
    ],
)
def test_ray_missing_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    hide_ray(monkeypatch)
    (tmp_path / "tracks").mkdir()
    Audio(np.zeros((1, 4410), np.float32), 44100).save(tmp_path / "tracks" / "a.wav")
    monkeypatch.chdir(tmp_path)
    line = failed(run(*args), RAY_INSTALL)
    assert "--ray" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "2"], "--replicas needs --ray"),
        (["--autoscale", "1:2"], "--autoscale needs --ray"),
        (["--gpus-per-replica", "1"], "--gpus-per-replica needs --ray"),
        (["--ray", "--replicas", "2", "--autoscale", "1:2"], "exclude each other"),
        (["--ray", "--autoscale", "3:1"], "MIN:MAX with 1 <= MIN <= MAX"),
        (["--ray", "--autoscale", "two"], "MIN:MAX"),
    ],
)
def test_serve_refuses_bad_ray_options(args: list[str], message: str) -> None:
    pytest.importorskip("ray.serve")
    failed(run("serve", *args), message)


def write_track(path: Path, seconds: float, frequency: float) -> Path:
    time = np.arange(round(seconds * 44100)) / 44100
    noise = np.random.default_rng(round(frequency)).standard_normal(len(time))
    samples = 0.3 * np.sin(2 * np.pi * frequency * time) + 0.05 * noise
    Audio(samples[None].astype(np.float32), 44100).save(path)
    return path


@pytest.mark.slow
def test_riff_on_ray_equals_riff_alone(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    for index, seconds in enumerate((1.5, 2.0, 2.5, 3.0)):
        write_track(tracks / f"track{index}.wav", seconds, 220.0 * (index + 1))

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run(
            "riff", tracks, "-o", tmp_path / "riffed", "--ray", *RIFF,
            "--model", tiny_checkpoint, *FAST,
        )  # fmt: skip
    finally:
        ray.shutdown()
    succeeded(result)
    assert "Wrote 4 of 4 tracks" in result.output

    # Each Ray task has one CPU, so torch runs it on one thread; float sums in another order
    # (more threads) give other roundings, which phase reconstruction's iterations amplify. The
    # same thread count gives the same samples.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for track in sorted(tracks.iterdir()):
            alone = tmp_path / f"{track.stem}-alone.wav"
            succeeded(run("riff", track, "-o", alone, *RIFF, "--model", tiny_checkpoint, *FAST))
    finally:
        torch.set_num_threads(threads)
    for track in sorted(tracks.iterdir()):
        alone = tmp_path / f"{track.stem}-alone.wav"
        on_ray = Audio.load(tmp_path / "riffed" / f"{track.stem}.wav")
        expected = Audio.load(alone)
        assert on_ray.num_frames == expected.num_frames
        np.testing.assert_array_equal(on_ray.samples, expected.samples)


@pytest.mark.slow
def test_dataset_on_ray_equals_dataset_alone(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    pytest.importorskip("mutagen")
    from test_training_dataset import make_dataset, make_tracks, rows_of

    tracks = make_tracks(tmp_path / "audio")
    alone, on_ray = tmp_path / "alone", tmp_path / "on_ray"
    succeeded(make_dataset(tracks, alone))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = succeeded(make_dataset(tracks, on_ray, "--ray"))
    finally:
        ray.shutdown()
    assert "skipped" in result.output  # the broken and short files, as alone
    assert rows_of(on_ray) == rows_of(alone)
    for row in rows_of(alone):
        assert (on_ray / row["file_name"]).read_bytes() == (alone / row["file_name"]).read_bytes()


def test_dataset_refuses_workers_with_ray(tmp_path: Path) -> None:
    failed(run("dataset", tmp_path, "-o", tmp_path / "out", "--ray", "--workers", "2"), "exclude")
