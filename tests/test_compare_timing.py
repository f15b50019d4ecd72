"""Timing helpers: summary statistics, the stopwatch and the thread-count guard."""

import time

import numpy as np
import pytest
import torch

from compare.timing import TimingStats, keep_num_threads, stopwatch


def test_stats_give_median_and_p90():
    samples = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 7.0, 8.0, 9.0]
    stats = TimingStats.from_samples(samples)
    assert stats.count == 10
    assert stats.median_ms == pytest.approx(np.median(samples))
    assert stats.p90_ms == pytest.approx(np.percentile(samples, 90))


def test_stats_of_no_samples_is_an_error():
    with pytest.raises(ValueError):
        TimingStats.from_samples([])


def test_stopwatch_measures_the_block():
    with stopwatch(torch.device("cpu")) as elapsed:
        time.sleep(0.02)
    assert elapsed.ms >= 15.0


def test_thread_guard_restores_the_count_after_a_change():
    before = torch.get_num_threads()
    with keep_num_threads(before):
        torch.set_num_threads(before + 1)
    assert torch.get_num_threads() == before


def test_thread_guard_applies_a_requested_count_on_exit():
    before = torch.get_num_threads()
    try:
        with keep_num_threads(before + 1):
            pass
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)
