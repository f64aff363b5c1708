"""Ctrl-C (SIGINT) and SIGTERM: stopping work cleanly, and holding them off while work that must
not be cut short runs.

A KeyboardInterrupt can land between any two Python operations. Where stopping half way loses
work (a clip half joined to the audio before it, a file half written), the work runs under
interrupts_held(): a Ctrl-C is noted and acted on once the work is complete.

SIGTERM (what `kill`, service managers and container runtimes send) kills a process outright by
default, skipping every cleanup. Under sigterm_as_interrupt() it raises Terminated instead, a
KeyboardInterrupt, so it stops work exactly as Ctrl-C does, and interrupts_held() holds it too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

# The signals interrupts_held() may hold, in the order they are delivered afterwards.
_HOLDABLE = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where sigterm_as_interrupt() is in force."""


@dataclass
class HeldInterrupts:
    """What arrived while interrupts were held.

    Attributes:
        signals: the signal numbers received (SIGINT, SIGTERM), in order.
    """

    signals: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Signals received."""
        return len(self.signals)


@contextmanager
def interrupts_held(deliver: bool = True) -> Iterator[HeldInterrupts]:
    """Run the block with SIGINT (and SIGTERM, where Python handles it) held: a signal during it
    is recorded, not acted on.

    When the block ends normally after a signal, deliver=True raises the first signal held again
    on the way out, to the handler there was before (by default: KeyboardInterrupt for SIGINT,
    Terminated for SIGTERM under sigterm_as_interrupt); deliver=False leaves it to the caller,
    who reads what was held. When the block ends with an exception, that exception propagates
    and held signals are dropped.

    Handlers can only be set in the main thread. Elsewhere the block runs unprotected; Python
    delivers signals to the main thread only, so other threads are never interrupted by them
    anyway. A signal whose handler was not set from Python (SIGTERM by default: it then kills the
    process as ever) or is ignored (SIGINT for a command started in the background by a shell,
    or under nohup) is left as it is, and nothing is recorded for it.
    """
    held = HeldInterrupts()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        held.signals.append(signum)

    previous = {
        signum: handler
        for signum in _HOLDABLE
        if callable(handler := signal.getsignal(signum))
        # SIGINT as Python starts: its default handler raises KeyboardInterrupt.
        or (signum == signal.SIGINT and handler is signal.SIG_DFL)
    }
    for signum in previous:
        signal.signal(signum, hold)
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held.signals and deliver:
        signal.raise_signal(held.signals[0])


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated in the main thread, as Ctrl-C raises
    KeyboardInterrupt: cleanups run (temporary files are removed) and code that keeps finished
    work on Ctrl-C keeps it on SIGTERM too.

    Outside the main thread, and where SIGTERM is ignored, the block runs as it is.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        # None: a handler not set from Python, which cannot be put back; the default is closest.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal an interrupt stands for: SIGTERM for Terminated, else SIGINT."""
    return signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
