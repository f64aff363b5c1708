"""Measurements behind the seed library's tempo and width method (docs/seeds.md).

1. Stretch table: for every tempo from 60 to 180 BPM (0.25 BPM steps), the smallest stretch
   |image_bpm / bpm - 1| each candidate rule can reach, where image_bpm = 6000 * beats / width is
   a tempo that fits whole beats into a width that is a multiple of 64 px at 10 ms per column.
2. Playback: og_beat's image (8 beats in 512 px, 93.75 BPM) played at tempos needing stretches
   of -6 % to +6 %, two ways: stretching the image's columns before phase reconstruction (the
   method chosen) and reconstructing at 10 ms then resampling the audio (a speed change). Each is
   compared with the pattern rendered directly at the asked tempo: measured tempo, pitch shift
   (cents) and log-mel distance (dB), the latter against the distance at no stretch, which
   is the floor phase reconstruction sets.
3. Tempo estimation: every built-in pattern, two bars (at least 4 s) rendered at 60 to 180 BPM
   in 6-BPM steps and analysed as an ordinary recording (as `seed-image --from` does, before
   snapping to the file's length): how often the estimate is within 1 BPM of the truth, and
   within 1 BPM of a metrically related tempo (x2, x1/2, x3/2, x2/3); librosa's beat tracker on
   the same audio, judged within 4 % (its lag resolution).

    .venv/bin/python bench/seed_timing.py [--skip-playback] [--skip-tempo]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.signal import welch

from riffusion.audio import Audio
from riffusion.seeds.builtin import render_loop, render_seed_image, seed_request
from riffusion.seeds.images import loop_audio_from_image, loop_mel_amplitudes
from riffusion.seeds.patterns import PATTERNS, get_pattern, render_pattern
from riffusion.seeds.tempo import estimate_tempo
from riffusion.seeds.timing import LoopTiming, choose_timing
from riffusion.spectrogram.converter import SpectrogramImageConverter


def best_stretch(bpm: float, unit: int, widths: range) -> float:
    """Smallest |image_bpm / bpm - 1| over whole multiples of unit beats in widths."""
    best = math.inf
    for width in widths:
        exact = bpm * width / 6000 / unit
        for count in {max(math.floor(exact), 1), math.ceil(exact)}:
            best = min(best, abs(6000 * count * unit / width / bpm - 1))
    return best


def stretch_table() -> None:
    tempos = np.arange(60, 180.001, 0.25)
    print("Rule (4/4)                                   max stretch   mean stretch   exact")
    rules = (
        ("512 px, whole beats", 1, range(512, 513)),
        ("512 px, whole bars", 4, range(512, 513)),
        ("384-768 px, whole beats", 1, range(384, 769, 64)),
        ("384-768 px, whole bars", 4, range(384, 769, 64)),
        ("256-1024 px, whole bars", 4, range(256, 1025, 64)),
    )
    for name, unit, widths in rules:
        stretches = np.array([best_stretch(bpm, unit, widths) for bpm in tempos])
        exact = np.mean(stretches < 1e-9) * 100
        print(
            f"{name:44s} {stretches.max() * 100:9.2f} %  {stretches.mean() * 100:10.2f} %"
            f"   {exact:5.1f} %"
        )
    chosen = np.array(
        [
            abs(choose_timing(bpm, beats_per_bar).stretch - 1)
            for bpm in tempos
            for beats_per_bar in (3, 4)
        ]
    )
    name = "choose_timing (3/4 and 4/4)"
    print(f"{name:44s} {chosen.max() * 100:9.2f} %  {chosen.mean() * 100:10.2f} %")


def pitch_shift_cents(audio: Audio, reference: Audio) -> float:
    """How far audio's spectrum sits above reference's, cents: the shift that best aligns their
    long-term log spectra on a log-frequency axis from 30 Hz to 2 kHz (bass and its harmonics)."""
    grid_hz = 30.0 * 2 ** (np.arange(0, math.log2(2000 / 30) * 1200) / 1200)  # 1-cent steps

    def log_spectrum(loop: Audio) -> np.ndarray:
        frequencies, power = welch(loop.to_mono().samples[0], loop.sample_rate, nperseg=16384)
        spectrum = np.log(np.interp(grid_hz, frequencies, power) + 1e-20)
        return spectrum - spectrum.mean()

    shifted, fixed = log_spectrum(audio), log_spectrum(reference)
    shifts = np.arange(-300, 301)
    scores = [np.dot(np.roll(shifted, -shift)[300:-300], fixed[300:-300]) for shift in shifts]
    return float(shifts[int(np.argmax(scores))])


def log_mel_distance_db(
    audio: Audio, reference: Audio, converter: SpectrogramImageConverter
) -> float:
    """Mean |difference| of the two loops' mel spectrograms in dB, levels matched, where the
    reference is within 60 dB of its peak."""
    columns = round(reference.duration_s * 100)
    mel = loop_mel_amplitudes(audio, columns, converter)[0]
    ref = loop_mel_amplitudes(reference, columns, converter)[0]
    mel *= np.sqrt((ref**2).sum() / (mel**2).sum())
    floor = ref.max() * 1e-3
    loud = ref > floor
    diff = 20 * np.abs(np.log10((mel + floor) / (ref + floor)))
    return float(diff[loud].mean())


def playback(stretches: tuple[float, ...]) -> None:
    converter = SpectrogramImageConverter()
    pattern = get_pattern("og_beat")
    request = seed_request("og_beat")  # 8 beats in 512 px, drawn at 93.75 BPM
    image = render_seed_image(request, cache=False)
    image_bpm = request.timing.image_bpm
    print(f"\nog_beat image: {image.width} px, {request.timing.beats} beats at {image_bpm} BPM")
    print("stretch   asked BPM   method             measured BPM   pitch shift  log-mel dist")
    for stretch in stretches:
        bpm = image_bpm / stretch
        timing = LoopTiming(bpm, request.timing.beats, 4, image.width)
        reference = render_pattern(pattern, timing.beats, timing.num_samples, request.key)
        started = time.perf_counter()
        retimed = loop_audio_from_image(image, converter, bpm=bpm)
        as_drawn = loop_audio_from_image(image, converter, bpm=image_bpm)
        # A speed change: the audio at 10 ms per column, resampled to the asked length.
        resampled = Audio(
            np.interp(
                np.linspace(0, as_drawn.num_frames, timing.num_samples, endpoint=False),
                np.arange(as_drawn.num_frames),
                as_drawn.samples[0],
            ),
            as_drawn.sample_rate,
        )
        elapsed = time.perf_counter() - started
        for name, audio in (("stretch columns", retimed), ("resample audio", resampled)):
            cents = pitch_shift_cents(audio, reference)
            measured = estimate_tempo(audio, periodic=True)
            distance = log_mel_distance_db(audio, reference, converter)
            print(
                f"{stretch:7.3f}   {bpm:9.2f}   {name:17s}  {measured:12.2f}"
                f"   {cents:+7.1f} ct   {distance:9.2f} dB"
            )
        print(f"          (reconstruction {elapsed:.1f} s)")


def tempo_accuracy() -> None:
    import librosa

    related = (1.0, 2.0, 0.5, 1.5, 2 / 3)
    tempos = range(60, 181, 6)
    print(f"\nTempo estimation, {len(tempos)} tempos from 60 to 180 BPM per pattern")
    print(
        "pattern              ours exact  ours related   librosa exact  librosa related   wrong at"
    )
    totals = np.zeros(4)
    for pattern_id in PATTERNS:
        counts = np.zeros(4)
        wrong = []
        for bpm in tempos:
            # Two bars, or more to last at least 4 s (two beats at 60 BPM, twice over).
            bar_s = PATTERNS[pattern_id].beats_per_bar * 60 / bpm
            audio = render_loop(seed_request(pattern_id, bpm, bars=max(2, math.ceil(4 / bar_s))))
            ours = estimate_tempo(audio)
            theirs = float(
                np.atleast_1d(librosa.beat.beat_track(y=audio.samples[0], sr=44100)[0])[0]
            )
            counts += [
                abs(ours - bpm) <= 1,
                any(abs(ours - bpm * factor) <= 1 for factor in related),
                abs(theirs / bpm - 1) <= 0.04,
                any(abs(theirs / (bpm * factor) - 1) <= 0.04 for factor in related),
            ]
            if abs(ours - bpm) > 1:
                wrong.append(f"{bpm}")
        totals += counts
        shares = counts / len(tempos) * 100
        print(
            f"{pattern_id:20s} {shares[0]:8.0f} %  {shares[1]:10.0f} %  {shares[2]:12.0f} %"
            f"  {shares[3]:14.0f} %   {' '.join(wrong)}"
        )
    shares = totals / (len(tempos) * len(PATTERNS)) * 100
    print(
        f"{'all':20s} {shares[0]:8.0f} %  {shares[1]:10.0f} %  {shares[2]:12.0f} %"
        f"  {shares[3]:14.0f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-playback", action="store_true", help="skip the playback test")
    parser.add_argument("--skip-tempo", action="store_true", help="skip tempo estimation")
    args = parser.parse_args()
    stretch_table()
    if not args.skip_playback:
        playback((1 / 1.06, 1 / 1.03, 1.0, 1.03, 1.06))
    if not args.skip_tempo:
        tempo_accuracy()


if __name__ == "__main__":
    main()
