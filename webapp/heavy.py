"""Running a heavy job from a Gradio event: in a worker thread, in the heavy lane, cancellable.

Gradio cancels an event's asyncio task when the visitor presses Stop (`cancels=`) or an API client
calls `job.cancel()`; the session's unload event cancels its jobs when the tab closes. Either way the
job's `JobControl` is set and the worker stops at its next batch, freeing its lane slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from mobile_sam.utils.cancel import Cancelled

from .scheduling import HeavyLane, JobControl
from .sessions import Sessions

T = TypeVar("T")
STOPPED = (Cancelled,)  # a job that was stopped


async def run_heavy(
    sessions: Sessions,
    lane: HeavyLane,
    request: Any,
    work: Callable[[JobControl], T],
    progress: Callable[..., Any] | None = None,
) -> T:
    """work(control) in a worker thread once a lane slot is free; cancelled with the calling task."""

    def waiting(position: int) -> None:
        if progress is not None:
            progress(0.0, desc=f"Waiting for a free slot: position {position} in line")

    def in_lane(control: JobControl) -> T:
        with lane.slot(control, waiting):
            return work(control)

    with sessions.job(request) as control:
        try:
            return await asyncio.to_thread(in_lane, control)
        except asyncio.CancelledError:
            control.cancel()
            raise
