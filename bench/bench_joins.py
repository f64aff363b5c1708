"""Benchmark of seamless joins: riffusion.stitch against plain concatenation and a crossfade.

Real music: the reference clip (../shared/riffusion-reference/clip.wav, its mid channel) is cut
into clips of 0.64 s, one after another and then overlapping by 0.2 s as riff cuts a track; each
clip is converted to a spectrogram from its own audio and joined back:

    concatenation  each clip reconstructed on its own and peak-normalised (as the original did),
                   concatenated (cut at the middle of the overlaps);
    crossfade      the same clips, crossfaded (equal power) over the overlaps;
    stitch         riffusion.stitch (level matching, mel crossfade, phase continued across joins).

"uncut" is the whole clip reconstructed in one piece, measured at the same places: what the joins
would score if there were none. Pipeline outputs: the tiny random-weight model re-imagines the
same track (riff) and renders seed loops (interpolate), joined by concatenation and by stitch.

Figures (see riffusion.render.metrics): the boundary artefact figure at 12 kHz (energy above the
spectrogram's 10 kHz top, where only discontinuities put any) and at 4 kHz (in the music's band);
for real music also the log-spectral distance of the mel spectrogram from the original's, around
the joins and elsewhere, and the level step at the joins.

    .venv/bin/python bench/bench_joins.py [--reference PATH] [--width 64] [--overlap 20]
        [--skip-pipeline]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from riffusion import Audio, SpectrogramImageConverter, stitch
from riffusion.diffusion.inputs import PromptInput
from riffusion.render.engine import LoopSource
from riffusion.render.joins import Stitcher
from riffusion.render.longform import (
    TrackSource,
    interpolation_alphas,
    plan_interpolation,
    plan_riff,
)
from riffusion.render.metrics import join_artefacts, plain_concatenation
from riffusion.seeds import load_seed_image
from riffusion.spectrogram.params import SpectrogramParams

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "riffusion-reference" / "clip.wav"
# Columns either side of a join counted as "around" it for the spectral distance.
NEAR_COLUMNS = 10
# Amplitudes below this fraction of the loudest are floored for the log-spectral distance.
LSD_FLOOR = 1e-4
# Window either side of a join for the level step, s.
LEVEL_WINDOW_S = 0.1


def cut_clips(audio: Audio, width: int, overlap: int, converter: SpectrogramImageConverter):
    """(clips as mel amplitudes, start columns): overlapping clips of audio, each analysed alone."""
    hop = converter.params.hop_length
    num_columns = audio.num_frames // hop
    starts = list(range(0, num_columns - width + 1, width - overlap))
    clips = []
    for start in starts:
        piece = Audio(audio.samples[:, start * hop : (start + width) * hop], audio.sample_rate)
        clips.append(converter.mel_amplitudes_from_audio(piece)[..., :width])
    return clips, starts


def crossfaded(clips, starts, converter: SpectrogramImageConverter) -> Audio:
    """Clips reconstructed on their own, peak-normalised, equal-power crossfaded over overlaps."""
    hop = converter.params.hop_length
    out = converter.audio_from_mel_amplitudes(clips[0]).samples
    for clip, start, previous_start, previous in zip(
        clips[1:], starts[1:], starts, clips, strict=False
    ):
        samples = converter.audio_from_mel_amplitudes(clip).samples
        begin = start * hop
        length = (previous_start + previous.shape[-1] - start) * hop
        ramp = np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / length)
        mixed = out[:, begin : begin + length] * ramp[::-1] + samples[:, :length] * ramp
        out = np.concatenate([out[:, :begin], mixed, samples[:, length:]], axis=-1)
    return Audio(out, converter.params.sample_rate)


def figures(audio: Audio, joins: list[int]) -> str:
    high = join_artefacts(audio, joins, cutoff_hz=12000.0)
    low = join_artefacts(audio, joins, cutoff_hz=4000.0)
    return f"{high.mean_db:6.1f} | {high.max_db:6.1f} | {low.mean_db:6.1f}"


def spectral_distance(audio: Audio, reference: np.ndarray, joins: list[int], converter) -> str:
    """Log-spectral distance (dB) of audio's mel spectrogram from reference, around joins and
    elsewhere (10 columns in from the ends), after matching the overall level."""
    mel = converter.mel_amplitudes_from_audio(audio)[0]
    columns = min(mel.shape[-1], reference.shape[-1])
    mel, target = mel[:, :columns], reference[:, :columns]
    mel = mel * (target.sum() / mel.sum())
    floor = target.max() * LSD_FLOOR
    ratio_db = 20 * np.log10(np.maximum(mel, floor) / np.maximum(target, floor))
    distance = np.sqrt(np.mean(ratio_db**2, axis=0))
    near = np.zeros(columns, dtype=bool)
    for join in joins:
        column = join // converter.params.hop_length
        near[column - NEAR_COLUMNS : column + NEAR_COLUMNS] = True
    inside = np.zeros(columns, dtype=bool)
    inside[2 * NEAR_COLUMNS : -2 * NEAR_COLUMNS] = True
    return f"{distance[near & inside].mean():5.2f} | {distance[~near & inside].mean():5.2f}"


def level_step(audio: Audio, joins: list[int]) -> str:
    """Mean |level after - level before| (dB) over 100 ms either side of each join."""
    width = round(LEVEL_WINDOW_S * audio.sample_rate)
    mono = audio.samples.mean(axis=0)
    steps = []
    for join in joins:
        before = np.sqrt(np.mean(mono[join - width : join] ** 2))
        after = np.sqrt(np.mean(mono[join : join + width] ** 2))
        steps.append(abs(20 * np.log10(after / before)))
    return f"{np.mean(steps):5.2f}"


def real_music(reference: Path, width: int, overlap: int) -> None:
    converter = SpectrogramImageConverter()
    audio = Audio.load(reference).to_mono().resample(converter.params.sample_rate)
    clips, starts = cut_clips(audio, width, overlap, converter)
    uncut_mel = converter.mel_amplitudes_from_audio(audio)
    original_mel = uncut_mel[0]

    started = time.process_time()
    # stitch() does exactly this; the Stitcher also tells where its windows were spliced.
    stitcher = Stitcher(max_overlap_columns=overlap)
    pieces = [stitcher.add(clip, start).samples for clip, start in zip(clips, starts, strict=True)]
    pieces.append(stitcher.finish().samples)
    stitched = Audio(np.concatenate(pieces, axis=-1), audio.sample_rate)
    stitch_s = time.process_time() - started
    concatenated, joins = plain_concatenation(clips, starts)
    results = {
        "uncut": converter.audio_from_mel_amplitudes(uncut_mel[..., : starts[-1] + width]),
        "concatenation": concatenated,
    }
    if overlap:
        results["crossfade"] = crossfaded(clips, starts, converter)
    results["stitch"] = stitched
    results["stitch without level matching"] = stitch(clips, starts, match_loudness=False)
    print(
        f"\nReal music: {reference.name}, mid channel, {len(clips)} clips of {width} columns "
        f"overlapping by {overlap} ({len(joins)} joins); stitch took {stitch_s:.1f} s of CPU "
        f"({stitch_s / len(clips):.2f} s per clip)"
    )
    print(
        "| method | artefact 12 kHz mean (dB) | max (dB) | artefact 4 kHz mean (dB) "
        "| mel distance at joins (dB) | elsewhere (dB) | level step at joins (dB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, result in results.items():
        print(
            f"| {name} | {figures(result, joins)} | "
            f"{spectral_distance(result, original_mel, joins, converter)} | "
            f"{level_step(result, joins)} |"
        )
    splices = join_artefacts(stitched, stitcher.splices)
    uncut = join_artefacts(results["uncut"], stitcher.splices)
    print(
        f"\nAt the {len(stitcher.splices)} splice points of stitch (between reconstruction "
        f"windows), 12 kHz: stitch mean {splices.mean_db:.1f} dB, max {splices.max_db:.1f} dB; "
        f"uncut at the same places mean {uncut.mean_db:.1f} dB, max {uncut.max_db:.1f} dB"
    )


def pipeline_outputs(reference: Path) -> None:
    from riffusion.diffusion.pipeline import RiffusionPipeline
    from riffusion.testing import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_tiny_checkpoint(Path(folder) / "tiny")
        pipeline = RiffusionPipeline.load_checkpoint(checkpoint, device="cpu", dtype="float32")
    params = pipeline.spectrogram_params
    prompt = PromptInput("jazz piano", seed=7, denoising=0.55)

    track = Audio.load(reference).resample(params.sample_rate)
    width, overlap = 128, 20
    plan = plan_riff(track.num_frames, params, width, overlap, prompt, num_inference_steps=4)
    source = TrackSource(track, params, width, "mono")
    riff_clips = []
    for clip in plan.clips:
        image = pipeline.riffuse(clip.inputs, source.init_image(clip))
        riff_clips.append(source.clip_mel(clip, image)[..., : clip.length])
    starts = [clip.start for clip in plan.clips]

    seed = load_seed_image("og_beat")
    end = PromptInput("church bells", seed=8, denoising=0.75)
    loop_source = LoopSource(seed, params)
    alphas = interpolation_alphas(8)
    loops = plan_interpolation(prompt, end, alphas, loop_source.loop_columns, params, 4)
    loop_images = [pipeline.riffuse(clip.inputs, seed) for clip in loops.clips]
    loop_clips = [
        loop_source.clip_mel(clip, image)
        for clip, image in zip(loops.clips, loop_images, strict=True)
    ]

    print("\nPipeline outputs (tiny random-weight model, 4 steps)")
    print("| render | method | artefact 12 kHz mean (dB) | max (dB) | artefact 4 kHz mean (dB) |")
    print("|---|---|---|---|---|")
    concatenated, joins = plain_concatenation(riff_clips, starts)
    print(f"| riff, {len(riff_clips)} clips | concatenation | {figures(concatenated, joins)} |")
    stitched = stitch(riff_clips, starts)
    print(f"| riff, {len(riff_clips)} clips | stitch | {figures(stitched, joins)} |")
    # The naive way plays the loops back to back; stitch crossfades from each loop's own end.
    butted = [
        loop_source.clip_mel(clip, image)[..., clip.pre_roll :]
        for clip, image in zip(loops.clips, loop_images, strict=True)
    ]
    loop_width = loop_source.loop_columns
    concatenated, joins = plain_concatenation(butted, [k * loop_width for k in range(len(butted))])
    loops_name = f"interpolate, {len(loop_clips)} loops"
    print(f"| {loops_name} | concatenation | {figures(concatenated, joins)} |")
    stitched = stitch(loop_clips, [clip.start for clip in loops.clips])
    print(f"| {loops_name} | stitch | {figures(stitched, loops.join_samples())} |")


def stereo_figures(audio: Audio) -> str:
    """Side-to-mid energy ratio (dB) and left-right correlation of a stereo piece."""
    left, right = audio.samples.astype(np.float64)
    mid, side = (left + right) / 2, (left - right) / 2
    ratio_db = 10 * np.log10(np.sum(side**2) / np.sum(mid**2))
    correlation = np.sum(left * right) / np.sqrt(np.sum(left**2) * np.sum(right**2))
    return f"{ratio_db:6.1f} | {correlation:5.3f}"


def stereo(reference: Path) -> None:
    """riff --stereo pan on the stereo reference clip, with the model left out: each clip's init
    image stands in for the generated one, so what changes is the method's doing alone."""
    params = SpectrogramParams()
    track = Audio.load(reference).resample(params.sample_rate)
    width = 128
    plan = plan_riff(track.num_frames, params, width, 20, PromptInput("-", 0))
    source = TrackSource(track, params, width, "pan")
    clips = []
    for clip in plan.clips:
        clips.append(source.clip_mel(clip, source.init_image(clip))[..., : clip.length])
    starts = [clip.start for clip in plan.clips]
    joined = stitch(clips, starts)
    # What stitch avoids: each channel reconstructed with phases of its own.
    separately = [
        stitch([clip[channel : channel + 1] for clip in clips], starts) for channel in (0, 1)
    ]
    apart = Audio(np.concatenate([audio.samples for audio in separately]), track.sample_rate)
    print("\nStereo: riff --stereo pan, init images as outputs (the model left out)")
    print("| audio | side / mid energy (dB) | left-right correlation |")
    print("|---|---|---|")
    print(f"| {reference.name} | {stereo_figures(track)} |")
    print(f"| after riff --stereo pan (channels share one phase) | {stereo_figures(joined)} |")
    print(f"| the same, channels reconstructed separately | {stereo_figures(apart)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--width", type=int, default=64, help="clip width, columns")
    parser.add_argument("--overlap", type=int, default=20, help="clip overlap, columns")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    real_music(args.reference, args.width, 0)
    real_music(args.reference, args.width, args.overlap)
    stereo(args.reference)
    if not args.skip_pipeline:
        pipeline_outputs(args.reference)


if __name__ == "__main__":
    main()
