"""Loading the model in the background, and its state for /health: loading, ready or failed.

The server must answer from its first second, so the pipeline loads on a thread of its own; until
it is ready, whatever needs it learns why not (ModelNotReady) instead of waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

Status = Literal["loading", "ready", "failed"]

#: What to do when the model cannot be loaded; the loader's message says what went wrong.
LOAD_FIX = (
    "start the server with --model pointing at a local copy of the model (a diffusers folder or "
    "a .ckpt / .safetensors file), or make the Hugging Face Hub reachable, then restart it"
)


class ModelNotReady(Exception):
    """The model is still loading, or failed to load; str() says which and why."""

    def __init__(self, snapshot: ModelSnapshot) -> None:
        super().__init__(snapshot.message)
        self.snapshot = snapshot


@dataclass(frozen=True)
class ModelSnapshot:
    """The model's state at one moment (see HealthModel for the fields' meaning)."""

    status: Status
    model: str
    device: str
    stage: str | None
    progress: float | None
    elapsed_s: float
    message: str
    fix: str | None


#: What a loader calls as it works: (stage name, fraction done where known, else None).
LoadProgress = Callable[[str, "float | None"], None]
#: Loads the pipeline, reporting progress; raises on failure (RiffusionError for user mistakes).
Loader = Callable[[LoadProgress], "RiffusionPipeline"]


class ModelHolder:
    """The pipeline once loaded, and how loading is going. Thread-safe.

    Args:
        model: the model's name as shown to users (Hub id or path).
        device: the device it loads on, as shown to users.
        loader: the function that loads it (on the thread start() makes).
    """

    def __init__(self, model: str, device: str, loader: Loader) -> None:
        self.model = model
        self.device = device
        self._loader = loader
        self._lock = threading.Lock()
        self._pipeline: RiffusionPipeline | None = None
        self._status: Status = "loading"
        self._stage: str | None = "waiting to start"
        self._progress: float | None = None
        self._message = f"loading {model} on {device}"
        self._fix: str | None = None
        self._started = time.monotonic()
        self._elapsed_s: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin loading on a daemon thread (a server shutting down need not wait for it)."""
        self._started = time.monotonic()
        self._thread = threading.Thread(
            target=self._load, name="riffusion-model-loader", daemon=True
        )
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> ModelSnapshot:
        """Wait until loading has finished (or timeout_s passed); returns the state then."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.snapshot()

    def snapshot(self) -> ModelSnapshot:
        with self._lock:
            elapsed = self._elapsed_s
            if elapsed is None:
                elapsed = time.monotonic() - self._started
            return ModelSnapshot(
                status=self._status,
                model=self.model,
                device=self.device,
                stage=self._stage,
                progress=self._progress,
                elapsed_s=round(elapsed, 3),
                message=self._message,
                fix=self._fix,
            )

    def pipeline(self) -> RiffusionPipeline:
        """The loaded pipeline; raises ModelNotReady while loading or after a failure."""
        with self._lock:
            pipeline = self._pipeline
        if pipeline is None:
            raise ModelNotReady(self.snapshot())
        return pipeline

    def _report(self, stage: str, progress: float | None) -> None:
        with self._lock:
            self._stage = stage
            self._progress = progress

    def _load(self) -> None:
        try:
            pipeline = self._loader(self._report)
        except RiffusionError as error:
            self._fail(f"cannot load {self.model}: {error}")
        except Exception as error:  # the server stays up whatever the loader hits
            self._fail(f"cannot load {self.model}: {type(error).__name__}: {error}")
        else:
            with self._lock:
                self._pipeline = pipeline
                self._status = "ready"
                self._stage = None
                self._progress = None
                self._elapsed_s = time.monotonic() - self._started
                self._message = f"{self.model} is ready on {self.device}"

    def _fail(self, message: str) -> None:
        with self._lock:
            self._status = "failed"
            self._stage = None
            self._progress = None
            self._elapsed_s = time.monotonic() - self._started
            self._message = message
            self._fix = LOAD_FIX
