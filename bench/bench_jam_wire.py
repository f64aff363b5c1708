"""Which audio format keeps the live jam's pieces gapless once a browser has decoded them.

The server sends the jam as one stitched stream cut into a piece per clip, each encoded on its own
and decoded on its own by the page (decodeAudioData). This encodes the pieces of a real stream
(riffusion.server.jam_audio.JamAudioStream over built-in seed loops, played as they are: no model
needed) in each format riffusion writes, decodes every piece in Chromium at 44.1 kHz as the web app
does, concatenates the decoded pieces and compares them with the stream:

    length error   decoded frames minus encoded frames, per piece (encoder delay and padding that
                   the decoder does not trim show up here)
    delay          the lag (frames) at which each decoded piece best matches its source
    SNR            of the decoded concatenation against the stream, dB
    edge error     largest error within 2 ms of a boundary over the 99.9th percentile of the
                   error elsewhere: how much worse the codec is where a piece starts or ends
    join figure    riffusion.testing.join_metrics.join_artefacts of the decoded concatenation at the
                   boundaries (12 kHz high-pass, dB over the median elsewhere), mean and worst: a
                   click or jump at a boundary raises it. The stream's own figure (float, never
                   encoded) is the first row; 16-bit PCM adds its noise floor, which lifts the
                   quiet boundaries towards 0 dB
    kB per clip    encoded size of a 5.12 s piece (the wire carries it in base64: 4/3 of that)

    .venv/bin/python bench/bench_jam_wire.py [--chromium /usr/bin/chromium] [--clips 8]

Needs Playwright (a dev extra) and a Chromium build.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from riffusion.audio import Audio
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.seeds import load_seed_image
from riffusion.server.jam_audio import JamAudioStream
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.testing.join_metrics import join_artefacts

FORMATS = ("mp3", "ogg", "flac", "wav")
SEEDS = ("og_beat", "four_on_the_floor", "bossa", "ambient_pad")
# Frames either side of a boundary counted as its edge (2 ms).
EDGE_FRAMES = 88
# Lags searched for each piece's delay, frames.
MAX_LAG = 3000
# decodeAudioData at the stream's rate, returning each piece's first channel as base64 float32.
DECODE_JS = """async (pieces) => {
  const context = new OfflineAudioContext(1, 1, 44100);
  const decoded = [];
  for (const piece of pieces) {
    const binary = atob(piece);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    const buffer = await context.decodeAudioData(bytes.buffer);
    const raw = new Uint8Array(buffer.getChannelData(0).buffer.slice(0));
    let text = "";
    for (let i = 0; i < raw.length; i += 8192) {
      text += String.fromCharCode(...raw.subarray(i, i + 8192));
    }
    decoded.push(btoa(text));
  }
  return decoded;
}"""


def stream_pieces(num_clips: int) -> list[np.ndarray]:
    """The pieces (mono frames) of a jam stream that plays built-in seed loops in turn."""
    params = SpectrogramParams()
    stream = JamAudioStream(params)
    inputs = InferenceInput(alpha=0.0, start=PromptInput("bench", 0), end=PromptInput("bench", 1))
    pieces = []
    for index in range(num_clips):
        seed = load_seed_image(SEEDS[index % len(SEEDS)])
        pieces.append(stream.add(seed, seed, inputs).audio.samples[0])
    return pieces


def delay(decoded: np.ndarray, source: np.ndarray) -> int:
    """The lag (frames) minimising the mean squared difference over the piece's first 0.5 s."""
    span = 22050
    errors = []
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        a = decoded[max(lag, 0) : max(lag, 0) + span]
        b = source[max(-lag, 0) : max(-lag, 0) + span]
        n = min(len(a), len(b))
        errors.append(float(np.mean((a[:n] - b[:n]) ** 2)))
    return int(np.argmin(errors)) - MAX_LAG


def measure(page, pieces: list[np.ndarray], fmt: str, sample_rate: int) -> dict[str, str]:
    encoded = [Audio(piece[None], sample_rate).to_bytes(fmt) for piece in pieces]
    answer = page.evaluate(DECODE_JS, [base64.b64encode(data).decode("ascii") for data in encoded])
    decoded = [np.frombuffer(base64.b64decode(text), dtype=np.float32) for text in answer]
    length_errors = [len(d) - len(p) for d, p in zip(decoded, pieces, strict=True)]
    delays = [delay(d, p) for d, p in zip(decoded, pieces, strict=True)]
    source = np.concatenate(pieces)
    joined = np.concatenate(decoded)
    boundaries = np.cumsum([len(p) for p in pieces])[:-1]
    figure = edge = snr = "n/a"
    if len(joined) == len(source):
        error = np.abs(joined - source)
        near = np.zeros(len(source), dtype=bool)
        for boundary in boundaries:
            near[boundary - EDGE_FRAMES : boundary + EDGE_FRAMES] = True
        edge = f"{error[near].max() / np.percentile(error[~near], 99.9):.2f}x"
        snr = f"{10 * np.log10(np.sum(source**2) / max(np.sum(error**2), 1e-30)):.1f}"
        figure = join_figure(joined, boundaries, sample_rate)
    full = [len(data) for data, piece in zip(encoded, pieces, strict=True) if len(piece) == 225792]
    return {
        "format": fmt,
        "kB per 5.12 s clip": f"{np.mean(full) / 1000:.0f}",
        "length error (frames)": f"{min(length_errors)} to {max(length_errors)}",
        "delay (frames)": f"{min(delays)} to {max(delays)}",
        "SNR dB": snr,
        "edge error": edge,
        "join figure mean / max dB": figure,
    }


def join_figure(samples: np.ndarray, boundaries: np.ndarray, sample_rate: int) -> str:
    figures = join_artefacts(Audio(samples[None], sample_rate), boundaries)
    return f"{figures.mean_db:+.1f} / {figures.max_db:+.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--clips", type=int, default=8)
    args = parser.parse_args()
    pieces = stream_pieces(args.clips)
    sample_rate = SpectrogramParams().sample_rate
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(args.chromium), args=["--no-sandbox"]
        )
        print(f"Chromium {browser.version}, {args.clips} pieces of one jam stream")
        page = browser.new_page()
        page.goto("about:blank")
        rows = [measure(page, pieces, fmt, sample_rate) for fmt in FORMATS]
        browser.close()
    columns = list(rows[0])
    source = np.concatenate(pieces)
    boundaries = np.cumsum([len(p) for p in pieces])[:-1]
    stream = dict.fromkeys(columns, "")
    stream["format"] = "the stream (float)"
    stream["join figure mean / max dB"] = join_figure(source, boundaries, sample_rate)
    rows.insert(0, stream)
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[column] for column in columns) + " |")


if __name__ == "__main__":
    main()
