"""interrupts_held: Ctrl-C (a real SIGINT, raised in this process) waits for the block."""

from __future__ import annotations

import signal
import threading

import pytest

from riffusion.interrupts import interrupts_held


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
