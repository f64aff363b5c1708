"""A training run's folder: what it holds, and writing and reading each part.

RUN_DIR/run.json                          settings, model, dataset (what --resume reads)
RUN_DIR/checkpoints/step-000500/          trainable.safetensors, optimizer.pt, state.json,
                                          pytorch_lora_weights.safetensors (try it as --lora)
RUN_DIR/samples/step-000250/              validation renders: PROMPT-SEED.png and .wav
RUN_DIR/loss.csv, RUN_DIR/loss.png        the loss of every step, and its curve
RUN_DIR/pytorch_lora_weights.safetensors  the final LoRA (with --full: RUN_DIR/model/)
RUN_DIR/README.md                         the model card
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from riffusion.atomic_files import write_atomically
from riffusion.errors import RiffusionError

RUN_FILE = "run.json"
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
LOSS_FILE = "loss.csv"
LOSS_PLOT = "loss.png"
MODEL_CARD = "README.md"
FULL_MODEL_DIR = "model"
LOSS_COLUMNS = ("step", "loss", "learning_rate", "elapsed_s")

_TRAINABLE = "trainable.safetensors"
_OPTIMIZER = "optimizer.pt"
_STATE = "state.json"
_CHECKPOINT_NAME = re.compile(r"^step-(\d+)$")


def step_folder_name(step: int) -> str:
    return f"step-{step:06d}"


@dataclass(frozen=True)
class LossRecord:
    """One optimizer step's loss (averaged over its micro-batches and processes)."""

    step: int
    loss: float
    learning_rate: float
    elapsed_s: float


class RunFolder:
    """The folder of one training run (see the module docstring for its layout)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def samples_dir(self, step: int) -> Path:
        return self.path / SAMPLES_DIR / step_folder_name(step)

    # --- Starting and resuming ----------------------------------------------------------------

    def check_new(self) -> None:
        """Refuse a folder that holds another run or other files (before any work)."""
        if self.path.exists() and not self.path.is_dir():
            raise RiffusionError(f"{self.path}: exists and is not a folder")
        if (self.path / RUN_FILE).is_file():
            raise RiffusionError(
                f"{self.path} holds another training run; pass --resume to continue it, or "
                "choose a new output folder"
            )
        if self.path.is_dir() and any(self.path.iterdir()):
            raise RiffusionError(
                f"{self.path}: the folder is not empty; choose a new or empty output folder"
            )

    def read_record(self) -> dict[str, Any]:
        """run.json of a run to resume."""
        path = self.path / RUN_FILE
        if not path.is_file():
            raise RiffusionError(f"{self.path}: no training run to resume (it has no {RUN_FILE})")
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RiffusionError(f"{path}: unreadable ({error})") from None
        if not isinstance(record, dict):
            raise RiffusionError(f"{path}: not a run record")
        return record

    def write_record(self, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        text = json.dumps(record, indent=2) + "\n"
        write_atomically(self.path / RUN_FILE, lambda path: path.write_text(text))

    # --- Checkpoints --------------------------------------------------------------------------

    def checkpoint_steps(self) -> list[int]:
        """Steps of the complete checkpoints, oldest first."""
        if not self.checkpoints_dir.is_dir():
            return []
        steps = []
        for folder in self.checkpoints_dir.iterdir():
            match = _CHECKPOINT_NAME.match(folder.name)
            if match and (folder / _STATE).is_file():
                steps.append(int(match[1]))
        return sorted(steps)

    def save_checkpoint(
        self,
        step: int,
        trainable: dict[str, torch.Tensor],
        optimizer_state: dict[str, Any],
        state: dict[str, Any],
        write_extra: Callable[[Path], None] | None = None,
    ) -> Path:
        """Write checkpoints/step-N whole or not at all (a folder renamed into place).

        state is JSON (step, learning-rate schedule); write_extra(folder), when given, adds
        files (the checkpoint's LoRA).
        """
        final = self.checkpoints_dir / step_folder_name(step)
        partial = self.checkpoints_dir / f".{final.name}.{secrets.token_hex(4)}.partial"
        partial.mkdir(parents=True)
        try:
            save_file(trainable, str(partial / _TRAINABLE))
            torch.save(optimizer_state, partial / _OPTIMIZER)
            if write_extra is not None:
                write_extra(partial)
            # state.json last: a folder with it is complete.
            (partial / _STATE).write_text(json.dumps(state, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(partial, final)
        finally:
            if partial.exists():
                shutil.rmtree(partial)
        return final

    def load_checkpoint(
        self, step: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
        """(trainable weights, optimizer state, state) of checkpoints/step-N."""
        folder = self.checkpoints_dir / step_folder_name(step)
        try:
            trainable = load_file(str(folder / _TRAINABLE))
            optimizer_state = torch.load(folder / _OPTIMIZER, map_location="cpu", weights_only=True)
            state = json.loads((folder / _STATE).read_text())
        except Exception as error:  # a damaged checkpoint, whatever the damage
            raise RiffusionError(f"{folder}: unreadable checkpoint ({error})") from None
        return trainable, optimizer_state, state

    def prune_checkpoints(self, keep: int) -> None:
        """Delete all but the keep most recent checkpoints (keep 0: keep them all)."""
        if keep <= 0:
            return
        for step in self.checkpoint_steps()[:-keep]:
            shutil.rmtree(self.checkpoints_dir / step_folder_name(step), ignore_errors=True)

    # --- The loss log -------------------------------------------------------------------------

    def read_losses(self) -> list[LossRecord]:
        path = self.path / LOSS_FILE
        if not path.is_file():
            return []
        records = []
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                try:
                    records.append(
                        LossRecord(
                            int(row["step"]),
                            float(row["loss"]),
                            float(row["learning_rate"]),
                            float(row["elapsed_s"]),
                        )
                    )
                except (KeyError, TypeError, ValueError):
                    break  # a torn last line
        return records

    def start_loss_log(self, keep_until_step: int) -> None:
        """Rewrite loss.csv with its rows up to keep_until_step (a resumed run redoes the rest)."""
        kept = [record for record in self.read_losses() if record.step <= keep_until_step]
        self._write_losses(kept)

    def append_loss(self, record: LossRecord) -> None:
        with (self.path / LOSS_FILE).open("a", newline="") as file:
            csv.writer(file).writerow(_loss_row(record))

    def _write_losses(self, records: Sequence[LossRecord]) -> None:
        def write(path: Path) -> None:
            with path.open("w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(LOSS_COLUMNS)
                for record in records:
                    writer.writerow(_loss_row(record))

        self.path.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path / LOSS_FILE, write)


def _loss_row(record: LossRecord) -> list[object]:
    # Nine significant digits keep a float32 loss exact enough to compare runs by their logs.
    return [
        record.step,
        f"{record.loss:.9g}",
        f"{record.learning_rate:.9g}",
        f"{record.elapsed_s:.3f}",
    ]
