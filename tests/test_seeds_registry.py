"""The registry: built-in and folder ids, ids that try to escape the folder, masks, the cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from riffusion.errors import RiffusionError
from riffusion.seeds import cache
from riffusion.seeds.builtin import render_seed_image, seed_request
from riffusion.seeds.masks import MASKS, beat_lines, gradient, keep_band, keep_beats
from riffusion.seeds.registry import (
    DEFAULT_SEED_ID,
    check_id,
    list_masks,
    list_seeds,
    load_mask_image,
    load_seed_image,
    seed_argument,
)

# The original riffusion's seed_images folder, by name (its images are 512 x 512).
ORIGINAL_SEEDS = ("og_beat", "agile", "marim", "motorway", "vibes")
ORIGINAL_MASKS = (
    "mask_beat_lines_80",
    "mask_gradient_dark",
    "mask_gradient_top_70",
    "mask_gradient_top_fifth_75",
    "mask_top_third_75",
    "mask_top_third_95",
)


@pytest.fixture(autouse=True, scope="module")
def seed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private image cache, so tests neither read nor fill the user's."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIFFUSION_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture
def original_folder(tmp_path: Path) -> Path:
    """A stand-in for the original's seed_images folder: same names, gray images."""
    folder = tmp_path / "seed_images"
    folder.mkdir()
    for index, name in enumerate(ORIGINAL_SEEDS + ORIGINAL_MASKS):
        Image.new("RGB", (512, 512), (index * 10,) * 3).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_default_seed_resolves_to_a_built_in() -> None:
    image = load_seed_image(DEFAULT_SEED_ID)
    assert DEFAULT_SEED_ID == "og_beat" and image.size == (512, 512)
    assert "og_beat" in image.getexif()[270]


def test_the_original_folder_works_by_its_ids(original_folder: Path) -> None:
    for index, name in enumerate(ORIGINAL_SEEDS):
        image = load_seed_image(name, seed_images_dir=original_folder)
        assert image.size == (512, 512) and image.getpixel((0, 0)) == (index * 10,) * 3
    mask = load_mask_image("mask_top_third_75", seed_images_dir=original_folder)
    assert mask.mode == "L" and mask.size == (512, 512)
    # Without the folder, the ids are the built-ins again.
    assert load_seed_image("og_beat").getpixel((0, 0)) != (0, 0, 0)
    assert "vibes" in load_seed_image("vibes").getexif()[270]
    assert np.asarray(load_mask_image("mask_top_third_75"))[-1, 0] == 0


def test_listing_with_a_folder(original_folder: Path) -> None:
    assert list_seeds()[0].id == "og_beat" and list_seeds()[0].source == "built-in"
    seeds = list_seeds(original_folder)
    built_in = [info for info in seeds if info.source == "built-in"]
    assert len(built_in) >= 8
    for info in built_in:
        assert info.description and info.bpm and info.meter and info.bars and info.key
        assert info.width % 64 == 0
    user = {info.id: info for info in seeds if info.source != "built-in"}
    assert set(user) == set(ORIGINAL_SEEDS)
    # The folder's og_beat.png takes the id, so the built-in og_beat is not listed beside it.
    assert [info.id for info in seeds].count("og_beat") == 1 and built_in[0].id != "og_beat"
    assert user["vibes"].width == 512 and user["vibes"].bpm is None
    masks = list_masks(original_folder)
    assert {info.id for info in masks if info.source != "built-in"} == set(ORIGINAL_MASKS)
    # The folder's masks take their ids from the built-ins of the same names.
    assert {info.id for info in masks if info.source == "built-in"} == set(MASKS) - set(
        ORIGINAL_MASKS
    )


@pytest.mark.parametrize(
    "seed_id",
    ["../x", "../seed_images/og_beat", "/etc/passwd", "a/b", "a\\b", ".hidden", "", "og beat", "~"],
)
def test_ids_that_are_paths_are_refused(original_folder: Path, seed_id: str) -> None:
    with pytest.raises(RiffusionError, match="not a seed id"):
        load_seed_image(seed_id, seed_images_dir=original_folder)
    with pytest.raises(RiffusionError, match="not a seed id"):
        load_mask_image(seed_id, seed_images_dir=original_folder)


def test_ids_with_an_extension_get_a_hint() -> None:
    with pytest.raises(RiffusionError, match="try 'og_beat'"):
        check_id("og_beat.png")


def test_symlinks_out_of_the_folder_are_refused(original_folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    Image.new("RGB", (512, 512)).save(outside)
    (original_folder / "escape.png").symlink_to(outside)
    (original_folder / "alias.png").symlink_to(original_folder / "vibes.png")
    with pytest.raises(RiffusionError, match="leads outside"):
        load_seed_image("escape", seed_images_dir=original_folder)
    with pytest.raises(RiffusionError, match="leads outside"):
        load_mask_image("escape", seed_images_dir=original_folder)
    # A link that stays inside is fine, and the escaping one is not listed.
    assert load_seed_image("alias", seed_images_dir=original_folder).size == (512, 512)
    assert "escape" not in {info.id for info in list_seeds(original_folder)}


def test_a_symlinked_folder_is_fine(original_folder: Path, tmp_path: Path) -> None:
    link = tmp_path / "linked"
    link.symlink_to(original_folder, target_is_directory=True)
    assert load_seed_image("agile", seed_images_dir=link).size == (512, 512)


def test_paths_are_paths(original_folder: Path) -> None:
    assert load_seed_image(original_folder / "agile.png").size == (512, 512)
    assert load_mask_image(original_folder / "mask_gradient_dark.png").mode == "L"
    with pytest.raises(RiffusionError, match="no such file"):
        load_seed_image(original_folder / "missing.png")


def test_command_line_arguments_become_ids_or_paths(original_folder: Path) -> None:
    assert seed_argument("og_beat") == "og_beat"
    assert seed_argument("mask_top_third_75") == "mask_top_third_75"
    for text in ("x.png", "loops/x.PNG", "../x", "/abs/seed.jpg", "a\\b"):
        assert seed_argument(text) == Path(text)
    path = seed_argument(str(original_folder / "agile.png"))
    assert load_seed_image(path).size == (512, 512)


def test_bad_folders_and_images(tmp_path: Path) -> None:
    with pytest.raises(RiffusionError, match="no such seed images folder"):
        load_seed_image("og_beat", seed_images_dir=tmp_path / "nope")
    Image.new("RGB", (500, 512)).save(tmp_path / "narrow.png")
    Image.new("RGB", (512, 256)).save(tmp_path / "short.png")
    with pytest.raises(RiffusionError, match="multiple of 64"):
        load_seed_image("narrow", seed_images_dir=tmp_path)
    with pytest.raises(RiffusionError, match="512 px tall"):
        load_mask_image("short", seed_images_dir=tmp_path)
    with pytest.raises(RiffusionError, match="no mask 'nope'"):
        load_mask_image("nope")


def test_built_in_masks_follow_the_seed_they_go_with() -> None:
    seed = render_seed_image(seed_request("og_beat", 120.0, bars=3))  # 12 beats in 576 px
    mask = load_mask_image("keep-first-beats", like=seed)
    assert mask.mode == "L" and mask.size == seed.size
    pixels = np.asarray(mask)
    assert (pixels[:, :192] == 0).all() and (pixels[:, 192:] == 255).all()  # 4 beats of 48 px
    lines = np.asarray(load_mask_image("beat-lines", like=seed))
    assert (lines[:, ::48][:, :12] == 0).all() and lines[0, 24] == round(0.8 * 255)
    default = np.asarray(load_mask_image("keep-last-beats"))
    assert default.shape == (512, 512) and (default[:, -256:] == 0).all()  # 4 beats of 64 px


def test_every_id_of_the_original_app_is_built_in() -> None:
    seeds = {info.id: info for info in list_seeds()}
    masks = {info.id: info for info in list_masks()}
    for seed_id in ORIGINAL_SEEDS:
        assert seeds[seed_id].source == "built-in" and seeds[seed_id].width == 512
        image = load_seed_image(seed_id)
        assert image.size == (512, 512) and f"seed {seed_id}:" in image.getexif()[270]
    for mask_id in ORIGINAL_MASKS:
        assert masks[mask_id].source == "built-in" and masks[mask_id].description
        mask = load_mask_image(mask_id, like=load_seed_image("agile"))
        assert mask.mode == "L" and mask.size == (512, 512)


def _rows(mask: np.ndarray) -> np.ndarray:
    """The mask's gray per row, checking that every row is one gray across the width."""
    assert (mask == mask[:, :1]).all()
    return mask[:, 0].astype(int)


def test_the_original_app_masks_have_the_shapes_their_names_say() -> None:
    def drawn(mask_id: str) -> np.ndarray:
        return np.asarray(load_mask_image(mask_id))

    # A flat gray block over the top third (171 of 512 rows), black (kept) below.
    for mask_id, gray in (("mask_top_third_75", 191), ("mask_top_third_95", 242)):
        rows = _rows(drawn(mask_id))
        assert (rows[:171] == gray).all() and (rows[171:] == 0).all()
    # Gray fading from the top row to black at 70 % and at a fifth of the height.
    for mask_id, top, end in (
        ("mask_gradient_top_70", 255, 358),
        ("mask_gradient_top_fifth_75", 191, 102),
    ):
        rows = _rows(drawn(mask_id))
        assert rows[0] == top and (np.diff(rows[:end]) <= 0).all() and 0 < rows[end - 1] <= 3
        assert rows[end // 2] == pytest.approx(top / 2, abs=2) and (rows[end:] == 0).all()
    # Dark at the top (the highs kept) to white at the bottom (the lows repainted).
    rows = _rows(drawn("mask_gradient_dark"))
    assert rows[0] == 0 and rows[-1] == 255 and (np.diff(rows) >= 0).all()
    # Gray lines at the beats (64 px apart on the default grid) over the top half, 80 %.
    lines = drawn("mask_beat_lines_80")
    assert (lines[256:] == 0).all()
    columns = lines[0].astype(int)
    assert set(np.flatnonzero(columns)) == {
        beat * 64 + step for beat in range(8) for step in range(8)
    }
    assert set(columns) == {0, 204} and (lines[:256] == lines[:1]).all()


def test_original_app_masks_follow_the_seed_and_take_parameters() -> None:
    seed = render_seed_image(seed_request("og_beat", 120.0, bars=3))  # 12 beats in 576 px
    lines = np.asarray(load_mask_image("mask_beat_lines_80", like=seed))
    assert lines.shape == (512, 576) and (lines[0, ::48] == 204).all() and lines[0, 24] == 0
    band = np.asarray(MASKS["mask_top_third_75"].image(128, 32.0, fraction=0.5, strength=1.0))
    assert (band[:256] == 255).all() and (band[256:] == 0).all()
    with pytest.raises(RiffusionError, match="takes no beats"):
        MASKS["mask_top_third_95"].image(512, 64.0, beats=2)


@pytest.mark.parametrize("mask_id", ["beat-lines", "mask_beat_lines_80"])
@pytest.mark.parametrize("beat_px", [64.0, 48.0, 512 / 9])
def test_beat_lines_reach_the_latent_grid(mask_id: str, beat_px: float) -> None:
    # The pipeline samples a mask onto the latent grid (1/8, nearest neighbour): every beat's line
    # must survive it, whatever column the beat falls on.
    mask = MASKS[mask_id].image(512, beat_px)
    latent = np.asarray(mask.resize((64, 64), resample=Image.Resampling.NEAREST))[0].astype(int)
    between = np.asarray(mask)[0, round(beat_px / 2)]
    lines = np.flatnonzero(latent != between)
    assert len(lines) == len(np.arange(0, 512, beat_px))
    assert (np.abs(lines * 8 + 4 - np.arange(0, 512, beat_px)) < 8).all()


def test_a_mask_file_must_match_its_seed(original_folder: Path) -> None:
    seed = render_seed_image(seed_request("og_beat", 120.0, bars=3))
    with pytest.raises(RiffusionError, match="must match"):
        load_mask_image("mask_top_third_75", seed_images_dir=original_folder, like=seed)


def test_mask_drawings() -> None:
    bottom = np.asarray(keep_band(64, 0.25))
    assert (bottom[-128:] == 0).all() and (bottom[:-128] == 255).all()
    top = np.asarray(keep_band(64, 0.5, "top", strength=0.5))
    assert (top[:256] == 0).all() and (top[256:] == 128).all()
    ramp = np.asarray(gradient(128, "right"))
    assert ramp[0, 0] == 0 and ramp[0, -1] == 255 and (np.diff(ramp[0].astype(int)) >= 0).all()
    up = np.asarray(gradient(64, "up"))
    assert up[0, 0] == 255 and up[-1, 0] == 0
    lines = np.asarray(beat_lines(256, 50.0))
    kept = [column for column in range(256) if lines[0, column] == 0]
    assert kept[:10] == [0, 1, 2, 3, 4, 5, 6, 7, 50, 51]
    assert (np.asarray(keep_beats(256, 32.0, 2, "last"))[:, -64:] == 0).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: keep_band(64, 1.5), "fraction"),
        (lambda: keep_band(64, 0.5, "middle"), "band"),
        (lambda: gradient(64, "sideways"), "direction"),
        (lambda: gradient(64, strength=2), "strength"),
        (lambda: beat_lines(64, 0), "spacing"),
        (lambda: keep_beats(256, 64.0, 4), "leave something"),
        (lambda: keep_beats(256, 64.0, 0), "at least one"),
        (lambda: keep_beats(256, 64.0, 1, "middle"), "end"),
        (lambda: MASKS["keep-top"].image(512, 64.0, beats=3), "takes no beats"),
    ],
)
def test_mask_refusals(call, message: str) -> None:
    with pytest.raises(RiffusionError, match=message):
        call()


def test_seed_images_are_cached_on_disk(seed_cache: Path) -> None:
    request = seed_request("sparse_percussion", 111.0, bars=1, key="E minor", seed=3)
    first = render_seed_image(request)
    cached = list((seed_cache / "seeds").glob(f"{request.cache_name}-*.png"))
    assert len(cached) == 1 and cache.code_digest() in cached[0].name
    # The second call reads the file: same pixels and tags, even after the file's mtime moves.
    os.utime(cached[0], (0, 0))
    second = render_seed_image(request)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert second.getexif()[11100] == 111.0
    # A damaged entry is made again.
    cached[0].write_bytes(b"not a png")
    assert np.array_equal(np.asarray(render_seed_image(request)), np.asarray(first))


def test_an_unwritable_cache_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("RIFFUSION_CACHE_DIR", str(blocker))  # seeds/ cannot be made under a file
    assert render_seed_image(seed_request("og_beat", bars=1)).height == 512


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RIFFUSION_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x")
    assert cache.cache_dir() == Path("/x/riffusion/seeds")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "riffusion" / "seeds"
