"""interrupts_held: Ctrl-C (a real SIGINT, raised in this process) waits for the block; SIGTERM
stops work as Ctrl-C does, in this process and in a command line's."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from riffusion import Audio
from riffusion.interrupts import Terminated, interrupts_held, signal_of, sigterm_as_interrupt


def test_a_ctrl_c_in_the_block_is_raised_once_the_block_is_done() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts_held() as held:
        signal.raise_signal(signal.SIGINT)
        reached.append("the rest of the block")
    assert reached == ["the rest of the block"]
    assert held.count == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_delivery_ctrl_c_is_only_counted() -> None:
    with interrupts_held(deliver=False) as held:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert held.count == 2
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_an_error_in_the_block_wins_over_a_held_ctrl_c() -> None:
    with pytest.raises(ValueError, match="failed"), interrupts_held():
        signal.raise_signal(signal.SIGINT)
        raise ValueError("failed")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_other_threads_run_the_block_as_it_is() -> None:
    counts = []

    def work() -> None:
        # signal.signal would raise ValueError outside the main thread.
        with interrupts_held() as held:
            counts.append(held.count)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert counts == [0]


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_held(deliver=False) as held:
            signal.raise_signal(signal.SIGINT)
        assert held.count == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigterm_raises_terminated_like_ctrl_c_within_the_block() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as raised, sigterm_as_interrupt():
        signal.raise_signal(signal.SIGTERM)
    assert isinstance(raised.value, KeyboardInterrupt)
    assert signal_of(raised.value) == signal.SIGTERM
    assert signal_of(KeyboardInterrupt()) == signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_sigterm_in_a_held_block_waits_for_the_block() -> None:
    reached = []
    with sigterm_as_interrupt():
        with pytest.raises(Terminated), interrupts_held() as held:
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)
            reached.append("the rest of the block")
        assert reached == ["the rest of the block"]
        # Both recorded; the first one is delivered.
        assert held.signals == [signal.SIGTERM, signal.SIGINT]
        with interrupts_held(deliver=False) as held:
            signal.raise_signal(signal.SIGTERM)
        assert held.count == 1


def test_an_ignored_sigterm_stays_ignored() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with sigterm_as_interrupt(), interrupts_held(deliver=False) as held:
            signal.raise_signal(signal.SIGTERM)
        assert held.count == 0
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


# Runs the command line with every file write stalled half way, once a marker file says so.
_STALLED_WRITES = """
import sys, time
from pathlib import Path

write_bytes = Path.write_bytes

def stalled(self, data):
    write_bytes(self, data[: len(data) // 2])
    Path(sys.argv[1]).touch()
    time.sleep(60)

Path.write_bytes = stalled
from riffusion.cli.main import cli
cli(sys.argv[2:])
"""


def test_sigterm_while_writing_leaves_no_partial_file(tmp_path: Path) -> None:
    """A real SIGTERM to a command in the middle of writing its output: it used to die at once,
    silently, leaving a hidden .NAME.<hex>.partial.wav beside the output."""
    audio = Audio(np.zeros((1, 4410), dtype=np.float32), 44100).save(tmp_path / "in.wav")
    marker, out = tmp_path / "writing", tmp_path / "clips"
    command = ["sample-clips", "--audio", audio, "--output-dir", out, "--duration-ms", 50]
    process = subprocess.Popen(
        [sys.executable, "-c", _STALLED_WRITES, str(marker), *map(str, command)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the write never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "Interrupted."
    assert list(out.iterdir()) == []
