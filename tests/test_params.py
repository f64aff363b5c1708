"""SpectrogramParams: the original's defaults, derived sizes, validation and EXIF."""

from __future__ import annotations

import pytest

from riffusion import RiffusionError, SpectrogramParams
from riffusion.spectrogram.params import ExifTag


def test_defaults_and_derived_sizes_match_the_original() -> None:
    params = SpectrogramParams()
    assert (params.stereo, params.sample_rate, params.num_frequencies) == (False, 44100, 512)
    assert (params.min_frequency, params.max_frequency) == (0, 10000)
    assert (params.mel_scale_norm, params.mel_scale_type) == (None, "htk")
    assert (params.max_mel_iters, params.num_griffin_lim_iters) == (200, 32)
    assert params.power_for_image == 0.25
    assert (params.n_fft, params.win_length, params.hop_length) == (17640, 4410, 441)


def test_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SpectrogramParams().stereo = True  # type: ignore[misc]


def test_exif_round_trip_with_the_original_tags() -> None:
    params = SpectrogramParams(stereo=True, step_size_ms=20, max_frequency=8000)
    exif = params.to_exif()
    assert exif[11000] == 44100
    assert exif[11005] == 1
    assert exif[11010] == 20
    assert exif[11060] == 8000
    assert exif[11070] == 0.25
    assert ExifTag.MAX_VALUE not in exif
    assert SpectrogramParams.from_exif(exif) == params


def test_missing_exif_tags_are_named() -> None:
    exif = SpectrogramParams().to_exif()
    del exif[int(ExifTag.STEP_SIZE_MS)]
    with pytest.raises(RiffusionError, match="STEP_SIZE_MS"):
        SpectrogramParams.from_exif(exif)
    with pytest.raises(RiffusionError, match="no riffusion spectrogram parameters"):
        SpectrogramParams.from_exif({})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"step_size_ms": -1}, "step_size_ms"),
        ({"padded_duration_ms": 50}, "padded_duration_ms"),
        ({"num_frequencies": 0}, "num_frequencies"),
        ({"min_frequency": 5000, "max_frequency": 4000}, "min_frequency < max_frequency"),
        ({"max_frequency": 30000}, "sample_rate / 2"),
        ({"mel_scale_type": "bark"}, "mel_scale_type"),
        ({"power_for_image": 0}, "power_for_image"),
    ],
)
def test_invalid_parameters_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(RiffusionError, match=message):
        SpectrogramParams(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sample_rate": 10**9}, "sample_rate must be between 1000 and 768000"),
        ({"padded_duration_ms": 10**6}, "padded_duration_ms must be between 1 and 1000"),
        ({"num_frequencies": 10**6}, "num_frequencies must be between 1 and 4096"),
        ({"power_for_image": float("nan")}, "power_for_image must be between 0.01 and 10"),
        ({"power_for_image": float("inf")}, "power_for_image"),
    ],
)
def test_parameters_beyond_their_ranges_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(RiffusionError, match=message):
        SpectrogramParams(**changes)


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (ExifTag.SAMPLE_RATE, float("inf")),  # int(inf) raised OverflowError
        (ExifTag.SAMPLE_RATE, 1e308),
        (ExifTag.STEP_SIZE_MS, float("nan")),
        (ExifTag.NUM_FREQUENCIES, 512.5),
        (ExifTag.POWER_FOR_IMAGE, float("nan")),  # passed the "must be positive" check
        (ExifTag.STEREO, 2),
        (ExifTag.MAX_FREQUENCY, (5000, 6000)),
    ],
)
def test_every_exif_value_is_checked_and_its_tag_named(tag: ExifTag, value: object) -> None:
    exif = SpectrogramParams().to_exif()
    exif[int(tag)] = value
    with pytest.raises(RiffusionError, match=rf"EXIF tag {int(tag)} \({tag.name}\) must be a"):
        SpectrogramParams.from_exif(exif)
