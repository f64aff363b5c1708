"""A small numpy synthesizer: drum, bass, chord and lead voices, and a mixer that wraps around.

Every voice returns a mono float64 array of samples (nominal peak 1 at velocity 1) at sample_rate
Hz. Each sound fades in over about a millisecond and ends at exactly zero, so a hit never clicks,
wherever it lands. Noise comes from the numpy Generator passed in, so a seed fixes every sound.

Loops are mixed circularly (LoopMixer): the tail of a note that rings past the end of the loop is
added to its beginning, and the reverb is a circular convolution. A rendered loop is one period
of a periodic signal, so it repeats without a click at the wrap.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt

# Length of the fade-in at the start and the fade-out at the end of every sound, s.
_ATTACK_S = 0.001
_RELEASE_S = 0.005


def _times(duration_s: float, sample_rate: int) -> np.ndarray:
    """Sample times (s) of a sound lasting duration_s, shape (round(duration_s * sample_rate),)."""
    return np.arange(max(round(duration_s * sample_rate), 1)) / sample_rate


def _decay(times_s: np.ndarray, length_s: float) -> np.ndarray:
    """Exponential decay reaching -60 dB after length_s (s)."""
    return np.exp(-6.9 * times_s / length_s)


def _shaped(sound: np.ndarray, sample_rate: int) -> np.ndarray:
    """sound with a raised-cosine fade-in and fade-out, so it starts and ends at zero."""
    sound = sound.copy()
    for length_s, edge in ((_ATTACK_S, slice(None)), (_RELEASE_S, slice(None, None, -1))):
        count = min(max(round(length_s * sample_rate), 1), len(sound) // 2)
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(count) / count)
        sound[edge][:count] *= ramp
    return sound


def _filtered(
    signal: np.ndarray, sample_rate: int, kind: str, cutoff_hz: float | tuple[float, float]
) -> np.ndarray:
    """Second-order Butterworth filter (kind "lowpass", "highpass" or "bandpass")."""
    return sosfilt(_butterworth(sample_rate, kind, cutoff_hz), signal)


@lru_cache(maxsize=256)
def _butterworth(sample_rate: int, kind: str, cutoff_hz: float | tuple[float, float]) -> np.ndarray:
    # Designing a filter costs far more than running it on a drum hit; voices reuse a few.
    nyquist = sample_rate / 2
    cutoff = np.clip(np.asarray(cutoff_hz, dtype=float), 1.0, 0.99 * nyquist)
    return butter(2, cutoff, btype=kind, fs=sample_rate, output="sos")


def _noise(rng: np.random.Generator, times_s: np.ndarray) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, len(times_s))


def _sine_sweep(times_s: np.ndarray, start_hz: float, end_hz: float, sweep_s: float) -> np.ndarray:
    """Sine gliding exponentially from start_hz to end_hz (Hz), time constant sweep_s (s)."""
    frequency = end_hz + (start_hz - end_hz) * np.exp(-times_s / sweep_s)
    sample_period = times_s[1] - times_s[0] if len(times_s) > 1 else 1.0
    return np.sin(2 * np.pi * np.cumsum(frequency) * sample_period)


def _sawtooth(times_s: np.ndarray, frequency_hz: float, phase: float = 0.0) -> np.ndarray:
    """Naive sawtooth in [-1, 1]; aliasing is negligible for the bass and chord registers used."""
    return 2.0 * ((frequency_hz * times_s + phase) % 1.0) - 1.0


# Drums. Each takes the sample rate (Hz), a random generator and a velocity (linear gain).


def kick(
    sample_rate: int, rng: np.random.Generator, velocity: float = 1.0, pitch_hz: float = 50.0
) -> np.ndarray:
    """Kick drum: a sine gliding down to pitch_hz within ~30 ms, with a short noise click."""
    times = _times(0.45, sample_rate)
    body = _sine_sweep(times, 3.0 * pitch_hz, pitch_hz, 0.03) * _decay(times, 0.45)
    click = _filtered(_noise(rng, times), sample_rate, "bandpass", (1500, 6000)) * _decay(
        times, 0.012
    )
    return velocity * _shaped(body + 0.3 * click, sample_rate)


def snare(sample_rate: int, rng: np.random.Generator, velocity: float = 1.0) -> np.ndarray:
    """Snare drum: two decaying drum-head tones under a burst of high-passed noise."""
    times = _times(0.3, sample_rate)
    head = (np.sin(2 * np.pi * 185 * times) + 0.5 * np.sin(2 * np.pi * 330 * times)) * _decay(
        times, 0.12
    )
    wires = _filtered(_noise(rng, times), sample_rate, "highpass", 1500) * _decay(times, 0.25)
    return velocity * _shaped(0.5 * head + 0.9 * wires, sample_rate)


def clap(sample_rate: int, rng: np.random.Generator, velocity: float = 1.0) -> np.ndarray:
    """Hand clap: three quick noise bursts 10 ms apart, then a short diffuse tail."""
    times = _times(0.25, sample_rate)
    envelope = 0.6 * _decay(times, 0.2)
    for start_s in (0.0, 0.01, 0.02):
        later = times >= start_s
        envelope[later] += _decay(times[later] - start_s, 0.015)
    noise = _filtered(_noise(rng, times), sample_rate, "bandpass", (900, 4000))
    return velocity * _shaped(noise * envelope, sample_rate)


def hat(
    sample_rate: int, rng: np.random.Generator, velocity: float = 1.0, length_s: float = 0.06
) -> np.ndarray:
    """Hi-hat: high-passed noise ringing for length_s (s): 0.06 closed, 0.4 open."""
    times = _times(length_s, sample_rate)
    noise = _filtered(_noise(rng, times), sample_rate, "highpass", 7000)
    return velocity * 0.6 * _shaped(noise * _decay(times, length_s), sample_rate)


def ride(sample_rate: int, rng: np.random.Generator, velocity: float = 1.0) -> np.ndarray:
    """Ride cymbal: inharmonic metallic partials over a long, quiet noise wash."""
    times = _times(1.0, sample_rate)
    partials = rng.uniform(3000, 8000, 6)
    phases = rng.uniform(0, 2 * np.pi, 6)
    ping = np.sin(2 * np.pi * partials[:, None] * times + phases[:, None]).sum(axis=0) / 6
    wash = _filtered(_noise(rng, times), sample_rate, "highpass", 5000)
    sound = (0.7 * ping + 0.4 * wash) * _decay(times, 1.0)
    return velocity * 0.5 * _shaped(sound, sample_rate)


def tom(
    sample_rate: int, rng: np.random.Generator, velocity: float = 1.0, pitch_hz: float = 110.0
) -> np.ndarray:
    """Tom: a sine settling onto pitch_hz, with a little skin noise."""
    times = _times(0.5, sample_rate)
    body = _sine_sweep(times, 1.6 * pitch_hz, pitch_hz, 0.04) * _decay(times, 0.5)
    skin = _filtered(_noise(rng, times), sample_rate, "bandpass", (300, 3000)) * _decay(times, 0.05)
    return velocity * _shaped(body + 0.2 * skin, sample_rate)


def rim(sample_rate: int, rng: np.random.Generator, velocity: float = 1.0) -> np.ndarray:
    """Rim shot / woodblock click: a short 1.7 kHz tone with a noise tick."""
    times = _times(0.06, sample_rate)
    tone = np.sin(2 * np.pi * 1700 * times) * _decay(times, 0.05)
    tick = _filtered(_noise(rng, times), sample_rate, "bandpass", (2000, 6000)) * _decay(
        times, 0.01
    )
    return velocity * 0.7 * _shaped(tone + 0.5 * tick, sample_rate)


def shaker(sample_rate: int, rng: np.random.Generator, velocity: float = 1.0) -> np.ndarray:
    """Shaker: band-passed noise that swells over 15 ms and dies away."""
    times = _times(0.12, sample_rate)
    swell = np.minimum(times / 0.015, 1.0) * _decay(times, 0.12)
    noise = _filtered(_noise(rng, times), sample_rate, "bandpass", (4000, 9500))
    return velocity * 0.5 * _shaped(noise * swell, sample_rate)


# Pitched voices. Each takes the sample rate (Hz), the frequency (Hz) or frequencies, the held
# duration (s) and a velocity; the sound rings on after the duration for its release.


def bass(
    sample_rate: int, frequency_hz: float, duration_s: float, velocity: float = 1.0
) -> np.ndarray:
    """Bass: low-passed sawtooth with a sine sub an octave down, held for duration_s."""
    times = _times(duration_s + 0.04, sample_rate)
    tone = 0.6 * _sawtooth(times, frequency_hz) + 0.8 * np.sin(np.pi * frequency_hz * times)
    tone = _filtered(tone, sample_rate, "lowpass", 5.0 * frequency_hz)
    # Plucked: a bright start settling to a sustained level, released after duration_s.
    envelope = 0.6 + 0.4 * _decay(times, 0.3)
    envelope[times > duration_s] *= _decay(times[times > duration_s] - duration_s, 0.04)
    return velocity * _shaped(tone * envelope, sample_rate)


def pad(
    sample_rate: int,
    frequencies_hz: tuple[float, ...],
    duration_s: float,
    rng: np.random.Generator,
    velocity: float = 1.0,
    attack_s: float = 0.3,
    release_s: float = 0.8,
) -> np.ndarray:
    """Pad: three slightly detuned sawtooths per note, low-passed, swelling in and out."""
    times = _times(duration_s + release_s, sample_rate)
    tone = np.zeros_like(times)
    for frequency in frequencies_hz:
        for cents in (-8.0, 0.0, 8.0):
            tone += _sawtooth(times, frequency * 2 ** (cents / 1200), rng.uniform())
    tone = _filtered(tone, sample_rate, "lowpass", 2200) / (3 * len(frequencies_hz))
    attack = min(attack_s, duration_s / 2)
    envelope = np.minimum(times / attack, 1.0)
    after = times > duration_s
    envelope[after] *= np.cos(0.5 * np.pi * np.minimum((times[after] - duration_s) / release_s, 1))
    return velocity * 1.5 * _shaped(tone * envelope, sample_rate)


def keys(
    sample_rate: int, frequencies_hz: tuple[float, ...], duration_s: float, velocity: float = 1.0
) -> np.ndarray:
    """Electric piano: two-operator FM (1:1), bright at the attack, mellowing as it decays."""
    times = _times(duration_s + 0.08, sample_rate)
    index = 1.5 * _decay(times, 0.6)
    tone = np.zeros_like(times)
    for frequency in frequencies_hz:
        modulator = np.sin(2 * np.pi * frequency * times)
        tone += np.sin(2 * np.pi * frequency * times + index * modulator)
    envelope = _decay(times, 2.0)
    envelope[times > duration_s] *= _decay(times[times > duration_s] - duration_s, 0.08)
    return velocity * _shaped(tone * envelope / len(frequencies_hz), sample_rate)


def pluck(
    sample_rate: int, frequency_hz: float, duration_s: float, velocity: float = 1.0
) -> np.ndarray:
    """Plucked synth or nylon string: harmonics 1/h loud, the higher ones dying faster."""
    return velocity * _pluck_tone(sample_rate, frequency_hz, min(duration_s, 0.6))


@lru_cache(maxsize=64)
def _pluck_tone(sample_rate: int, frequency_hz: float, duration_s: float) -> np.ndarray:
    # Additive synthesis is the costliest voice, and patterns repeat their notes: cached.
    times = _times(duration_s + 0.05, sample_rate)
    # Harmonics up to 8 kHz, at most 40 (plenty for a pluck, and cheap).
    harmonics = np.arange(1, min(max(int(8000 // frequency_hz), 1), 40) + 1)
    decay_rates = 4.0 + 3.0 * harmonics  # 1/s
    tone = (
        np.sin(2 * np.pi * frequency_hz * harmonics[:, None] * times)
        * (np.exp(-decay_rates[:, None] * times) / harmonics[:, None])
    ).sum(axis=0)
    shaped = 0.8 * _shaped(tone, sample_rate)
    shaped.flags.writeable = False
    return shaped


def marimba(
    sample_rate: int, frequency_hz: float, duration_s: float, velocity: float = 1.0
) -> np.ndarray:
    """Marimba: fundamental plus the bar's inharmonic overtones (3.9x and 9.2x), struck."""
    times = _times(0.8, sample_rate)
    tone = (
        np.sin(2 * np.pi * frequency_hz * times) * _decay(times, 0.8)
        + 0.35 * np.sin(2 * np.pi * 3.93 * frequency_hz * times) * _decay(times, 0.15)
        + 0.15 * np.sin(2 * np.pi * 9.2 * frequency_hz * times) * _decay(times, 0.04)
    )
    return velocity * _shaped(tone, sample_rate)


def vibraphone(
    sample_rate: int, frequency_hz: float, duration_s: float, velocity: float = 1.0
) -> np.ndarray:
    """Vibraphone: a metal bar's modes (1x, 4x and 10x its pitch) ringing for seconds under the
    motor's tremolo (5.5 Hz), damped within 0.2 s once duration_s (at least 0.4 s) is over, as
    when the pedal is lifted."""
    ring_s = max(duration_s, 0.4)
    times = _times(ring_s + 0.2, sample_rate)
    tone = (
        np.sin(2 * np.pi * frequency_hz * times) * _decay(times, 3.0)
        + 0.25 * np.sin(2 * np.pi * 4.0 * frequency_hz * times) * _decay(times, 0.5)
        + 0.08 * np.sin(2 * np.pi * 10.0 * frequency_hz * times) * _decay(times, 0.08)
    )
    tremolo = 1.0 - 0.3 * (0.5 - 0.5 * np.cos(2 * np.pi * 5.5 * times))
    damper = np.ones_like(times)
    damper[times > ring_s] = _decay(times[times > ring_s] - ring_s, 0.2)
    return velocity * _shaped(tone * tremolo * damper, sample_rate)


def lead(
    sample_rate: int, frequency_hz: float, duration_s: float, velocity: float = 1.0
) -> np.ndarray:
    """Lead synth: a band-limited square wave (odd harmonics to 8 kHz) with a delayed vibrato,
    low-passed, held for duration_s and released over 50 ms."""
    times = _times(duration_s + 0.05, sample_rate)
    # The vibrato (+-0.4 %, 5.5 Hz) fades in over 150 ms, as a player's would.
    depth = 0.004 * np.minimum(times / 0.15, 1.0)
    instantaneous_hz = frequency_hz * (1.0 + depth * np.sin(2 * np.pi * 5.5 * times))
    phase = np.cumsum(instantaneous_hz) / sample_rate
    harmonics = np.arange(1, max(int(8000 // frequency_hz), 1) + 1, 2)
    tone = (np.sin(2 * np.pi * harmonics[:, None] * phase) / harmonics[:, None]).sum(axis=0)
    tone = _filtered(tone, sample_rate, "lowpass", 6.0 * frequency_hz)
    envelope = 0.75 + 0.25 * _decay(times, 0.2)
    after = times > duration_s
    envelope[after] *= _decay(times[after] - duration_s, 0.05)
    return velocity * 0.8 * _shaped(tone * envelope, sample_rate)


class LoopMixer:
    """A circular buffer of num_samples samples: one period of a loop.

    Sounds are added at a start sample; whatever extends past the end wraps to the beginning (as
    if the loop had been playing forever), so the buffer repeats seamlessly.
    """

    def __init__(self, num_samples: int) -> None:
        self.samples = np.zeros(num_samples)

    def add(self, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
        """Add sound (1-D, samples) starting at sample start (any integer; taken modulo length)."""
        length = len(self.samples)
        if len(sound) > length:
            # Fold a sound longer than the loop onto one period first.
            folded = np.zeros(-(-len(sound) // length) * length)
            folded[: len(sound)] = sound
            sound = folded.reshape(-1, length).sum(axis=0)
        start %= length
        head = min(len(sound), length - start)
        self.samples[start : start + head] += gain * sound[:head]
        self.samples[: len(sound) - head] += gain * sound[head:]


def circular_reverb(
    samples: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
    decay_s: float = 1.5,
    wet: float = 0.3,
) -> np.ndarray:
    """samples plus a reverb tail, by circular convolution with decaying noise.

    decay_s: time for the tail to fall by 60 dB, s. The convolution wraps around, so a loop stays
    a loop (its tail rings into its own beginning).
    """
    times = _times(decay_s, sample_rate)
    response = _filtered(_noise(rng, times), sample_rate, "lowpass", 5000) * _decay(times, decay_s)
    length = len(samples)
    folded = np.zeros(-(-len(response) // length) * length)
    folded[: len(response)] = response
    folded = folded.reshape(-1, length).sum(axis=0)
    tail = np.fft.irfft(np.fft.rfft(samples) * np.fft.rfft(folded), n=length)
    # Match the tail's RMS to the dry signal's so wet is a level ratio.
    scale = np.sqrt(np.mean(samples**2) / max(np.mean(tail**2), 1e-20))
    return samples + wet * scale * tail
