"""The jam engine's state machine: sweeps, seeds, transitions, queued prompts, settings."""

from __future__ import annotations

import itertools

import pytest

from riffusion.errors import RiffusionError
from riffusion.jam import (
    MAX_QUEUED_PROMPTS,
    SEED_MODULUS,
    JamClip,
    JamEngine,
    JamSettings,
    JamState,
)

SAME, TRANSITION = JamState.SAME_PROMPT, JamState.TRANSITION


def summary(clip: JamClip) -> tuple:
    """(state, start prompt, start seed, end prompt, end seed, alpha) of a clip."""
    start, end = clip.input.start, clip.input.end
    return (clip.state, start.prompt, start.seed, end.prompt, end.seed, clip.input.alpha)


def take(engine: JamEngine, count: int) -> list[JamClip]:
    return list(itertools.islice(engine, count))


def test_same_prompt_sweeps_between_consecutive_seeds() -> None:
    clips = take(JamEngine("jazz", seed=10), 9)
    assert [clip.index for clip in clips] == list(range(9))
    assert [summary(clip) for clip in clips] == [
        (SAME, "jazz", 10, "jazz", 11, 0.25),
        (SAME, "jazz", 10, "jazz", 11, 0.5),
        (SAME, "jazz", 10, "jazz", 11, 0.75),
        (SAME, "jazz", 10, "jazz", 11, 1.0),
        # Rollover: the next sweep starts where the last arrived (seed 11).
        (SAME, "jazz", 11, "jazz", 12, 0.25),
        (SAME, "jazz", 11, "jazz", 12, 0.5),
        (SAME, "jazz", 11, "jazz", 12, 0.75),
        (SAME, "jazz", 11, "jazz", 12, 1.0),
        (SAME, "jazz", 12, "jazz", 13, 0.25),
    ]
    assert all(clip.prompt == "jazz" for clip in clips)


def test_new_prompt_waits_for_rollover_then_transitions_with_one_seed() -> None:
    engine = JamEngine("jazz", seed=10)
    take(engine, 1)
    assert engine.queue_prompt("techno")
    assert engine.queued_prompts == ("techno",)
    clips = take(engine, 8)
    assert [summary(clip) for clip in clips] == [
        # The current sweep finishes first.
        (SAME, "jazz", 10, "jazz", 11, 0.5),
        (SAME, "jazz", 10, "jazz", 11, 0.75),
        (SAME, "jazz", 10, "jazz", 11, 1.0),
        # Transition from where the sweep arrived (jazz, seed 11), one seed at both ends.
        (TRANSITION, "jazz", 11, "techno", 11, 0.25),
        (TRANSITION, "jazz", 11, "techno", 11, 0.5),
        (TRANSITION, "jazz", 11, "techno", 11, 0.75),
        (TRANSITION, "jazz", 11, "techno", 11, 1.0),
        # Then the new prompt wanders from the same seed.
        (SAME, "techno", 11, "techno", 12, 0.25),
    ]
    assert clips[3].prompt == "techno"
    assert engine.queued_prompts == ()
    assert engine.state is SAME and engine.prompt == "techno" and engine.target is None


def test_prompts_typed_mid_transition_queue_and_play_in_order() -> None:
    engine = JamEngine("a", seed=0, settings=JamSettings(alpha_velocity=0.5))
    engine.queue_prompt("b")
    take(engine, 2)  # the first sweep: alpha 0.5, 1.0
    first = engine.next_clip()
    assert summary(first) == (TRANSITION, "a", 1, "b", 1, 0.5)
    # Typed during the transition to b: they wait.
    engine.queue_prompt("c")
    engine.queue_prompt("d")
    assert engine.queued_prompts == ("c", "d")
    assert summary(engine.next_clip()) == (TRANSITION, "a", 1, "b", 1, 1.0)
    # One transition each, back to back, the seed carried along unchanged.
    assert [summary(clip) for clip in take(engine, 5)] == [
        (TRANSITION, "b", 1, "c", 1, 0.5),
        (TRANSITION, "b", 1, "c", 1, 1.0),
        (TRANSITION, "c", 1, "d", 1, 0.5),
        (TRANSITION, "c", 1, "d", 1, 1.0),
        (SAME, "d", 1, "d", 2, 0.5),
    ]


def test_consecutive_clips_join_at_sweep_boundaries() -> None:
    """alpha = 1 of each clip run equals alpha = 0 of the next: same prompt and seed."""
    engine = JamEngine("a", seed=5)
    events = {3: "b", 6: "c", 7: "d", 20: "e"}
    clips = []
    for step in range(40):
        if step in events:
            engine.queue_prompt(events[step])
        clips.append(engine.next_clip())
    for before, after in itertools.pairwise(clips):
        if before.input.alpha == 1.0:
            assert (after.input.start.prompt, after.input.start.seed) == (
                before.input.end.prompt,
                before.input.end.seed,
            )
        else:
            assert after.input.start == before.input.start
    ends = [clip.input.end.prompt for clip in clips if clip.state is TRANSITION]
    assert list(dict.fromkeys(ends)) == ["b", "c", "d", "e"]


def test_same_events_give_same_clips() -> None:
    def run() -> list[JamClip]:
        engine = JamEngine("x", seed=42, settings=JamSettings(alpha_velocity=0.3))
        clips = take(engine, 3)
        engine.queue_prompt("y")
        engine.update_settings(denoising=0.5)
        clips += take(engine, 4)
        engine.queue_prompt("z")
        return clips + take(engine, 10)

    assert run() == run()


def test_velocity_that_does_not_divide_one_carries_over() -> None:
    engine = JamEngine("a", seed=0, settings=JamSettings(alpha_velocity=0.3))
    alphas = [clip.input.alpha for clip in take(engine, 5)]
    assert alphas == pytest.approx([0.3, 0.6, 0.9, 0.2, 0.5])
    # Ten steps of 0.1 make exactly 1: the end of the sweep, not a clip short of it.
    engine = JamEngine("a", seed=0, settings=JamSettings(alpha_velocity=0.1))
    clips = take(engine, 11)
    assert clips[9].input.alpha == 1.0 and clips[9].input.start.seed == 0
    assert clips[10].input.start.seed == 1


def test_velocity_one_plays_one_clip_per_sweep() -> None:
    engine = JamEngine("a", seed=0, settings=JamSettings(alpha_velocity=1.0))
    engine.queue_prompt("b")
    assert [summary(clip) for clip in take(engine, 3)] == [
        (SAME, "a", 0, "a", 1, 1.0),
        (TRANSITION, "a", 1, "b", 1, 1.0),
        (SAME, "b", 1, "b", 2, 1.0),
    ]


def test_settings_apply_from_next_clip() -> None:
    engine = JamEngine("a", seed=0)
    first = engine.next_clip()
    assert (first.input.start.denoising, first.input.start.guidance) == (0.75, 7.0)
    assert first.input.seed_image_id == "og_beat" and first.input.mask_image_id is None
    settings = engine.update_settings(
        denoising=0.4,
        guidance=3.0,
        num_inference_steps=12,
        seed_image_id="vibes",
        mask_image_id="keep-bottom",
    )
    assert settings.denoising == 0.4
    clip = engine.next_clip()
    assert clip.input.start.denoising == clip.input.end.denoising == 0.4
    assert clip.input.start.guidance == clip.input.end.guidance == 3.0
    assert clip.input.num_inference_steps == 12
    assert (clip.input.seed_image_id, clip.input.mask_image_id) == ("vibes", "keep-bottom")
    # A new velocity moves alpha from where it is.
    assert clip.input.alpha == 0.5
    engine.update_settings(alpha_velocity=0.125)
    assert [c.input.alpha for c in take(engine, 3)] == [0.75, 0.875, 1.0]


def test_set_seed_moves_the_sweep_and_seeds_wrap() -> None:
    engine = JamEngine("a", seed=SEED_MODULUS - 1, settings=JamSettings(alpha_velocity=1.0))
    assert summary(engine.next_clip())[2:5] == (SEED_MODULUS - 1, "a", 0)
    assert engine.seed == 0
    engine.set_seed(777)
    assert summary(engine.next_clip())[2:5] == (777, "a", 778)


def test_queue_prompt_ignores_repeats_and_strips() -> None:
    engine = JamEngine("  a  ")
    assert engine.prompt == "a"
    assert not engine.queue_prompt("a")
    assert engine.queue_prompt(" b ")
    assert not engine.queue_prompt("b")
    assert engine.queue_prompt("a")  # back to a after b is a real change
    assert engine.queued_prompts == ("b", "a")


def test_queue_is_bounded() -> None:
    engine = JamEngine("p")
    for number in range(MAX_QUEUED_PROMPTS):
        engine.queue_prompt(f"q{number}")
    with pytest.raises(RiffusionError, match="already waiting"):
        engine.queue_prompt("one too many")
    assert len(engine.queued_prompts) == MAX_QUEUED_PROMPTS


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"denoising": 1.5}, "denoising must be between 0 and 1"),
        ({"denoising": float("nan")}, "denoising"),
        ({"guidance": -1}, "guidance must be at least 0"),
        ({"num_inference_steps": 0}, "num_inference_steps must be between"),
        ({"num_inference_steps": 2.5}, "must be an integer"),
        ({"alpha_velocity": 0}, "alpha_velocity must be greater than 0"),
        ({"alpha_velocity": 1.5}, "alpha_velocity must be between 0 and 1"),
        ({"seed_image_id": ""}, "seed_image_id"),
        ({"mask_image_id": 3}, "mask_image_id"),
        ({"tempo": 120}, "unknown jam settings: tempo"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(changes: dict, message: str) -> None:
    engine = JamEngine("a")
    with pytest.raises(RiffusionError, match=message):
        engine.update_settings(**changes)
    assert engine.settings == JamSettings()


@pytest.mark.parametrize("seed", [-1, SEED_MODULUS, 1.5, True])
def test_bad_seeds_are_refused(seed: object) -> None:
    with pytest.raises(RiffusionError, match="seed must be"):
        JamEngine("a", seed=seed)  # type: ignore[arg-type]
    with pytest.raises(RiffusionError, match="seed must be"):
        JamEngine("a").set_seed(seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_empty_prompts_are_refused(prompt: object) -> None:
    with pytest.raises(RiffusionError, match="prompt"):
        JamEngine(prompt)  # type: ignore[arg-type]
    with pytest.raises(RiffusionError, match="prompt"):
        JamEngine("a").queue_prompt(prompt)  # type: ignore[arg-type]
