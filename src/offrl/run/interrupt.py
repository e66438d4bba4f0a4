"""Ctrl-C and SIGTERM as a request to stop at the next consistent point.

A training loop holds state that moves in several pieces (the train states,
the step counter, the replay buffer, the sampling generator). An exception
raised by the signal in the middle of those pieces lets a checkpoint label one
step and hold another. :class:`StopRequest` turns the first SIGINT or SIGTERM
into a flag; the loop reads it where every piece agrees (after a chunk of
updates, after an environment step, at an episode end), writes its
checkpoint and stops with :class:`RunInterrupted`. A second signal stops at
once (``KeyboardInterrupt``) without writing: the checkpoints already on disk
are complete, because :func:`offrl.run.checkpoint.save` is atomic.
"""

from __future__ import annotations

import signal
import sys
import threading

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal after writing a checkpoint (``signum`` says which)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "interrupted"


class StopRequest:
    """Context manager: SIGINT/SIGTERM set :attr:`signum` instead of raising.

    ``where`` completes the message printed at the first signal ("stopping
    after {where} with a checkpoint"). Outside the main thread (where Python
    cannot install handlers) it does nothing and signals act as usual.
    """

    def __init__(self, where: str = "the current chunk of updates"):
        self.where = where
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:
            self._restore()
            raise KeyboardInterrupt(
                "stopped at once by a second signal; the last checkpoint on disk is intact"
            )
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"\n{name}: stopping after {self.where} with a checkpoint "
            "(send it again to stop at once without one)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        return self

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()
