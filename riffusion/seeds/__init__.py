"""Seed images, masks and tempo: a built-in seed library at any BPM, loopable to the sample.

    from riffusion.seeds import load_seed_image, load_mask_image, list_seeds, list_masks

    seed = load_seed_image("og_beat")                         # a built-in, rendered and cached
    seed = load_seed_image("vibes", seed_images_dir="seed_images")  # the original's folder
    mask = load_mask_image("keep-first-beats", like=seed)     # drawn on the seed's beat grid
    audio = loop_audio_from_image(generated_image)            # played at its tagged tempo

See docs/seeds.md for the patterns, the tempo and width method and its measurements.
"""

from riffusion.seeds.builtin import render_loop, render_seed_image, seed_request
from riffusion.seeds.images import (
    fit_loop,
    image_tempo,
    image_timing,
    loop_audio_from_image,
    play_spectrogram_image,
    seed_image_from_loop,
)
from riffusion.seeds.registry import (
    DEFAULT_SEED_ID,
    MaskInfo,
    SeedInfo,
    list_masks,
    list_seeds,
    load_mask_image,
    load_seed_image,
    seed_argument,
)
from riffusion.seeds.tempo import estimate_tempo
from riffusion.seeds.timing import LoopTiming, choose_timing

__all__ = [
    "DEFAULT_SEED_ID",
    "LoopTiming",
    "MaskInfo",
    "SeedInfo",
    "choose_timing",
    "estimate_tempo",
    "fit_loop",
    "image_tempo",
    "image_timing",
    "list_masks",
    "list_seeds",
    "load_mask_image",
    "load_seed_image",
    "loop_audio_from_image",
    "play_spectrogram_image",
    "render_loop",
    "render_seed_image",
    "seed_argument",
    "seed_image_from_loop",
    "seed_request",
]
