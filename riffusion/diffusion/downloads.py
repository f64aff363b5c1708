"""Progress of a Hub download in bytes, for whoever waits on it (the server's /health).

diffusers' DiffusionPipeline.download() fetches a pipeline's files with huggingface_hub's
snapshot_download() but offers no way to watch it. snapshot_download() itself takes a tqdm_class
for its progress bars, so while a download runs, the name diffusers calls is wrapped:

1. a dry run first (no data moves) gives the bytes still to fetch, files already cached excluded;
2. the real download then runs with a tqdm subclass that still draws huggingface_hub's bars on
   the console, and reports the bytes its byte-counting bars have reached.

If diffusers or huggingface_hub change shape (no such name to wrap, no dry run), the download runs
exactly as before and simply reports no progress. download_snapshot() does the same for a single
model's files (the presets' extra weights), calling huggingface_hub directly.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Called with (bytes fetched so far, bytes to fetch in all) as a download advances.
DownloadProgress = Callable[[int, int], None]

# Serialises the wrapping of the module-level name: two loads in one process wrap in turn.
_WRAP_LOCK = threading.Lock()


class ByteCounter:
    """Bytes fetched out of a known total, from the progress bars of a download.

    huggingface_hub shows bytes on more than one bar (received from the network, written to
    disk); they count the same files, so the furthest bar is the progress.
    """

    def __init__(self, total_bytes: int, report: DownloadProgress) -> None:
        self.total_bytes = total_bytes
        self._report = report
        self._done_by_bar: dict[int, float] = {}
        self._reported = -1
        self._lock = threading.Lock()

    def advance(self, bar: object, done: float) -> None:
        """Bar (an identity) has counted done bytes; report if the furthest bar moved on."""
        with self._lock:
            self._done_by_bar[id(bar)] = done
            fetched = min(self.total_bytes, int(max(self._done_by_bar.values())))
            if fetched <= self._reported:
                return
            self._reported = fetched
        self._report(fetched, self.total_bytes)


def _reporting_tqdm(counter: ByteCounter) -> type:
    """huggingface_hub's tqdm, drawing as usual, that also tells counter of byte progress."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class ReportingTqdm(hub_tqdm):
        # A disabled bar (no terminal, as under a server) keeps neither its unit nor its count,
        # so both are kept here.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.counts_bytes = kwargs.get("unit") == "B"
            self.counted_bytes = float(kwargs.get("initial") or 0)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.counts_bytes:
                self.counted_bytes += n or 0
                counter.advance(self, self.counted_bytes)
            return shown

    return ReportingTqdm


def _bytes_to_fetch(snapshot_download: Callable[..., Any], args: tuple, kwargs: dict) -> int:
    """What the download would fetch, from its dry run; 0 when unknown or all cached."""
    try:
        files = snapshot_download(*args, **{**kwargs, "dry_run": True})
    except Exception:  # no dry runs in this huggingface_hub, or no Hub: the real call will tell
        return 0
    if not isinstance(files, list):
        return 0
    fetched = [file for file in files if getattr(file, "will_download", False)]
    return sum(getattr(file, "file_size", 0) or 0 for file in fetched)


def _reporting_snapshot_download(
    snapshot_download: Callable[..., Any], report: DownloadProgress, args: tuple, kwargs: dict
) -> Any:
    """snapshot_download(*args, **kwargs), reporting its byte progress to report."""
    if kwargs.get("dry_run") or kwargs.get("local_files_only"):
        return snapshot_download(*args, **kwargs)
    total = _bytes_to_fetch(snapshot_download, args, kwargs)
    if total <= 0:
        return snapshot_download(*args, **kwargs)
    report(0, total)
    kwargs["tqdm_class"] = _reporting_tqdm(ByteCounter(total, report))
    return snapshot_download(*args, **kwargs)


def download_snapshot(
    repo_id: str,
    *,
    allow_patterns: list[str],
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    report: DownloadProgress | None = None,
) -> Path:
    """The local folder of a Hub repository's files matching allow_patterns: from the Hugging
    Face cache, or downloaded into it once, reporting byte progress to report as
    reporting_downloads() does for pipelines. Errors are huggingface_hub's own."""
    from huggingface_hub import snapshot_download

    kwargs: dict[str, Any] = {
        "repo_id": repo_id,
        "allow_patterns": allow_patterns,
        "revision": revision,
        "cache_dir": cache_dir,
        "local_files_only": local_files_only,
    }
    if report is None:
        return Path(snapshot_download(**kwargs))
    return Path(_reporting_snapshot_download(snapshot_download, report, (), kwargs))


@contextlib.contextmanager
def reporting_downloads(report: DownloadProgress | None) -> Iterator[None]:
    """Inside, pipeline downloads by diffusers report their byte progress to report.

    With report None, or where diffusers cannot be wrapped, nothing changes.
    """
    if report is None:
        yield
        return
    from diffusers.pipelines import pipeline_utils

    original = getattr(pipeline_utils, "snapshot_download", None)
    if original is None:
        yield
        return

    def snapshot_download(*args: Any, **kwargs: Any) -> Any:
        return _reporting_snapshot_download(original, report, args, kwargs)

    with _WRAP_LOCK:
        pipeline_utils.snapshot_download = snapshot_download
        try:
            yield
        finally:
            pipeline_utils.snapshot_download = original
