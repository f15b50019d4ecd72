"""Stopping long work: the one cancellation flag and exception of this project, and progress reporting.

Long work (the mask generators, a comparison, a server's jobs) takes a `cancel` flag, anything with
`is_set()` such as `threading.Event`, checks it between steps, and raises `Cancelled` once it is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Cancelled(RuntimeError):
    """Work was stopped through its cancel flag."""


class CancelFlag(Protocol):
    """Anything with `is_set()`, such as `threading.Event`."""

    def is_set(self) -> bool: ...


def raise_if_cancelled(cancel: CancelFlag | None, what: str = "the work") -> None:
    """Raise `Cancelled` once `cancel` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} was cancelled")


class Progress:
    """Reports the fraction done of `total` units to `callback` and honours `cancel` at every step."""

    def __init__(
        self, callback: Callable[[float], None] | None, cancel: CancelFlag | None, total: float = 1.0, what: str = ""
    ) -> None:
        self.callback, self.cancel, self.what = callback, cancel, what or "mask generation"
        self.total = max(total, 1e-12)
        self.done = 0.0

    def check_cancel(self) -> None:
        raise_if_cancelled(self.cancel, self.what)

    def advance(self, units: float) -> None:
        """Count `units` more as done, check cancellation and report."""
        self.report((self.done + units) / self.total)

    def report(self, fraction: float) -> None:
        """Check cancellation, then report `fraction` done (kept in [0, 1])."""
        self.check_cancel()
        self.done = min(max(fraction, 0.0), 1.0) * self.total
        if self.callback is not None:
            self.callback(self.done / self.total)

    def finish(self) -> None:
        """Report that everything is done (the work is complete: no cancellation check)."""
        self.done = self.total
        if self.callback is not None:
            self.callback(1.0)
