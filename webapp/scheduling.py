"""
Sharing a server's CPU between interactive requests and heavy jobs, with cancellation.

Interactive requests (a click decoded on a cached embedding) run inside `Priority.interactive()`.
Heavy jobs (segment everything, comparisons) hold a `JobControl` and check it between batches;
its `is_set()` first waits while interactive requests run, so a click never shares the CPU with
more than one batch of a heavy job, and then reports whether the job was cancelled. Inside a long
forward pass (an image encoder) the same check runs between submodules of models made
`interruptible`, for the job running in the current thread (`current_job`). `HeavyLane` admits a
bounded number of heavy jobs at once with a bounded waiting line.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from mobile_sam.utils.cancel import Cancelled


class LaneFull(RuntimeError):
    """The waiting line for heavy jobs is full."""


class Priority:
    """Counts interactive requests in flight; heavy jobs pause between batches while any runs."""

    def __init__(self, max_pause_s: float = 5.0) -> None:
        self.max_pause_s = max_pause_s
        self._active = 0
        self._idle = threading.Condition()

    @contextmanager
    def interactive(self) -> Iterator[None]:
        """Mark an interactive request for the duration of the block."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self) -> None:
        """Block while interactive requests run (at most max_pause_s, so heavy jobs never starve)."""
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=self.max_pause_s)


class JobControl:
    """A cancel flag for one heavy job (`SamAutomaticMaskGenerator.generate(cancel=...)` and
    `compare.run_comparison(cancel=...)`) that also yields the CPU to interactive requests."""

    def __init__(self, priority: Priority | None = None) -> None:
        self.priority = priority
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def is_set(self) -> bool:
        """Called between batches: wait for interactive work to finish, then report cancellation."""
        if self.priority is not None and not self.cancelled:
            self.priority.wait_idle()
        return self.cancelled

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled("The job was stopped.")


_thread_job = threading.local()
_hooks_lock = threading.Lock()


@contextmanager
def current_job(control: JobControl) -> Iterator[None]:
    """Make control the job of this thread for the block (interruptible models check it)."""
    _thread_job.control = control
    try:
        yield
    finally:
        _thread_job.control = None


def _check_current_job(*_: object) -> None:
    control = getattr(_thread_job, "control", None)
    if control is not None and control.is_set():
        raise Cancelled("The job was stopped.")


def interruptible(model: nn.Module) -> nn.Module:
    """Let the current thread's job pause or stop model's forward pass before any submodule runs.

    Threads without a job (interactive requests) are not affected. Hooks are added once per model, on
    modules that have submodules only: leaf modules may be shared with every other model in the process
    (ultralytics' `Conv.default_act` is one `nn.SiLU` for all its networks), and a hook there would reach them.
    """
    with _hooks_lock:
        if not getattr(model, "_job_hooks", False):
            for module in model.modules():
                if next(module.children(), None) is not None:
                    module.register_forward_pre_hook(_check_current_job)
            model._job_hooks = True
    return model


class HeavyLane:
    """At most `workers` heavy jobs run at once and at most `queue_size` wait, first come first served."""

    def __init__(self, workers: int = 1, queue_size: int = 4) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError(f"workers must be >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.workers = workers
        self.queue_size = queue_size
        self._running = 0
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()

    @contextmanager
    def slot(self, control: JobControl, on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """
        Hold a slot for the block, waiting in line first when all slots are busy.

        on_wait is called with the 1-based position in the line while waiting.

        Raises:
          LaneFull: queue_size jobs are already waiting.
          Cancelled: control was cancelled while waiting.
        """
        ticket = object()
        with self._changed:
            if self._running >= self.workers and len(self._waiting) >= self.queue_size:
                raise LaneFull(
                    f"The server is busy: {self._running} heavy job(s) running and {len(self._waiting)} waiting "
                    f"(at most {self.queue_size}). Try again in a minute."
                )
            self._waiting.append(ticket)
            try:
                while not (self._running < self.workers and self._waiting[0] is ticket):
                    if control.cancelled:
                        raise Cancelled("The job was stopped while it waited in line.")
                    if on_wait is not None:
                        on_wait(self._waiting.index(ticket) + 1)
                    self._changed.wait(timeout=0.25)
            finally:
                self._waiting.remove(ticket)
                self._changed.notify_all()
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def load(self) -> tuple[int, int]:
        """(running, waiting) right now."""
        with self._changed:
            return self._running, len(self._waiting)
