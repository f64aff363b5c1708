"""Byte progress of Hub downloads (riffusion.diffusion.downloads), as /health reports it.

No network here: huggingface_hub's snapshot_download is replaced by a stand-in that drives the
tqdm_class it is given the way huggingface_hub does (bars in bytes, and one over files).
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from diffusers import DiffusionPipeline
from diffusers.pipelines import pipeline_utils

from riffusion.diffusion.downloads import ByteCounter, reporting_downloads

GB = 10**9


@dataclass
class FileInfo:
    filename: str
    file_size: int
    will_download: bool


class FakeHub:
    """snapshot_download's stand-in: two files to fetch, one cached; records each call."""

    files = (
        FileInfo("unet/diffusion_pytorch_model.safetensors", 3 * GB, True),
        FileInfo("vae/diffusion_pytorch_model.safetensors", 1 * GB, True),
        FileInfo("model_index.json", 500, False),
    )

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, repo_id: str, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if kwargs.get("dry_run"):
            return list(self.files)
        tqdm_class = kwargs.get("tqdm_class")
        if tqdm_class is not None:
            to_fetch = [file for file in self.files if file.will_download]
            written = tqdm_class(total=sum(f.file_size for f in to_fetch), unit="B", disable=True)
            received = tqdm_class(total=0, unit="B", disable=True)
            per_file = tqdm_class(total=len(to_fetch), disable=True)
            for file in to_fetch:
                for _ in range(4):
                    received.update(file.file_size // 4 - 1000)  # compressed on the wire
                    written.update(file.file_size // 4)
                per_file.update(1)
        return "/cache/snapshot"


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    hub = FakeHub()
    monkeypatch.setattr(pipeline_utils, "snapshot_download", hub)
    return hub


def test_diffusers_download_calls_the_name_that_is_wrapped() -> None:
    # reporting_downloads wraps pipeline_utils.snapshot_download; if diffusers stops looking
    # it up there, progress silently disappears, so this must fail first.
    download = inspect.unwrap(DiffusionPipeline.download)
    assert download.__module__ == pipeline_utils.__name__
    assert "snapshot_download" in download.__code__.co_names


def test_progress_rises_to_the_bytes_still_to_fetch(fake_hub: FakeHub) -> None:
    reports: list[tuple[int, int]] = []
    with reporting_downloads(lambda done, total: reports.append((done, total))):
        folder = pipeline_utils.snapshot_download("riffusion/riffusion-model-v1", revision="main")
    assert folder == "/cache/snapshot"
    # The dry run, then the download with the reporting bars.
    assert [call.get("dry_run", False) for call in fake_hub.calls] == [True, False]
    assert fake_hub.calls[1]["revision"] == "main"
    assert reports[0] == (0, 4 * GB)
    assert reports[-1] == (4 * GB, 4 * GB)
    done = [fetched for fetched, _ in reports]
    assert done == sorted(set(done)), "progress only moves forward, without repeats"
    assert {total for _, total in reports} == {4 * GB}
    # Each quarter of each file shows on the bar of bytes received, then on that of bytes
    # written (a little further): the start, then 2 reports per quarter.
    assert len(reports) == 1 + 2 * 8


def test_the_wrapped_name_is_restored(fake_hub: FakeHub) -> None:
    with reporting_downloads(lambda *_: None):
        assert pipeline_utils.snapshot_download is not fake_hub
    assert pipeline_utils.snapshot_download is fake_hub
    with pytest.raises(RuntimeError), reporting_downloads(lambda *_: None):
        raise RuntimeError("load failed")
    assert pipeline_utils.snapshot_download is fake_hub


def test_cached_and_offline_loads_report_nothing(fake_hub: FakeHub) -> None:
    reports: list[tuple[int, int]] = []
    fake_hub.files = tuple(FileInfo(f.filename, f.file_size, False) for f in FakeHub.files)
    with reporting_downloads(lambda done, total: reports.append((done, total))):
        pipeline_utils.snapshot_download("riffusion/riffusion-model-v1")
        pipeline_utils.snapshot_download("riffusion/riffusion-model-v1", local_files_only=True)
    assert reports == []
    assert [call.get("dry_run", False) for call in fake_hub.calls] == [True, False, False]
    assert all("tqdm_class" not in call for call in fake_hub.calls)


def test_a_failing_dry_run_leaves_the_download_to_report_its_own_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []

    def unreachable(repo_id: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(pipeline_utils, "snapshot_download", unreachable)
    with (
        pytest.raises(ConnectionError, match="no route"),
        reporting_downloads(lambda *_: pytest.fail("nothing was fetched")),
    ):
        pipeline_utils.snapshot_download("riffusion/riffusion-model-v1")
    assert len(calls) == 2 and "tqdm_class" not in calls[1]


def test_without_a_callback_nothing_is_wrapped(fake_hub: FakeHub) -> None:
    with reporting_downloads(None):
        assert pipeline_utils.snapshot_download is fake_hub


def test_byte_counter_follows_the_furthest_bar_and_stops_at_the_total() -> None:
    reports: list[tuple[int, int]] = []
    counter = ByteCounter(100, lambda done, total: reports.append((done, total)))
    first, second = object(), object()
    counter.advance(first, 30)
    counter.advance(second, 20)  # behind the first bar: no news
    counter.advance(second, 50)
    counter.advance(first, 120)  # past the total (metadata files): capped
    assert reports == [(30, 100), (50, 100), (100, 100)]


def test_the_server_loader_reports_download_progress_as_a_stage_and_fraction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from riffusion.diffusion.model_settings import ModelSettings
    from riffusion.diffusion.pipeline import RiffusionPipeline
    from riffusion.errors import RiffusionError
    from riffusion.server.app import ServerConfig, pipeline_loader
    from riffusion.server.library import SeedLibrary
    from riffusion.server.model import ModelHolder

    halfway, finish = threading.Event(), threading.Event()

    def load_checkpoint(checkpoint: str, **kwargs: Any) -> RiffusionPipeline:
        kwargs["download_progress"](GB, 4 * GB)
        halfway.set()
        finish.wait(10)
        kwargs["download_progress"](4 * GB, 4 * GB)
        raise RiffusionError("stopped here by the test")

    monkeypatch.setattr(RiffusionPipeline, "load_checkpoint", load_checkpoint)
    config = ServerConfig(ModelSettings("riffusion/riffusion-model-v1", device="cpu"))
    holder = ModelHolder(config.model.model, "cpu", pipeline_loader(config, SeedLibrary()))
    holder.start()
    assert halfway.wait(10)
    snapshot = holder.snapshot()
    assert snapshot.status == "loading"
    assert snapshot.stage == "downloading the weights: 1.00 of 4.00 GB"
    assert snapshot.progress == 0.25
    finish.set()
    snapshot = holder.wait(10)
    assert snapshot.status == "failed" and "stopped here by the test" in snapshot.message
