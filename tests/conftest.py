"""Shared fixtures. Reference data from the original project lives beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "riffusion-reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/riffusion-reference, or a skip where it is absent."""
    if not (REFERENCE_DIR / "clip.wav").is_file():
        pytest.skip(f"reference data not found at {REFERENCE_DIR}")
    return REFERENCE_DIR
