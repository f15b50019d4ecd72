"""The server's shared parts, built once from an AppConfig: lanes, sessions, caches and each tab's handlers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .api import Api
from .compare_tab import CompareTab
from .config import AppConfig
from .everything_jobs import EverythingBudget, ResultCache
from .everything_tab import EverythingTab
from .model_store import ModelStore
from .scheduling import HeavyLane, Priority
from .segment import SegmentTab
from .sessions import Sessions

SWEEP_PERIOD_S = 30.0


@dataclass
class Parts:
    """Everything the event handlers share (models and caches are read-only for them)."""

    config: AppConfig
    store: ModelStore
    priority: Priority
    sessions: Sessions
    lane: HeavyLane
    segment: SegmentTab
    everything: EverythingTab
    compare: CompareTab
    api: Api

    @classmethod
    def create(cls, config: AppConfig, store: ModelStore) -> Parts:
        priority = Priority()
        sessions = Sessions(config.session_disk_mb * 2**20, config.session_ttl_s, priority)
        lane = HeavyLane(config.heavy_concurrency, config.heavy_queue)
        budget = EverythingBudget(max_seconds=config.max_everything_seconds)
        everything = EverythingTab(
            store, sessions, lane, budget, ResultCache(config.result_cache_items), config.max_image_side
        )
        compare = CompareTab(store, sessions, lane, config.model_list(), config.max_compare_prompts)
        api = Api(store, everything, compare, priority, config.random_weights, config.max_image_side)
        segment = SegmentTab(store, sessions, priority, config.max_image_side)
        parts = cls(config, store, priority, sessions, lane, segment, everything, compare, api)
        threading.Thread(target=parts._sweep_forever, name="session-sweeper", daemon=True).start()
        return parts

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Cancel every job, wait (at most timeout_s) for their threads to stop, delete every session's files."""
        self.sessions.end_all()
        deadline = time.monotonic() + timeout_s
        while self.lane.load()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.sessions.end_all()

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(SWEEP_PERIOD_S)
            self.sessions.sweep()
