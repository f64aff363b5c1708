"""Holding off Ctrl-C (SIGINT) while work that must not be cut short runs.

A KeyboardInterrupt can land between any two Python operations. Where stopping half way loses
work (a clip half joined to the audio before it, a file half written), the work runs under
interrupts_held(): a Ctrl-C is noted and acted on once the work is complete.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType


@dataclass
class HeldInterrupts:
    """What arrived while interrupts were held.

    Attributes:
        count: SIGINTs received.
    """

    count: int = 0


@contextmanager
def interrupts_held(deliver: bool = True) -> Iterator[HeldInterrupts]:
    """Run the block with SIGINT held: a Ctrl-C during it is counted, not raised.

    When the block ends normally after a SIGINT, deliver=True raises the signal again on the way
    out, to the handler there was before (by default: KeyboardInterrupt); deliver=False leaves it
    to the caller, who reads the count. When the block ends with an exception, that exception
    propagates and a held SIGINT is dropped.

    Handlers can only be set in the main thread. Elsewhere, or where the handler was not set from
    Python (so could not be put back), the block runs unprotected; Python delivers SIGINT to the
    main thread only, so other threads are never interrupted by it anyway. Where SIGINT is
    ignored (a command started in the background by a shell, or under nohup), it stays ignored and
    nothing is counted.
    """
    held = HeldInterrupts()
    previous = signal.getsignal(signal.SIGINT)
    if (
        previous is None
        or previous is signal.SIG_IGN
        or threading.current_thread() is not threading.main_thread()
    ):
        yield held
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        held.count += 1

    signal.signal(signal.SIGINT, hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
    if held.count and deliver:
        signal.raise_signal(signal.SIGINT)
