"""Loop timing: whole beats, widths the model accepts, bounded stretch, and periodic retiming."""

from __future__ import annotations

import numpy as np
import pytest

from riffusion.errors import RiffusionError
from riffusion.seeds.timing import (
    MAX_BAR_STRETCH,
    PREFERRED_WIDTHS,
    LoopTiming,
    choose_timing,
    nearest_width,
    retime_columns,
)


@pytest.mark.parametrize("beats_per_bar", [2, 3, 4])
def test_every_tempo_gets_whole_bars_in_an_accepted_width(beats_per_bar: int) -> None:
    for bpm in np.arange(60.0, 180.01, 0.5):
        timing = choose_timing(bpm, beats_per_bar)
        assert timing.width % 64 == 0 and timing.width in PREFERRED_WIDTHS
        assert timing.beats % beats_per_bar == 0, bpm
        assert abs(timing.stretch - 1) <= MAX_BAR_STRETCH
        # Drawn at 10 ms per column, the image holds exactly its beats at the image tempo.
        assert timing.width * 0.010 == pytest.approx(timing.beats * 60 / timing.image_bpm)


def test_meters_without_whole_bars_in_range_fall_back_to_whole_beats() -> None:
    timings = [choose_timing(bpm, 7) for bpm in np.arange(60.0, 180.01, 1.0)]
    assert any(timing.beats % 7 for timing in timings)
    assert all(abs(timing.stretch - 1) <= MAX_BAR_STRETCH for timing in timings)


def test_exact_tempos_need_no_stretch() -> None:
    og = choose_timing(93.75)
    assert (og.beats, og.width, og.stretch) == (8, 512, 1.0)
    assert og.duration_s == pytest.approx(5.12) and og.num_samples == 5.12 * 44100
    assert og.image_num_samples == og.num_samples == 512 * 441
    assert og.playback_columns == 512


def test_asked_bars() -> None:
    timing = choose_timing(120.0, bars=4)
    assert (timing.beats, timing.width, timing.bars) == (16, 768, 4)
    assert timing.image_bpm == 125.0 and timing.playback_columns == 800
    assert timing.num_samples == 8 * 44100  # loopable to the sample: 16 beats of 0.5 s
    with pytest.raises(RiffusionError, match="fewer bars"):
        choose_timing(60.0, bars=6)
    with pytest.raises(RiffusionError, match="at least 1"):
        choose_timing(120.0, bars=0)


@pytest.mark.parametrize("bpm", [59.9, 180.5, float("nan"), float("inf"), -120.0])
def test_tempo_out_of_range(bpm: float) -> None:
    with pytest.raises(RiffusionError, match="BPM"):
        choose_timing(bpm)


def test_loop_timing_validation() -> None:
    with pytest.raises(RiffusionError, match="multiple of 64"):
        LoopTiming(120.0, 8, 4, 500)
    with pytest.raises(RiffusionError, match="one beat"):
        LoopTiming(120.0, 0, 4, 512)
    with pytest.raises(RiffusionError, match="positive"):
        LoopTiming(0.0, 8, 4, 512)
    assert nearest_width(0.01) == 64 and nearest_width(5.0) == 512 and nearest_width(5.5) == 576


def test_retime_columns_is_periodic() -> None:
    columns = np.arange(8.0)[None, None, :]
    np.testing.assert_array_equal(retime_columns(columns, 8), columns)
    # Stretching to twice the columns interpolates, and the last half-step wraps to column 0.
    doubled = retime_columns(columns, 16)[0, 0]
    np.testing.assert_allclose(doubled[:3], [0.0, 0.5, 1.0])
    assert doubled[-1] == pytest.approx(3.5)  # halfway from 7 back to 0
    assert retime_columns(columns, 4)[0, 0].tolist() == [0.0, 2.0, 4.0, 6.0]
