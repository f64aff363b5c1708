"""Benchmark of seamless joins: riffusion.stitch against plain concatenation and a crossfade.

Real music: the reference clip (../shared/riffusion-reference/clip.wav, its mid channel) is cut
into clips of 0.64 s, one after another and then overlapping by 0.2 s as riff cuts a track; each
clip is converted to a spectrogram from its own audio and joined back:

    concatenation  each clip reconstructed on its own and peak-normalised (as the original did),
                   concatenated (cut at the middle of the overlaps);
    crossfade      the same clips, crossfaded (equal power) over the overlaps;
    stitch         riffusion.stitch (level matching, mel crossfade, phase continued across joins).

"uncut" is the whole clip reconstructed in one piece, measured at the same places: what the joins
would score if there were none.

Seed loops: every built-in seed's loop played --loops times through stitch (the model left out).
Pipeline outputs, from the tiny random-weight model: riff of the same track, and for every
built-in seed an interpolation and a jam of --loops whole loops, each rendered by the Renderer as
`riffusion interpolate` and `riffusion jam` render them. Loops are compared with the no-join floor
(the same loops butted and reconstructed as one piece), plain concatenation, and loop-wise
concatenation (each loop reconstructed as a loop on its own, back to back), all measured at the
same two places per join: the loop boundary (where concatenation joins, and where stitch's
crossfade ends on the loop's first column) and the middle of stitch's crossfade, 0.1 s before it.

Figures (see riffusion.testing.join_metrics): the boundary artefact figure at 12 kHz (energy
above the spectrogram's 10 kHz top, where only discontinuities put any) and at 4 kHz (in the
music's band); for real music also the log-spectral distance of the mel spectrogram from the
original's, around the joins and elsewhere, and the level step at the joins.

    .venv/bin/python bench/bench_joins.py [--reference PATH] [--width 64] [--overlap 20]
        [--skip-real] [--skip-pipeline] [--seeds og_beat,swing] [--loops 6]
        [--takeover-only] [--takeover-qualities fast,high]

Takeover: riff of a 24 s track (the clip looped, and rendered seed loops) with beat-aligned
512-column clips overlapping by 0.2 s, measured in the 10 ms after each overlap ends, where riff
puts the beat; against the track itself and its uncut reconstruction.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from riffusion import Audio, SpectrogramImageConverter, stitch
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.jam import JamSettings
from riffusion.render.engine import LoopSource, Renderer, loop_plan
from riffusion.render.joins import Stitcher, with_pre_roll
from riffusion.render.longform import (
    LOOP_OVERLAP_COLUMNS,
    TrackSource,
    beat_grid,
    interpolation_alphas,
    plan_interpolation,
    plan_jam,
    plan_riff,
)
from riffusion.seeds import list_seeds, load_seed_image
from riffusion.seeds.builtin import render_loop, seed_request
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.testing.join_metrics import (
    join_artefacts,
    looped_concatenation,
    plain_concatenation,
    uncut_reconstruction,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "riffusion-reference" / "clip.wav"
# Columns either side of a join counted as "around" it for the spectral distance.
NEAR_COLUMNS = 10
# Amplitudes below this fraction of the loudest are floored for the log-spectral distance.
LSD_FLOOR = 1e-4
# Window either side of a join for the level step, s.
LEVEL_WINDOW_S = 0.1
# How much better than plain concatenation the joins should be, dB (the target).
TARGET_DB = 10.0
# High-pass cut-offs of the boundary artefact figure, Hz: above the spectrograms' top, and in band.
CUTOFFS_HZ = (12000.0, 4000.0)
# What the tiny model renders: diffusion steps, prompts and seeds.
STEPS = 4
PROMPT = PromptInput("jazz piano", seed=7, denoising=0.55)
END = PromptInput("church bells", seed=8, denoising=0.75)
JAM_PROMPTS = ("sunrise dj set", "hard synth solo")
JAM_SEED = 3
LOOP_METHODS = ("floor", "concatenation", "loop-wise", "stitch")
# stitch's own spectrogram (the crossfades) reconstructed in one piece: its floor in the crossfade.
OWN_FLOOR = "stitch's spectrogram, uncut"


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


def level_step(audio: Audio, joins: list[int]) -> float:
    """Mean |level after - level before| (dB) over 100 ms either side of each join."""
    width = round(LEVEL_WINDOW_S * audio.sample_rate)
    mono = audio.samples.mean(axis=0)
    steps = []
    for join in joins:
        before = np.sqrt(np.mean(mono[join - width : join] ** 2))
        after = np.sqrt(np.mean(mono[join : join + width] ** 2))
        steps.append(abs(20 * np.log10(after / before)))
    return float(np.mean(steps))


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
            f"{level_step(result, joins):5.2f} |"
        )
    splices = join_artefacts(stitched, stitcher.splices)
    uncut = join_artefacts(results["uncut"], stitcher.splices)
    print(
        f"\nAt the {len(stitcher.splices)} splice points of stitch (between reconstruction "
        f"windows), 12 kHz: stitch mean {splices.mean_db:.1f} dB, max {splices.max_db:.1f} dB; "
        f"uncut at the same places mean {uncut.mean_db:.1f} dB, max {uncut.max_db:.1f} dB"
    )


def tiny_pipeline():
    """The tiny random-weight test model (riffusion.testing) on the CPU, float32."""
    from riffusion.diffusion.pipeline import RiffusionPipeline
    from riffusion.testing import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_tiny_checkpoint(Path(folder) / "tiny")
        return RiffusionPipeline.load_checkpoint(checkpoint, device="cpu", dtype="float32")


def at_places(audio: Audio, places: list[list[int]], cutoff_hz: float) -> list[np.ndarray]:
    """The per-join figure at each list of places, all measured against one set of reference
    windows (every place is left out of the reference)."""
    flat = [place for group in places for place in group]
    per_join = np.array(join_artefacts(audio, flat, cutoff_hz=cutoff_hz).per_join_db)
    return np.split(per_join, np.cumsum([len(group) for group in places[:-1]]))


def riff_case(pipeline, reference: Path, width: int, overlap: int = 20) -> None:
    params = pipeline.spectrogram_params
    track = Audio.load(reference).resample(params.sample_rate)
    plan = plan_riff(track.num_frames, params, width, overlap, PROMPT, num_inference_steps=STEPS)
    source = TrackSource(track, params, width, "mono")
    clips = []
    for clip in plan.clips:
        image = pipeline.riffuse(clip.inputs, source.init_image(clip))
        clips.append(source.clip_mel(clip, image)[..., : clip.length])
    starts = [clip.start for clip in plan.clips]
    results = {
        "no-join floor (uncut)": uncut_reconstruction(clips, starts)[0],
        "plain concatenation": plain_concatenation(clips, starts)[0],
        "stitch": stitch(clips, starts),
    }
    joins = plan.join_samples()
    print(
        f"\nriff, tiny model, {len(clips)} clips of {width} columns overlapping by {overlap} "
        f"({len(joins)} joins, at the middle of each overlap)"
    )
    print("| method | artefact 12 kHz mean (dB) | max (dB) | artefact 4 kHz mean (dB) |")
    print("|---|---|---|---|")
    for name, audio in results.items():
        print(f"| {name} | {figures(audio, joins)} |")


@dataclass
class LoopCase:
    """Figures of one render of loops, per method ("floor", "concatenation", "loop-wise",
    "stitch") and cut-off: per-join dB at the loop boundaries and at the middle of stitch's
    crossfades; and the level step at the boundaries (dB)."""

    seed_id: str
    render: str
    boundary: dict[tuple[str, float], np.ndarray]
    middle: dict[tuple[str, float], np.ndarray]
    level_step: dict[str, float]

    def mean(self, method: str, place: str, cutoff_hz: float = 12000.0) -> float:
        """Mean over joins at one place ("boundary" or "middle"), dB."""
        return float(getattr(self, place)[method, cutoff_hz].mean())

    def over(self, method: str, reference: str) -> np.ndarray:
        """Per join, how far method lies above reference at 12 kHz at the worse of the two
        places (dB): what it adds wherever a join could be heard."""
        return np.maximum(
            self.boundary[method, 12000.0] - self.boundary[reference, 12000.0],
            self.middle[method, 12000.0] - self.middle[reference, 12000.0],
        )

    def below_at_boundary(self, baseline: str, method: str = "stitch") -> float:
        """Mean over joins of baseline - method at the loop boundary, 12 kHz (dB)."""
        return self.mean(baseline, "boundary") - self.mean(method, "boundary")


def render_loops(pipeline, seed_id: str, render: str, num_loops: int):
    """(stitched audio as the Renderer makes it, the loops as generated (channels, mels, width))."""
    params = pipeline.spectrogram_params
    source = LoopSource(load_seed_image(seed_id), params)
    width = source.loop_columns
    if render == "interpolate":
        alphas = interpolation_alphas(num_loops)
        plan = plan_interpolation(PROMPT, END, alphas, width, params, STEPS, seed_id)
    else:
        settings = JamSettings(num_inference_steps=STEPS, seed_image_id=seed_id)
        duration_s = num_loops * width * params.step_size_ms / 1000
        plan = plan_jam(JAM_PROMPTS, duration_s, JAM_SEED, settings, width, params)
    renderer = Renderer(pipeline, plan, source)
    rendered = list(renderer.render())
    loops = [source.clip_mel(done.clip, done.image)[..., done.clip.pre_roll :] for done in rendered]
    return renderer.finish(), loops


def repeated_seed(seed_id: str, num_loops: int, params: SpectrogramParams):
    """(the seed's loop played num_loops times through stitch as the loop plans place it, the
    loops): real downbeats at every boundary, without the model."""
    source = LoopSource(load_seed_image(seed_id), params)
    plain = PromptInput("-", 0)
    inputs = [InferenceInput(plain, plain, 0.0)] * num_loops
    plan = loop_plan(inputs, source.loop_columns, LOOP_OVERLAP_COLUMNS, params)
    clips = [source.clip_mel(clip, source.seed_image) for clip in plan.clips]
    stitched = stitch(clips, [clip.start for clip in plan.clips], params)
    # The first clip has no pre-roll: it is the loop itself.
    return stitched, [clips[0]] * num_loops


def loop_case(seed_id: str, render: str, stitched: Audio, loops: list[np.ndarray]) -> LoopCase:
    """The figures of loops (channels, mels, width) played one after another, stitched being
    stitch's result (pre-rolls, crossfades ending on each loop's first column)."""
    width = loops[0].shape[-1]
    hop = SpectrogramParams().hop_length
    starts = [index * width for index in range(len(loops))]
    overlap = LOOP_OVERLAP_COLUMNS
    pre_rolled = [with_pre_roll(loop, overlap if index else 0) for index, loop in enumerate(loops)]
    pre_rolled_starts = [start - (overlap if start else 0) for start in starts]
    boundaries = [start * hop for start in starts[1:]]
    middles = [boundary - overlap // 2 * hop for boundary in boundaries]
    results = {
        "floor": uncut_reconstruction(loops, starts)[0],
        "concatenation": plain_concatenation(loops, starts)[0],
        "loop-wise": looped_concatenation(loops)[0],
        "stitch": stitched,
        OWN_FLOOR: uncut_reconstruction(pre_rolled, pre_rolled_starts, crossfade=True)[0],
    }
    boundary, middle = {}, {}
    for method, audio in results.items():
        for cutoff in CUTOFFS_HZ:
            at_boundary, at_middle = at_places(audio, [boundaries, middles], cutoff)
            boundary[method, cutoff], middle[method, cutoff] = at_boundary, at_middle
    steps = {method: level_step(audio, boundaries) for method, audio in results.items()}
    return LoopCase(seed_id, render, boundary, middle, steps)


def loop_table(title: str, cases: list[LoopCase]) -> None:
    print(
        f"\n{title}: 12 kHz figure, mean over joins, at the loop boundary / at the middle of "
        "stitch's crossfade (dB)"
    )
    print(
        "| seed | render | no-join floor | plain concatenation | loop-wise concatenation "
        "| stitch | concatenation − stitch, at boundary | loop-wise − stitch, at boundary "
        "| loop-wise − floor, at boundary | stitch − floor, worse place |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        places = " | ".join(
            f"{case.mean(method, 'boundary'):5.1f} / {case.mean(method, 'middle'):5.1f}"
            for method in LOOP_METHODS
        )
        differences = [
            case.below_at_boundary("concatenation"),
            case.below_at_boundary("loop-wise"),
            case.below_at_boundary("loop-wise", "floor"),
            case.over("stitch", "floor").mean(),
        ]
        print(f"| {case.seed_id} | {case.render} | {places} | {fmt(differences)} |")
    for render in dict.fromkeys(case.render for case in cases):
        loop_summary(render, [case for case in cases if case.render == render])


def loop_summary(render: str, cases: list[LoopCase]) -> None:
    print(f"\n{render}, {len(cases)} seeds, means over cases (dB):")
    print(
        "| method | 12 kHz boundary | 12 kHz middle | 4 kHz boundary | 4 kHz middle "
        "| level step at boundary |"
    )
    print("|---|---|---|---|---|---|")
    for method in (*LOOP_METHODS, OWN_FLOOR):
        row = [
            np.mean([case.mean(method, place, cutoff) for case in cases])
            for cutoff in CUTOFFS_HZ
            for place in ("boundary", "middle")
        ]
        row.append(np.mean([case.level_step[method] for case in cases]))
        print(f"| {method} | {fmt(row)} |")
    for baseline in ("concatenation", "loop-wise"):
        margins = [case.below_at_boundary(baseline) for case in cases]
        met = sum(margin >= TARGET_DB for margin in margins)
        print(
            f"{baseline} − stitch at the boundary: mean {np.mean(margins):.1f} dB, least "
            f"{min(margins):.1f} dB; {met} of {len(cases)} cases at least {TARGET_DB:g} dB"
        )
    headroom = [case.below_at_boundary("loop-wise", "floor") for case in cases]
    print(
        f"loop-wise − floor at the boundary (the most any joiner can gain on it): mean "
        f"{np.mean(headroom):.1f} dB, most {max(headroom):.1f} dB"
    )
    for reference in ("floor", OWN_FLOOR):
        over = np.concatenate([case.over("stitch", reference) for case in cases])
        print(
            f"stitch − {reference}, worse place per join: mean {over.mean():.1f} dB, "
            f"worst join {over.max():.1f} dB"
        )


def fmt(values) -> str:
    return " | ".join(f"{value:5.1f}" for value in values)


def seed_loops(seed_ids: list[str], num_loops: int) -> None:
    params = SpectrogramParams()
    cases = []
    for seed_id in seed_ids:
        started = time.monotonic()
        cases.append(loop_case(seed_id, "repeated", *repeated_seed(seed_id, num_loops, params)))
        print(f"  {seed_id} repeated: {time.monotonic() - started:.0f} s", file=sys.stderr)
    loop_table(f"Seed loops, each played {num_loops} times (the model left out)", cases)


def pipeline_outputs(reference: Path, seed_ids: list[str], num_loops: int) -> None:
    pipeline = tiny_pipeline()
    print(f"\nPipeline outputs (tiny random-weight model, {STEPS} steps)")
    for width in (128, 64):
        riff_case(pipeline, reference, width)
    cases = []
    for seed_id in seed_ids:
        for render in ("interpolate", "jam"):
            started = time.monotonic()
            stitched, loops = render_loops(pipeline, seed_id, render, num_loops)
            cases.append(loop_case(seed_id, render, stitched, loops))
            print(f"  {seed_id} {render}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    loop_table(f"Loops, tiny model, {num_loops} per render", cases)


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


def looped_track(audio: Audio, seconds: float, fade_s: float = 0.05) -> Audio:
    """audio repeated to seconds, each repeat crossfaded into the last over fade_s."""
    fade = round(fade_s * audio.sample_rate)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    samples = audio.samples
    while samples.shape[-1] < seconds * audio.sample_rate:
        mixed = samples[:, -fade:] * (1 - ramp) + audio.samples[:, :fade] * ramp
        samples = np.concatenate([samples[:, :-fade], mixed, audio.samples[:, fade:]], axis=-1)
    return Audio(samples[:, : round(seconds * audio.sample_rate)], audio.sample_rate)


def seed_track(seconds: float, seed_ids: list[str]) -> Audio:
    """Rendered seed loops (44.1 kHz, mono), an equal share of seconds each, one after another."""
    share = round(seconds / len(seed_ids) * 44100)
    parts = []
    for seed_id in seed_ids:
        loop = render_loop(seed_request(seed_id)).resample(44100).to_mono().samples
        parts.append(np.tile(loop, (1, -(-share // loop.shape[-1])))[:, :share])
    return Audio(np.concatenate(parts, axis=-1).astype(np.float32), 44100)


def after_overlaps(audio: Audio, ends: list[int]) -> np.ndarray:
    """The 12 kHz figure of the 10 ms starting at each of ends (samples), dB per place."""
    return np.array(join_artefacts(audio, ends, window_s=0.01, after=True).per_join_db)


def takeover(reference: Path, overlap: int, qualities: list[str]) -> None:
    """The 10 ms after each overlap of a 24 s track riffed with beat-aligned clips of 512 columns
    (the model left out: each clip is its init image): the 12 kHz figure there, for the track
    itself, its spectrogram reconstructed uncut (the same crossfaded spectrogram, no joins),
    plain concatenation and stitch."""
    params = SpectrogramParams()
    tracks = {
        "clip.wav looped": looped_track(Audio.load(reference).resample(params.sample_rate), 24.0),
        "seed loops": seed_track(24.0, ["og_beat", "bossa", "swing", "breakbeat"]),
    }
    print(
        f"\nThe 10 ms after each overlap: 24 s tracks riffed with beat-aligned 512-column clips "
        f"overlapping by {overlap} columns (the model left out); 12 kHz figure, dB"
    )
    print("| track | quality | method | mean | max | stitch − uncut, per join |")
    print("|---|---|---|---|---|---|")
    for name, track in tracks.items():
        track = track.to_mono()
        plan = plan_riff(
            track.num_frames, params, 512, overlap, PromptInput("-", 0), beats=beat_grid(track)
        )
        source = TrackSource(track, params, 512, "mono")
        clips = [
            source.clip_mel(clip, source.init_image(clip))[..., : clip.length]
            for clip in plan.clips
        ]
        starts = [clip.start for clip in plan.clips]
        ends = [(clip.start + clip.length) * params.hop_length for clip in plan.clips[:-1]]

        own = after_overlaps(Audio(track.samples[:, : plan.num_samples], track.sample_rate), ends)
        print(f"| {name} | | track itself | {own.mean():5.1f} | {own.max():5.1f} | |")
        for quality in qualities:
            uncut = after_overlaps(
                uncut_reconstruction(clips, starts, quality=quality, crossfade=True)[0], ends
            )
            rows = {
                "uncut": uncut,
                "plain concatenation": after_overlaps(
                    plain_concatenation(clips, starts, quality=quality)[0], ends
                ),
                "stitch": after_overlaps(stitch(clips, starts, quality=quality), ends),
            }
            for method, figure in rows.items():
                difference = fmt(figure - uncut) if method == "stitch" else ""
                print(
                    f"| {name} | {quality} | {method} | {figure.mean():5.1f} | "
                    f"{figure.max():5.1f} | {difference} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--width", type=int, default=64, help="clip width, columns")
    parser.add_argument("--overlap", type=int, default=20, help="clip overlap, columns")
    parser.add_argument("--skip-real", action="store_true", help="leave out the real music")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out the model")
    parser.add_argument(
        "--seeds", default=None, help="comma-separated seed ids for the loops (default: all)"
    )
    parser.add_argument("--loops", type=int, default=6, help="loops per interpolation and jam")
    parser.add_argument(
        "--takeover-only", action="store_true", help="only the 10 ms after riff's overlaps"
    )
    parser.add_argument(
        "--takeover-qualities", default="fast", help="comma-separated qualities for the takeover"
    )
    args = parser.parse_args()
    if args.loops < 2:
        parser.error("--loops must be at least 2 (a join needs two loops)")
    seed_ids = args.seeds.split(",") if args.seeds else [seed.id for seed in list_seeds()]
    if not args.skip_real:
        takeover(args.reference, args.overlap, args.takeover_qualities.split(","))
    if args.takeover_only:
        return
    if not args.skip_real:
        real_music(args.reference, args.width, 0)
        real_music(args.reference, args.width, args.overlap)
        stereo(args.reference)
    seed_loops(seed_ids, args.loops)
    if not args.skip_pipeline:
        pipeline_outputs(args.reference, seed_ids, args.loops)


if __name__ == "__main__":
    main()
