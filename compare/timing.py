"""Latency measurement: device-synchronised stopwatches, summary statistics, and a guard on torch's thread count."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from samkit.devices import synchronize


@dataclass
class Elapsed:
    """Milliseconds measured by `stopwatch` (filled in when the block exits)."""

    ms: float = 0.0


@contextmanager
def stopwatch(device: torch.device) -> Iterator[Elapsed]:
    """Time a block with `time.perf_counter`, synchronising `device` before and after it."""
    elapsed = Elapsed()
    synchronize(device)
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        synchronize(device)
        elapsed.ms = (time.perf_counter() - start) * 1e3


@dataclass(frozen=True)
class TimingStats:
    """Summary of timed runs, in milliseconds."""

    count: int
    median_ms: float
    p90_ms: float
    mean_ms: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> TimingStats:
        """Median, 90th percentile (linear interpolation) and mean of a non-empty list of times."""
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.size == 0:
            raise ValueError("no timings to summarise")
        return cls(
            count=int(values.size),
            median_ms=float(np.median(values)),
            p90_ms=float(np.percentile(values, 90)),
            mean_ms=float(values.mean()),
        )


@contextmanager
def keep_num_threads(num_threads: int | None = None) -> Iterator[int]:
    """Restore torch's intra-op thread count when the block exits.

    ultralytics sets torch to its own thread count (cpu_count - 1, at most 8) when it sets up a model; wrapping
    its calls in this guard keeps every model on the same, configured count. `num_threads` None keeps the count
    current at entry. Yields the count that is restored.
    """
    target = torch.get_num_threads() if num_threads is None else int(num_threads)
    if target < 1:
        raise ValueError(f"thread count must be at least 1, got {num_threads}")
    try:
        yield target
    finally:
        if torch.get_num_threads() != target:
            torch.set_num_threads(target)
