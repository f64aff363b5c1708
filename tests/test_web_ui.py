"""Browser tests of the web app: Debian's Chromium driven by Playwright against a real
`riffusion serve` on a free port with the tiny random-weight checkpoint.

They skip (with the reason) where Playwright or /usr/bin/chromium is missing; .ci/run installs
both. The Playwright browser download is not used: Chromium comes from the system.

Clips from the tiny model are noise, but they travel the whole way: WebSocket, FLAC decoding, Web
Audio scheduling, WebGL. A seed image 256 columns wide (2.56 s) keeps phase reconstruction, the
slow part on a CPU, short.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image
from server_support import free_port

from riffusion.testing import make_tiny_lora

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(
        f"{CHROMIUM} not found (Debian: apt-get install -y chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

# Every test waits on a real server and a software-rendering browser: the server alone takes over
# 10 s to start, and most tests take over 10 s themselves.
pytestmark = pytest.mark.slow

# Headless Chromium without a GPU: ANGLE on SwiftShader gives it WebGL2 in software.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # The app starts audio from a click or key press, as browsers require; the tests also call
    # play() on <audio> elements directly.
    "--autoplay-policy=no-user-gesture-required",
]

SAMPLE_RATE = 44100
SEED_ID = "browser_seed"
OTHER_SEED_ID = "browser_seed_two"
SEED_WIDTH = 256  # 2.56 s clips
# Generation on a shared CPU is slow: a clip can take a minute when other work competes.
CLIP_TIMEOUT_MS = 300_000
SERVER_START_S = 180


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def write_seed_images(folder: Path) -> Path:
    """Two noise spectrogram seeds, SEED_WIDTH columns of 512 mel rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in (SEED_ID, OTHER_SEED_ID):
        pixels = rng.integers(60, 256, size=(512, SEED_WIDTH), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").convert("RGB").save(folder / f"{name}.png")
    return folder


class Server:
    """`riffusion serve` in a subprocess, its output in a log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        command = [sys.executable, "-m", "riffusion.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), *args]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ}
            )

    def wait_for(self, status: str) -> dict[str, Any]:
        """Wait until /health reports `status` (the page itself answers long before)."""
        deadline = time.monotonic() + SERVER_START_S
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"riffusion serve exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                health = get_json(self.url + "health")
                if health.get("status") == status:
                    return health
            time.sleep(0.5)
        pytest.fail(f"/health never said {status!r} (last: {health}):\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("web")
    seeds = write_seed_images(folder / "seeds")
    style = make_tiny_lora(folder / "style.safetensors", tiny_checkpoint, seed=1)
    process = Server(
        ["--model", str(tiny_checkpoint), "--seed-images", str(seeds), "--lora", f"style={style}"],
        folder / "log",
    )
    try:
        process.wait_for("ready")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tab:
    """A page, with the JavaScript errors it raised, the WebSocket messages it sent and the clip
    messages it received."""

    def __init__(self, browser, **context_options: Any) -> None:
        self.context = browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.idle_canvas: np.ndarray | None = None
        self.sent: list[dict[str, Any]] = []
        self.clips: list[dict[str, Any]] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("websocket", self._watch)

    def _watch(self, socket) -> None:
        def sent(payload: str | bytes) -> None:
            with contextlib.suppress(ValueError, TypeError):
                self.sent.append(json.loads(payload))

        def received(payload: str | bytes) -> None:
            with contextlib.suppress(ValueError, TypeError):
                message = json.loads(payload)
                if message.get("type") == "clip":
                    self.clips.append(message)

        socket.on("framesent", sent)
        socket.on("framereceived", received)

    def sent_of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.sent if message.get("type") == kind]

    def wait_sent(self, kind: str, count: int = 1, timeout_s: float = 15) -> list[dict[str, Any]]:
        """The messages of a type sent so far, once there are `count` (they go out once the
        socket is open, a moment after the click or key press that caused them)."""
        deadline = time.monotonic() + timeout_s
        while len(self.sent_of_type(kind)) < count and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        found = self.sent_of_type(kind)
        assert len(found) >= count, f"expected {count} {kind!r} messages, sent: {self.sent}"
        return found

    def value(self, script: str) -> Any:
        return self.page.evaluate(script)

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"JavaScript errors on the page: {self.errors}"


@pytest.fixture
def tab(browser):
    opened = Tab(browser, viewport={"width": 1280, "height": 800})
    yield opened
    opened.close()


# Set RIFFUSION_UI_SHOTS to a folder to keep the screenshots the tests look at.
SHOTS = os.environ.get("RIFFUSION_UI_SHOTS")


def canvas_pixels(page, selector: str = "#timeline", name: str | None = None) -> np.ndarray:
    """What the canvas shows on screen, as an RGB array (via a screenshot: WebGL's buffer is
    cleared after compositing, so reading it back from script would see nothing)."""
    png = page.locator(selector).screenshot()
    if SHOTS and name:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SHOTS) / f"{name}.png").write_bytes(png)
        page.screenshot(path=str(Path(SHOTS) / f"{name}-page.png"), full_page=True)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


# ---------------------------------------------------------------- the jam, one session


@pytest.fixture(scope="module")
def jam(server, browser):
    """One jam on the tiny seed at one diffusion step, shared by the jam tests (in order)."""
    opened = Tab(browser, viewport={"width": 1280, "height": 800})
    page = opened.page
    page.goto(f"{server.url}?numInferenceSteps=1&seedImageId={SEED_ID}&denoising=0.75")
    page.wait_for_function("window.riffusion && riffusion.jam")
    page.wait_for_timeout(500)  # a few frames of the empty timeline
    opened.idle_canvas = canvas_pixels(page, name="timeline-idle")
    page.fill("#prompt-input", "church bells on sunday")
    page.press("#prompt-input", "Enter")
    yield opened
    opened.close()


def test_typing_a_prompt_makes_clips_arrive_and_audio_time_advance(jam):
    page = jam.page
    start = jam.wait_sent("start")
    assert start[0]["prompt"] == "church bells on sunday"
    assert start[0]["settings"]["num_inference_steps"] == 1
    assert start[0]["settings"]["seed_image_id"] == SEED_ID

    page.wait_for_function("riffusion.jam.received.length >= 1", timeout=CLIP_TIMEOUT_MS)
    page.wait_for_function("riffusion.jam.current !== null", timeout=30_000)
    first = jam.value("riffusion.jam.scheduler.position")
    # The clip is 2.56 s long: the audio clock moves through it.
    page.wait_for_function(
        f"riffusion.jam.scheduler.position > {first} + 0.8", timeout=10_000, polling=100
    )
    assert jam.value("riffusion.jam.scheduler.context.state") == "running"
    # The playhead told the server what it reached, and the page says what is playing.
    assert {"type": "played", "index": 0} in jam.sent
    assert "church bells on sunday" in page.inner_text("#now-prompt")
    clip = jam.value("riffusion.jam.received[0]")
    assert clip["state"] == "SAME_PROMPT"
    assert clip["input"]["seed_image_id"] == SEED_ID
    assert clip["image_duration_s"] == pytest.approx(SEED_WIDTH / 100)
    # The first clip's audio stops short of its end, where the next one's crossfade may begin.
    assert 0 < clip["duration_s"] < SEED_WIDTH / 100
    # The audio of the clip playing now decoded to exactly the length the server gave it.
    frames, duration = jam.value(
        "[riffusion.jam.current.buffer.length, riffusion.jam.current.message.duration_s]"
    )
    assert frames == round(duration * SAMPLE_RATE)


def test_timeline_draws_the_spectrogram_in_3d(jam):
    page = jam.page
    assert jam.value("riffusion.jam.timeline.mode") == "webgl2", "WebGL2 is not available"
    # Pause while a clip passes the playhead, so that the picture holds still for the
    # screenshot (on a busy CPU taking one can outlast a short clip).
    page.wait_for_function(
        """() => {
            const jam = riffusion.jam;
            if (!jam.scheduler.current || jam.phase !== "playing") return false;
            jam.togglePlay();  // what the pause button does
            return true;
        }""",
        timeout=CLIP_TIMEOUT_MS,
        polling=20,
    )
    page.wait_for_function("riffusion.jam.scheduler.context.state === 'suspended'")
    pixels = canvas_pixels(page, name="timeline-playing")
    page.click("#play-button")  # resume
    page.wait_for_function("riffusion.jam.scheduler.context.state === 'running'")
    idle = jam.idle_canvas
    assert pixels.shape == idle.shape
    # Not blank: a terrain of many colours, clearly unlike the empty floor drawn before.
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > 500, f"only {colours} distinct colours: the canvas looks blank"
    changed = np.abs(pixels - idle).sum(axis=2) > 60
    assert changed.mean() > 0.03, f"only {changed.mean():.1%} of the canvas changed"
    # The terrain rises above the floor: bright (loud) pixels exist, as the palette draws them.
    assert (pixels.max(axis=2) > 150).mean() > 0.01


def test_settings_change_shows_up_in_the_next_request(jam):
    page = jam.page
    before = len(jam.value("riffusion.jam.received"))
    page.fill("#denoising", "0.4")
    page.fill("#guidance", "9.5")
    # Only what changed goes out, at once.
    settings = [m["settings"] for m in jam.wait_sent("settings", count=2)]
    assert {"denoising": 0.4} in settings
    assert {"guidance": 9.5} in settings
    assert all("seed" not in s for s in settings), "a settings change must not reset the seed"
    # The clip in flight keeps its settings; a later one carries the new values.
    page.wait_for_function(
        f"riffusion.jam.received.slice({before}).some(c => c.input.start.denoising === 0.4 "
        "&& c.input.end.guidance === 9.5)",
        timeout=CLIP_TIMEOUT_MS,
    )
    # ... and so does the share link.
    query = parse_qs(urlsplit(page.input_value("#share-url")).query)
    assert query["denoising"] == ["0.4"]
    assert query["guidance"] == ["9.5"]


def test_space_pauses_and_resumes(jam):
    page = jam.page
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Space")
    page.wait_for_function("riffusion.jam.scheduler.context.state === 'suspended'")
    assert jam.value("riffusion.jam.phase") == "paused"
    assert page.get_attribute("#play-button", "aria-label") == "Resume"
    jam.wait_sent("pause")
    position = jam.value("riffusion.jam.scheduler.position")
    page.wait_for_timeout(600)
    assert jam.value("riffusion.jam.scheduler.position") == pytest.approx(position, abs=0.01)
    page.keyboard.press("Space")
    page.wait_for_function("riffusion.jam.scheduler.context.state === 'running'")
    jam.wait_sent("resume")
    assert page.get_attribute("#play-button", "aria-label") == "Pause"


def test_clip_audio_plays_back_to_back_to_the_sample(jam):
    page = jam.page
    # Freeze the audio clock without telling the server: it still fills its clips_ahead, and
    # every clip that arrives now joins the one before (none can be late).
    page.evaluate("riffusion.jam.scheduler.context.suspend()")
    page.wait_for_function(
        "riffusion.jam.scheduler.log.filter(e => e.joined).length >= 2", timeout=CLIP_TIMEOUT_MS
    )
    page.wait_for_timeout(300)  # let the clip being decoded, if any, be scheduled
    log = jam.value("riffusion.jam.scheduler.log")
    sent = {clip["index"]: clip for clip in jam.clips}
    assert len(log) >= 3
    for entry in log:
        clip = sent[entry["index"]]
        # Decoded to exactly the frames the server says, at the stream's rate.
        assert entry["sampleRate"] == SAMPLE_RATE
        assert entry["frames"] == round(clip["duration_s"] * SAMPLE_RATE)
    for previous, entry in itertools.pairwise(log):
        before, clip = sent[previous["index"]], sent[entry["index"]]
        continues = clip["audio_start_s"] == pytest.approx(
            before["audio_start_s"] + before["duration_s"], abs=0.5 / SAMPLE_RATE
        )
        assert continues, "the server's stream has a hole"
        if entry["joined"]:
            # On the very frame where the previous clip's audio ends: no gap, no overlap.
            assert entry["startFrame"] == previous["startFrame"] + previous["frames"]
        else:
            # Only after a gap (generation fell behind) does a clip start afresh.
            assert entry["startFrame"] > previous["startFrame"] + previous["frames"]

    # The timeline draws each clip's image where its audio places it, not where its audio starts.
    drawn = jam.value("riffusion.jam.timeline.clips.map(c => ({index: c.index, start: c.start}))")
    starts = {entry["index"]: entry["startFrame"] / SAMPLE_RATE for entry in log}
    checked = 0
    for clip in drawn:
        if clip["index"] in starts:
            message = sent[clip["index"]]
            offset = message["image_start_s"] - message["audio_start_s"]
            assert clip["start"] == pytest.approx(starts[clip["index"]] + offset, abs=1e-6)
            checked += 1
    assert checked >= 2

    # Rendered through Web Audio, the run of joined clips is their audio concatenated, sample
    # for sample (past the run's 10 ms fade-in and before its fade-out).
    runs: list[list[dict[str, Any]]] = []
    for entry in log:
        if entry["joined"]:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    run = [run for run in runs if len(run) >= 2][-1]
    urls = [sent[entry["index"]]["audio"] for entry in run]
    error = page.evaluate(
        """async (urls) => {
            const { AudioScheduler } = await import("/js/audio-scheduler.js");
            const { decodeAudioDataUrl } = await import("/js/media.js");
            const rate = 44100;
            const decoder = new OfflineAudioContext(1, 1, rate);
            const buffers = [];
            for (const url of urls) buffers.push(await decodeAudioDataUrl(url, decoder));
            const total = buffers.reduce((sum, b) => sum + b.length, 0);
            const context = new OfflineAudioContext(1, total + rate, rate);
            const scheduler = new AudioScheduler({ context, startDelay: 0 });
            buffers.forEach((buffer, i) => scheduler.enqueue({ buffer, continues: i > 0 }));
            const first = scheduler.log[0].startFrame;
            const rendered = (await context.startRendering()).getChannelData(0);
            const fade = Math.round(0.01 * rate);
            let error = 0;
            let at = first;
            for (const buffer of buffers) {
                const samples = buffer.getChannelData(0);
                for (let i = 0; i < samples.length; i += 1, at += 1) {
                    if (at < first + fade || at >= first + total - fade) continue;
                    error = Math.max(error, Math.abs(rendered[at] - samples[i]));
                }
            }
            return error;
        }""",
        urls,
    )
    assert error < 1e-6, f"the rendered run differs from the clips' audio by {error}"
    page.evaluate("riffusion.jam.scheduler.context.resume()")


def test_a_late_clip_fades_in_after_the_gap_and_a_joined_one_does_not(server, tab):
    page = tab.page
    page.goto(server.url)
    page.wait_for_function("window.riffusion")
    result = page.evaluate(
        """async () => {
            const { AudioScheduler } = await import("/js/audio-scheduler.js");
            const rate = 44100;
            const context = new OfflineAudioContext(1, rate * 2, rate);
            const scheduler = new AudioScheduler({ context, startDelay: 0.1 });
            const piece = () => {
                const buffer = new AudioBuffer({ length: rate / 4, sampleRate: rate });
                buffer.getChannelData(0).fill(0.5);
                return buffer;
            };
            scheduler.enqueue({ buffer: piece(), continues: false });
            // The next piece of the same stream arrives only after the first has ended (0.35 s),
            // and the one after it while that is still playing.
            context.suspend(0.5).then(() => {
                scheduler.enqueue({ buffer: piece(), continues: true });
                scheduler.enqueue({ buffer: piece(), continues: true });
                context.resume();
            });
            const rendered = Array.from((await context.startRendering()).getChannelData(0));
            return { log: scheduler.log, rendered };
        }"""
    )
    log, rendered = result["log"], np.array(result["rendered"])
    assert [entry["joined"] for entry in log] == [False, False, True]
    fade = round(0.01 * SAMPLE_RATE)
    first, late, joined = (entry["startFrame"] for entry in log)
    length = SAMPLE_RATE // 4
    assert late > first + length, "the late piece must wait for its own start, after the gap"
    assert joined == late + length
    # Nothing joined the first piece: its end fades out instead of stopping dead.
    assert rendered[first + length - 1] < 0.01
    assert rendered[first + length - fade - 1] == pytest.approx(0.5, abs=1e-3)
    assert np.all(rendered[first + length : late] == 0)
    # After the gap the stream fades in ...
    assert rendered[late] < 0.01
    assert rendered[late + fade + 1] == pytest.approx(0.5, abs=1e-3)
    # ... and the piece that joined it follows with no fade between them.
    assert np.allclose(rendered[late + fade + 1 : joined + length - fade - 1], 0.5, atol=1e-6)
    assert rendered[joined + length - 1] < 0.01


# ---------------------------------------------------------------- share links


def test_share_url_restores_prompt_and_settings(server, browser):
    query = (
        f"?prompt=lo-fi%20beat%20for%20the%20holidays&denoising=0.85&seedImageId={OTHER_SEED_ID}"
        "&guidance=9&numInferenceSteps=3&alphaVelocity=0.5&seed=4242"
    )
    first = Tab(browser, viewport={"width": 1280, "height": 800})
    try:
        page = first.page
        page.goto(server.url + query)
        page.wait_for_function(
            f"document.querySelector('#seed-image option[value=\"{OTHER_SEED_ID}\"]')"
        )
        assert page.input_value("#prompt-input") == "lo-fi beat for the holidays"
        assert page.input_value("#denoising") == "0.85"
        assert page.input_value("#guidance") == "9"
        assert page.input_value("#steps") == "3"
        assert page.input_value("#alpha-velocity") == "0.5"
        assert page.input_value("#seed") == "4242"
        assert page.input_value("#seed-image") == OTHER_SEED_ID
        link = page.input_value("#share-url")
    finally:
        first.close()

    # The link the share panel offers brings back the same state in a fresh page ...
    second = Tab(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = second.page
        page.goto(link)
        page.wait_for_function(
            f"document.querySelector('#seed-image option[value=\"{OTHER_SEED_ID}\"]')"
        )
        assert page.input_value("#prompt-input") == "lo-fi beat for the holidays"
        assert page.input_value("#seed-image") == OTHER_SEED_ID
        assert page.input_value("#denoising") == "0.85"
        # ... and the jam it starts asks for exactly that.
        page.click("#play-button")
        start = second.wait_sent("start")[0]
        assert start["prompt"] == "lo-fi beat for the holidays"
        assert start["settings"] == {
            "denoising": 0.85,
            "guidance": 9,
            "num_inference_steps": 3,
            "seed_image_id": OTHER_SEED_ID,
            "mask_image_id": None,
            "alpha_velocity": 0.5,
            "seed": 4242,
        }
    finally:
        second.close()


# ---------------------------------------------------------------- studio


def test_drawing_on_the_studio_canvas_yields_playable_audio(server, tab):
    paths = get_json(server.url + "openapi.json")["paths"]
    if "/api/image_to_audio" not in paths:
        pytest.skip("the server has no POST /api/image_to_audio (docs/api.md) yet")
    page = tab.page
    page.goto(server.url + "#studio")
    page.click("#tab-image")
    page.click("#draw-clear")
    page.locator("#draw-canvas").scroll_into_view_if_needed()
    box = page.locator("#draw-canvas").bounding_box()
    assert box is not None

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    # A held low note, a higher one, and a few strokes down through the spectrum.
    for y in (0.85, 0.6):
        page.mouse.move(*at(0.05, y))
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(*at(0.05 + 0.09 * step, y), steps=2)
        page.mouse.up()
    for x in (0.2, 0.5, 0.8):
        page.mouse.move(*at(x, 0.5))
        page.mouse.down()
        page.mouse.move(*at(x + 0.02, 0.95), steps=5)
        page.mouse.up()
    drawn = canvas_pixels(page, "#draw-canvas", name="studio-drawn")
    assert (drawn.max(axis=2) < 128).mean() > 0.01, "the strokes left no dark pixels"

    with page.expect_request("**/api/image_to_audio") as request:
        page.click("#image-submit")
    body = json.loads(request.value.post_data)
    assert body["image"].startswith("data:image/png;base64,")

    player = page.locator("#tool-image .results audio").first
    player.wait_for(timeout=CLIP_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelector('#tool-image .results audio').duration > 4", timeout=20_000
    )
    # It plays: the element's clock moves.
    page.evaluate("document.querySelector('#tool-image .results audio').play()")
    page.wait_for_function(
        "document.querySelector('#tool-image .results audio').currentTime > 0.3",
        timeout=10_000,
    )


def write_tone(path: Path, seconds: float) -> Path:
    """A WAV of a 440 Hz tone with a beat, for the upload tools."""
    from riffusion import Audio

    t = np.arange(int(seconds * 44100)) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sign(np.sin(2 * np.pi * 2 * t))) / 2
    Audio(tone[None, :].astype(np.float32), 44100).save(path)
    return path


def test_audio_to_audio_transforms_an_uploaded_file(server, tab, tmp_path):
    page = tab.page
    page.goto(server.url + "#studio")
    page.click("#tab-audio")
    page.set_input_files("#audio-file", str(write_tone(tmp_path / "tone.wav", 1.5)))
    # Decoded in the browser: 1.5 s is one clip (the server keeps 1.28 s: 64-column steps).
    page.wait_for_function(
        "document.querySelector('#audio-file-info').textContent.includes('1 clip')"
    )
    page.fill("#audio-prompt", "jazz with piano")
    page.fill("#audio-steps", "1")
    with page.expect_request("**/api/audio_to_audio") as request:
        page.click("#audio-form button[type=submit]")
    body = json.loads(request.value.post_data)
    assert body["audio"].startswith("data:audio/wav;base64,")
    assert body["prompt"] == "jazz with piano"
    assert body["num_inference_steps"] == 1
    page.locator("#tool-audio .progress").wait_for()  # progress shows while the server works
    player = page.locator("#tool-audio .results audio").first
    player.wait_for(timeout=CLIP_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelector('#tool-audio .results audio').duration > 0.5", timeout=20_000
    )
    assert page.locator("#tool-audio .filmstrip img").count() == 1


def test_sample_clips_cuts_clips_in_the_browser(server, tab, tmp_path):
    page = tab.page
    page.goto(server.url + "#studio")
    page.click("#tab-samples")
    page.set_input_files("#samples-file", str(write_tone(tmp_path / "long.wav", 4.0)))
    page.fill("#samples-count", "3")
    page.fill("#samples-duration", "1000")
    page.click("#samples-form button[type=submit]")
    players = page.locator("#tool-samples .results audio")
    players.nth(2).wait_for()
    assert players.count() == 3
    page.wait_for_function(
        "[...document.querySelectorAll('#tool-samples .results audio')]"
        ".every(a => Math.abs(a.duration - 1) < 0.01)"
    )
    with page.expect_download() as download:
        page.locator("#tool-samples .results button", has_text="WAV").first.click()
    assert download.value.suggested_filename.startswith("long-clip000-")
    assert download.value.suggested_filename.endswith(".wav")


# ---------------------------------------------------------------- model state


def test_model_that_cannot_load_is_explained_on_the_page(browser, tmp_path):
    missing = tmp_path / "no-such-model"
    process = Server(["--model", str(missing)], tmp_path / "log")
    opened = Tab(browser, viewport={"width": 1280, "height": 800})
    try:
        health = process.wait_for("failed")
        page = opened.page
        page.goto(process.url)
        banner = page.locator("#model-banner")
        banner.wait_for(state="visible")
        assert "could not be loaded" in banner.inner_text()
        assert health["message"] in banner.inner_text()
        if health.get("fix"):
            assert health["fix"] in banner.inner_text()
        assert page.get_attribute("#model-pill", "data-state") == "failed"
        # Pressing play explains instead of starting a jam that cannot play.
        page.fill("#prompt-input", "jazz")
        page.press("#prompt-input", "Enter")
        page.locator("#toast").wait_for(state="visible")
        assert jam_phase(page) == "idle"
    finally:
        opened.close()
        process.stop()


def jam_phase(page) -> str:
    return page.evaluate("riffusion.jam.phase")


# ---------------------------------------------------------------- presets


def test_choosing_a_preset_sets_its_steps_and_reaches_the_jam(server, tab):
    page = tab.page
    page.goto(f"{server.url}?seedImageId={SEED_ID}")
    page.wait_for_function("document.querySelector('#preset option[value=\"fast\"]')")
    # The server runs quality by default, at the original's 50 steps.
    assert page.input_value("#preset") == "quality"
    assert page.input_value("#steps") == "50"
    page.select_option("#preset", "fast")
    assert page.input_value("#steps") == "20"
    assert not page.is_disabled("#guidance")
    query = parse_qs(urlsplit(page.input_value("#share-url")).query)
    assert query["preset"] == ["fast"] and query["numInferenceSteps"] == ["20"]
    page.fill("#prompt-input", "a fast jam")
    page.press("#prompt-input", "Enter")
    start = tab.wait_sent("start")[0]["settings"]
    assert (start["preset"], start["num_inference_steps"]) == ("fast", 20)
    # Realtime brings its own step count and runs without guidance.
    page.select_option("#preset", "realtime")
    assert page.input_value("#steps") == "1"
    assert page.is_disabled("#guidance")
    sent = tab.wait_sent("settings")[-1]["settings"]
    assert sent == {"preset": "realtime", "num_inference_steps": 1}


# ---------------------------------------------------------------- trained styles


def test_choosing_a_trained_style_reaches_the_jam_and_the_share_link(server, tab):
    page = tab.page
    page.goto(f"{server.url}?numInferenceSteps=1&seedImageId={SEED_ID}")
    page.wait_for_function("document.querySelector('#lora option[value=\"style\"]')")
    assert page.is_visible("#lora")
    assert page.input_value("#lora") == ""
    page.fill("#prompt-input", "a styled jam")
    page.press("#prompt-input", "Enter")
    assert "lora" not in tab.wait_sent("start")[0]["settings"]
    page.select_option("#lora", "style")
    assert tab.wait_sent("settings")[-1]["settings"] == {"lora": "style"}
    query = parse_qs(urlsplit(page.input_value("#share-url")).query)
    assert query["lora"] == ["style"]
    # Clips keep arriving with the style (the server names the valid ids if it refused one).
    wanted = len(tab.clips) + 2
    deadline = time.monotonic() + 60
    while len(tab.clips) < wanted and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(tab.clips) >= wanted
