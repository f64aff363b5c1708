"""The Audio type: float32 samples shaped (channels, frames) with their sample rate, and its I/O.

Reading and writing go through soundfile, whose wheels bundle libsndfile with WAV, FLAC, OGG/Vorbis
and MP3 support, so no ffmpeg is needed. Resampling is polyphase filtering from scipy.

The encoders are native code that a bad sample can crash (LAME aborts the process on NaN, libvorbis
segfaults above 200 kHz), so to_bytes hands them only what they take: it refuses NaN and infinite
samples, clips the rest to [-1, 1], and resamples to a rate the format supports.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from riffusion.atomic_files import cannot_write, write_atomically
from riffusion.errors import RiffusionError, RiffusionWarning

# File extension -> (soundfile format, subtype). None lets libsndfile choose its default subtype.
FORMATS: dict[str, tuple[str, str | None]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}

# MP3 only exists at these rates (MPEG-1, -2 and -2.5 layer III).
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Highest rates the other encoders take, Hz: FLAC's format limit, and the highest standard rate
# below the 200 kHz above which libvorbis crashes; higher rates are resampled down to these.
MAX_ENCODED_SAMPLE_RATES = {"flac": 655_350, "ogg": 192_000}
# Most channels each encoder takes (libvorbis crashes on more than 255); libsndfile's WAV writer
# takes up to 1024 and refuses more without harm.
MAX_ENCODED_CHANNELS = {"mp3": 2, "flac": 8, "ogg": 255}

#: Sample rates a file may have to be read, Hz: from below telephone quality to the highest rate
#: audio interfaces record at. Outside them a file is more likely damaged than real, and
#: resampling it would cost far more than it is worth.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000

# A file is called cut short when it decodes this fraction or more below the length its header
# announces; MP3 lengths without a Xing/LAME header are estimates, so small differences are normal.
_SHORTFALL_TOLERANCE = 0.01
# Samples decoded at a time: memory follows the audio actually present, not a header's claim.
_BLOCK_SAMPLES = 2**18
# libsndfile's error codes for data it cannot make sense of; its texts for them can mislead
# ("File does not exist or is not a regular file" for an MP3 without a single valid frame).
_UNDECODABLE = {1: "format not recognised", 7: "no decodable audio found"}


def format_for_extension(name: str) -> str:
    """The format key ('wav', 'flac', 'ogg', 'mp3') for a file name or a bare extension."""
    extension = Path(name).suffix.lstrip(".").lower() or name.lower().lstrip(".")
    if extension not in FORMATS:
        supported = ", ".join(FORMATS)
        raise RiffusionError(f"unsupported audio format {extension!r}: use one of {supported}")
    return extension


@dataclass(frozen=True, eq=False)
class Audio:
    """A piece of sound.

    Attributes:
        samples: float32 array shaped (channels, frames), nominally within [-1, 1].
        sample_rate: frames per second, Hz.

    Slicing with seconds returns a new Audio: ``audio[1.0:3.5]`` is the 2.5 s from 1 s on.
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[np.newaxis, :]
        if samples.ndim != 2 or samples.shape[0] < 1:
            raise RiffusionError(
                f"audio samples must be shaped (channels, frames), got shape {samples.shape}"
            )
        if int(self.sample_rate) <= 0:
            raise RiffusionError(f"sample rate must be positive, got {self.sample_rate}")
        object.__setattr__(self, "samples", np.ascontiguousarray(samples))
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def num_channels(self) -> int:
        return self.samples.shape[0]

    @property
    def num_frames(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.sample_rate

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, time_s: slice) -> Audio:
        if not isinstance(time_s, slice) or time_s.step is not None:
            raise TypeError("Audio is sliced by time in seconds, e.g. audio[1.0:2.5]")
        return self.slice(time_s.start or 0.0, time_s.stop)

    def slice(self, start_s: float = 0.0, end_s: float | None = None) -> Audio:
        """The audio from start_s to end_s (seconds; None means to the end), clamped to the clip."""
        start = min(max(round(start_s * self.sample_rate), 0), self.num_frames)
        end = self.num_frames if end_s is None else round(end_s * self.sample_rate)
        end = min(max(end, start), self.num_frames)
        return Audio(self.samples[:, start:end], self.sample_rate)

    def to_mono(self) -> Audio:
        """Average of all channels, shape (1, frames)."""
        if self.num_channels == 1:
            return self
        return Audio(self.samples.mean(axis=0, keepdims=True), self.sample_rate)

    def to_stereo(self) -> Audio:
        """Two channels: mono is duplicated, more than two are mixed down to mono first."""
        if self.num_channels == 2:
            return self
        mono = self.to_mono().samples
        return Audio(np.concatenate([mono, mono]), self.sample_rate)

    def resample(self, sample_rate: int) -> Audio:
        """Polyphase resampling to sample_rate (Hz); the duration is kept to the nearest frame."""
        if sample_rate <= 0:
            raise RiffusionError(f"sample rate must be positive, got {sample_rate}")
        if sample_rate == self.sample_rate:
            return self
        ratio = Fraction(sample_rate, self.sample_rate)
        resampled = resample_poly(self.samples, ratio.numerator, ratio.denominator, axis=1)
        return Audio(resampled.astype(np.float32), sample_rate)

    def peak_normalized(self, headroom_db: float = 0.1) -> Audio:
        """Scaled so the largest absolute sample sits headroom_db (dB) below full scale."""
        peak = float(np.max(np.abs(self.samples))) if self.num_frames else 0.0
        if peak == 0.0:
            return self
        gain = 10.0 ** (-headroom_db / 20.0) / peak
        return Audio(self.samples * gain, self.sample_rate)

    @classmethod
    def load(cls, path: str | Path, max_duration_s: float | None = None) -> Audio:
        """Read any file libsndfile understands (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...).

        A file that decodes to noticeably less than its header announces (an MP3 cut short) is
        read as far as it goes, with a RiffusionWarning saying so; a WAV cut short is refused.
        max_duration_s, when given, refuses a longer file as soon as its header or its decoding
        shows it, without decoding the rest (a small file of compressed silence can decode to
        gigabytes).

        Raises:
            RiffusionError: the file is missing, not a regular file, empty, not decodable audio,
                a truncated WAV, holds no frames or non-finite samples, has a sample rate
                outside MIN_SAMPLE_RATE to MAX_SAMPLE_RATE, or lasts more than max_duration_s.
        """
        path = Path(path)
        if not path.exists():
            raise RiffusionError(f"{path}: no such file")
        if path.is_dir():
            raise RiffusionError(f"{path}: is a directory, not an audio file")
        if not path.is_file():
            raise RiffusionError(f"{path}: not a regular file")
        if path.stat().st_size == 0:
            raise RiffusionError(f"{path}: file is empty")
        # libsndfile quietly reads what is left of a cut-off WAV; refuse rather than use a fragment.
        shortfall = _wav_data_shortfall(path)
        if shortfall is not None:
            declared, present = shortfall
            raise RiffusionError(
                f"{path}: file is truncated: its header declares {declared} bytes of audio data, "
                f"but only {present} are present"
            )
        try:
            with soundfile.SoundFile(path) as file:
                sample_rate, announced = file.samplerate, file.frames
                if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
                    raise RiffusionError(
                        f"{path}: sample rate {sample_rate} Hz is outside the "
                        f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz that can be read"
                    )
                max_frames = None
                if max_duration_s is not None:
                    max_frames = math.floor(max_duration_s * sample_rate)
                    if announced > max_frames:
                        raise _too_long(path, max_duration_s)
                data = _read_blocks(file, max_frames)
                if data is None:
                    raise _too_long(path, max_duration_s)
        except soundfile.LibsndfileError as error:
            reason = _UNDECODABLE.get(error.code) or error.error_string.rstrip(".")
            raise RiffusionError(f"{path}: not a readable audio file ({reason})") from None
        except (RuntimeError, TypeError) as error:
            raise RiffusionError(f"{path}: not a readable audio file ({error})") from None
        if data.shape[0] == 0:
            raise RiffusionError(f"{path}: contains no audio frames")
        if not np.isfinite(data).all():
            raise RiffusionError(f"{path}: contains NaN or infinite samples")
        if announced - data.shape[0] > _SHORTFALL_TOLERANCE * announced:
            warnings.warn(
                f"{path} seems cut short: its header announces {announced / sample_rate:.2f} s, "
                f"but only {data.shape[0] / sample_rate:.2f} s could be decoded; using that",
                RiffusionWarning,
                stacklevel=2,
            )
        return cls(data.T, sample_rate)

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write to path; the format follows the extension (wav, flac, ogg, mp3).

        The file is written beside path under a temporary name and renamed into place, so path
        holds its old content or the whole new file, never part of one, however the writing
        stops (a full disk, Ctrl-C, a crash). What is written is what to_bytes encodes.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise RiffusionError(f"{path}: already exists (pass overwrite to replace it)")
        data = self.to_bytes(format_for_extension(path.name))
        try:
            return write_atomically(path, lambda temporary: temporary.write_bytes(data))
        except OSError as error:
            raise cannot_write(path, error) from None

    def to_bytes(self, format: str = "wav") -> bytes:
        """The encoded file as bytes, format one of 'wav', 'flac', 'ogg', 'mp3'.

        Samples beyond [-1, 1] are clipped to it (hard clipping, as any fixed-point format
        would); NaN or infinite samples are refused. The audio is resampled where the format
        does not take its rate: MP3 to the nearest of MP3_SAMPLE_RATES, FLAC and Ogg Vorbis
        down to their MAX_ENCODED_SAMPLE_RATES.

        Raises:
            RiffusionError: NaN or infinite samples; more channels than the format holds
                (MAX_ENCODED_CHANNELS); audio the encoder refuses.
        """
        key = format_for_extension(format)
        sf_format, subtype = FORMATS[key]
        if not np.isfinite(self.samples).all():
            raise RiffusionError("the audio has NaN or infinite samples; it cannot be encoded")
        max_channels = MAX_ENCODED_CHANNELS.get(key)
        if max_channels is not None and self.num_channels > max_channels:
            raise RiffusionError(
                f"{key} holds at most {max_channels} channels, the audio has "
                f"{self.num_channels}; mix down first"
            )
        audio = self.resample(_encodable_rate(key, self.sample_rate))
        buffer = io.BytesIO()
        samples = np.clip(audio.samples, -1.0, 1.0).T
        try:
            soundfile.write(buffer, samples, audio.sample_rate, format=sf_format, subtype=subtype)
        except soundfile.LibsndfileError as error:
            raise RiffusionError(
                f"cannot encode {key} ({error.error_string.rstrip('.')})"
            ) from None
        return buffer.getvalue()


def _encodable_rate(key: str, sample_rate: int) -> int:
    """The rate, Hz, at which format key encodes audio of sample_rate."""
    if key == "mp3":
        return min(MP3_SAMPLE_RATES, key=lambda rate: abs(rate - sample_rate))
    return min(sample_rate, MAX_ENCODED_SAMPLE_RATES.get(key, sample_rate))


def _read_blocks(file: soundfile.SoundFile, max_frames: int | None = None) -> np.ndarray | None:
    """The rest of file as float32 (frames, channels), read in blocks until the data ends; None
    as soon as more than max_frames frames have been read.

    soundfile.read would allocate the frame count the header announces up front, which a damaged
    or hostile header sets to billions.
    """
    block_frames = max(1, _BLOCK_SAMPLES // file.channels)
    blocks = []
    frames = 0
    while len(block := file.read(block_frames, dtype="float32", always_2d=True)):
        blocks.append(block)
        frames += len(block)
        if max_frames is not None and frames > max_frames:
            return None
    if not blocks:
        return np.zeros((0, file.channels), dtype=np.float32)
    return np.concatenate(blocks)


class AudioTooLongError(RiffusionError):
    """An audio file longer than the max_duration_s it was loaded with."""


def _too_long(path: Path, max_duration_s: float | None) -> AudioTooLongError:
    return AudioTooLongError(
        f"{path}: longer than {max_duration_s:g} s, the most that is read here"
    )


def _wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """(declared, present) sizes in bytes of a RIFF/WAVE file's data chunk when the file is cut
    short of what its header declares; None for complete files and other formats."""
    with path.open("rb") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:] != b"WAVE":
            return None
        while len(chunk := file.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                present = path.stat().st_size - file.tell()
                # Streaming writers leave 0 or 0xFFFFFFFF when the length is not known up front.
                if size in (0, 0xFFFFFFFF) or size <= present:
                    return None
                return size, present
            # Chunks are padded to an even size.
            file.seek(size + size % 2, io.SEEK_CUR)
    return None
