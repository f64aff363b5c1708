"""`riffusion dataset`: tracks with tags, sidecars, a captions file and broken files become
captioned spectrogram clips in the imagefolder layout, resumably."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from cli_support import run
from click.testing import Result
from mutagen.easyid3 import EasyID3
from mutagen.flac import FLAC
from mutagen.id3 import TBPM, TCON, TIT2, TPE1
from mutagen.mp3 import MP3
from mutagen.wave import WAVE
from PIL import Image

from riffusion.spectrogram.params import SpectrogramParams
from riffusion.training.captions import Caption, CaptionSource, caption_from_file_name
from riffusion.training.dataset_builder import STATE_DIR, clip_file_name, level_dbfs
from riffusion.training.tags import read_tags

RATE = 22050
TEMPLATE = "{genre}, {artist}, {title}"


def tone(seconds: float, hz: float, silent_after: float | None = None) -> np.ndarray:
    times = np.arange(int(seconds * RATE)) / RATE
    samples = 0.3 * np.sin(2 * np.pi * hz * times)
    if silent_after is not None:
        samples[times >= silent_after] = 0.0
    return samples.astype(np.float32)


def make_tracks(folder: Path) -> Path:
    """Six files: tagged FLAC (2 clips), tagged MP3 named in the captions file (1 clip), WAV
    with a sidecar and a silent second clip, WAV captioned by its name, a broken WAV and one
    shorter than a clip."""
    (folder / "album").mkdir(parents=True)
    soundfile.write(folder / "album" / "one.flac", tone(11, 220), RATE)
    flac = FLAC(folder / "album" / "one.flac")
    flac.update({"title": "One", "artist": "Me", "genre": "Ambient", "bpm": "96"})
    flac.save()
    soundfile.write(folder / "two.mp3", np.stack([tone(6, 330), tone(6, 440)], axis=1), RATE)
    mp3 = MP3(folder / "two.mp3", ID3=EasyID3)
    mp3.add_tags()
    mp3.tags.update({"title": "Two", "artist": "You", "genre": "Techno", "bpm": "128"})
    mp3.save()
    soundfile.write(folder / "side_car.wav", tone(11, 550, silent_after=5.12), RATE)
    (folder / "side_car.txt").write_text("  warm pad\nwith strings  \n")
    soundfile.write(folder / "no_tags-here.wav", tone(6, 660), RATE)
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    soundfile.write(folder / "short.wav", tone(2, 770), RATE)
    (folder / "captions.csv").write_text("file_name,text\ntwo.mp3,driving techno beat\n")
    return folder


@pytest.fixture(scope="module")
def tracks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tracks(tmp_path_factory.mktemp("tracks") / "audio")


def make_dataset(tracks: Path, output: Path, *extra: object) -> Result:
    return run(
        "dataset",
        tracks,
        "-o",
        output,
        "--captions",
        tracks / "captions.csv",
        "--caption-template",
        TEMPLATE,
        *extra,
    )


def rows_of(dataset: Path) -> list[dict]:
    lines = (dataset / "metadata.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_clips_captions_and_report(tracks: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    result = make_dataset(tracks, dataset)
    assert result.exit_code == 0, result.output
    rows = rows_of(dataset)
    captions = {(row["source"], row["start_seconds"]): row["text"] for row in rows}
    assert captions == {
        ("album/one.flac", 0.0): "Ambient, Me, One",
        ("album/one.flac", 5.12): "Ambient, Me, One",
        ("no_tags-here.wav", 0.0): "no tags here",
        ("side_car.wav", 0.0): "warm pad with strings",
        ("two.mp3", 0.0): "driving techno beat",
    }
    bpm = {row["source"]: row["bpm"] for row in rows}
    assert bpm == {
        "album/one.flac": 96.0,
        "no_tags-here.wav": None,
        "side_car.wav": None,
        "two.mp3": 128.0,
    }
    for row in rows:
        image = Image.open(dataset / row["file_name"])
        assert image.size == (512, 512)
        params = SpectrogramParams.from_exif(image.getexif())
        assert params == SpectrogramParams()
    # Every track's caption source is reported, and every skipped file with its reason.
    report = result.stderr
    assert "album/one.flac: 2 clips; caption from tags: 'Ambient, Me, One'" in report
    assert "two.mp3: 1 clip; caption from captions file: 'driving techno beat'" in report
    assert "side_car.wav: 1 clip, 1 silent left out; caption from sidecar file" in report
    assert "no_tags-here.wav: 1 clip; caption from file name: 'no tags here'" in report
    assert "broken.wav: skipped: not a readable audio file" in report
    assert "short.wav: skipped: shorter than one clip (2.00 s < 5.12 s)" in report
    assert result.stdout.splitlines() == [
        f"Dataset {dataset}: 4 tracks, 5 clips (0.01 h of audio).",
        "Captions: 1 from sidecar file, 1 from captions file, 1 from tags, 1 from file name.",
        "Skipped: 1 silent clip; 1 file not a readable audio file; 1 file shorter than one clip.",
    ]


def test_datasets_reads_it_as_an_imagefolder(
    tracks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    dataset = tmp_path / "dataset"
    assert make_dataset(tracks, dataset).exit_code == 0
    loaded = datasets.load_dataset("imagefolder", data_dir=str(dataset), split="train")
    assert loaded.num_rows == 5
    assert set(loaded.column_names) == {"image", "text", "source", "start_seconds", "bpm"}
    by_text = {row["text"]: row for row in loaded}
    assert by_text["driving techno beat"]["image"].size == (512, 512)
    assert by_text["driving techno beat"]["bpm"] == 128.0


def test_a_rerun_skips_finished_tracks_and_finishes_a_cut_short_one(
    tracks: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset"
    assert make_dataset(tracks, dataset).exit_code == 0
    rows = rows_of(dataset)
    # As if the run had stopped during one.flac: its journal entry not written, its second
    # clip not yet saved.
    journal = dataset / STATE_DIR / "tracks.jsonl"
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    kept = [entry for entry in entries if entry["source"] != "album/one.flac"]
    journal.write_text("".join(json.dumps(entry) + "\n" for entry in kept))
    _, second = sorted(
        dataset / row["file_name"] for row in rows if row["source"] == "album/one.flac"
    )
    second.unlink()
    before = {path.name: path.stat().st_mtime_ns for path in dataset.glob("*.png")}

    result = make_dataset(tracks, dataset)
    assert result.exit_code == 0, result.output
    assert "two.mp3: 1 clip, done in an earlier run" in result.stderr
    assert "album/one.flac: 2 clips; caption from tags" in result.stderr
    assert rows_of(dataset) == rows
    after = {path.name: path.stat().st_mtime_ns for path in dataset.glob("*.png")}
    assert after.pop(second.name)
    assert after == before  # nothing already made was made again


def test_workers_make_the_same_dataset(tracks: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert make_dataset(tracks, one).exit_code == 0
    result = make_dataset(tracks, two, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert rows_of(two) == rows_of(one)
    for row in rows_of(one):
        assert (one / row["file_name"]).read_bytes() == (two / row["file_name"]).read_bytes()


def test_dry_run_writes_nothing(tracks: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    result = make_dataset(tracks, dataset, "--dry-run", "--hop-seconds", "2.56")
    assert result.exit_code == 0, result.output
    assert "album/one.flac: 3 clips; caption from tags" in result.stderr
    assert result.stdout.startswith("Would make up to 8 clips (0.01 h) from 4 tracks")
    assert not dataset.exists()


def test_keep_silent_and_stereo(tracks: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    result = make_dataset(tracks, dataset, "--keep-silent", "--stereo")
    assert result.exit_code == 0, result.output
    rows = rows_of(dataset)
    assert len(rows) == 6
    image = Image.open(dataset / rows[0]["file_name"])
    assert SpectrogramParams.from_exif(image.getexif()).stereo


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clip-seconds", "5"], "multiple of 0.64 s"),
        (["--hop-seconds", "0.005"], "--hop-seconds must be a positive multiple of 0.01 s"),
        (["--caption-template", "{mood}"], "unknown field {mood}"),
        (["--caption-template", "{title"], "--caption-template '{title'"),
        (["--captions", "missing.csv"], "--captions missing.csv: no such file"),
    ],
)
def test_bad_options_fail_in_one_line(
    tracks: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run("dataset", tracks, "-o", tmp_path / "dataset", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.output
    assert not (tmp_path / "dataset").exists()


def test_folders_it_refuses(tracks: Path, tmp_path: Path) -> None:
    result = run("dataset", tmp_path / "nowhere", "-o", tmp_path / "dataset")
    assert "nowhere: no such folder" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run("dataset", tmp_path / "empty", "-o", tmp_path / "dataset")
    assert "empty: no audio files in it" in result.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.pdf").write_bytes(b"%PDF")
    result = run("dataset", tracks, "-o", busy)
    assert "the folder is not empty and holds no riffusion dataset" in result.stderr
    made = tmp_path / "made"
    assert make_dataset(tracks, made).exit_code == 0
    result = make_dataset(tracks, made, "--clip-seconds", "2.56")
    assert result.exit_code == 1
    assert "holds a dataset made with other settings" in result.stderr


def test_malformed_captions_files(tracks: Path, tmp_path: Path) -> None:
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("name,caption\nx.wav,y\n")
    result = run("dataset", tracks, "-o", tmp_path / "d", "--captions", bad_csv)
    assert "the first line must name the columns file_name and text" in result.stderr
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"file_name": "x.wav", "text": "y"}\n{oops\n')
    result = run("dataset", tracks, "-o", tmp_path / "d", "--captions", bad_jsonl)
    assert "bad.jsonl, line 2:" in result.stderr


def test_id3_tags_in_a_wav_file(tmp_path: Path) -> None:
    path = tmp_path / "tagged.wav"
    soundfile.write(path, tone(1, 220), RATE)
    wave = WAVE(path)
    wave.add_tags()
    for frame in (TIT2(text=["Title"]), TPE1(text=["Artist"]), TCON(text=["Jazz"])):
        wave.tags.add(frame)
    wave.tags.add(TBPM(text=["90"]))
    wave.save()
    read = read_tags(path)
    assert (read.title, read.artist, read.genre, read.tempo) == ("Title", "Artist", "Jazz", 90.0)
    assert read_tags(tmp_path / "missing.wav").as_dict() == {}


def test_caption_from_file_name_and_sources() -> None:
    assert caption_from_file_name(Path("dir/lo-fi_hip__hop 01.wav")) == "lo fi hip hop 01"
    assert Caption("x", CaptionSource.TAGS).source.value == "tags"


def test_clip_names_keep_tracks_apart_and_sort_by_time() -> None:
    names = [clip_file_name("a b.wav", 0), clip_file_name("a_b.wav", 0)]
    assert names[0] != names[1]
    assert clip_file_name("x.wav", 5120) > clip_file_name("x.wav", 0)


def test_silence_level() -> None:
    from riffusion.audio import Audio

    assert level_dbfs(Audio(np.zeros((1, 100)), RATE)) == -np.inf
    full_scale_sine = Audio(np.sin(np.linspace(0, 200 * np.pi, 10000)), RATE)
    assert level_dbfs(full_scale_sine) == pytest.approx(-3.01, abs=0.05)
