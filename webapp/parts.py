"""The server's shared parts, built once from an AppConfig: lanes, sessions, caches and each tab's handlers."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from samkit.checkpoints import default_cache_dir

from .api import Api
from .browser_decoding import BrowserDecoding
from .compare_tab import CompareTab
from .config import AppConfig
from .everything_compare import EverythingCompareJobs
from .everything_jobs import EverythingBudget, ResultCache
from .everything_tab import EverythingTab
from .model_store import ModelStore
from .ort_files import OrtFilesError
from .scheduling import HeavyLane, Priority
from .segment import SegmentTab
from .sessions import Sessions, session_id_of

SWEEP_PERIOD_S = 30.0
DECODER_FOLDER = "decoders"  # in the checkpoint folder: the page's decoder files (webapp.decoder_cache)


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
    everything_compare: EverythingCompareJobs
    api: Api
    browser: BrowserDecoding | None  # the page's decoder (None with --no-browser-decoder)

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
        everything_compare = EverythingCompareJobs(everything, config.result_cache_items)
        api = Api(
            store, everything, compare, everything_compare, priority, config.random_weights, config.max_image_side
        )
        browser = None
        if config.browser_decoder:
            decoder_dir = (store.checkpoint_dir or default_cache_dir()) / DECODER_FOLDER
            browser = BrowserDecoding(decoder_dir, max_decoders=config.decoder_cache_items, session_key=session_id_of)
            sessions.on_end(browser.forget)
        segment = SegmentTab(store, sessions, priority, config.max_image_side, browser)
        parts = cls(
            config, store, priority, sessions, lane, segment, everything, compare, everything_compare, api, browser
        )
        threading.Thread(target=parts._sweep_forever, name="session-sweeper", daemon=True).start()
        return parts

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Cancel every job, wait (at most timeout_s) for their threads to stop, delete every session's files."""
        self.sessions.end_all()
        deadline = time.monotonic() + timeout_s
        while self.lane.load()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.sessions.end_all()

    def warm_model(self) -> object | None:
        """The segment tab's model for the configured weights when it loads without a download (else None): the
        model whose page decoder is prepared at start."""
        return self.segment.loadable_model(self.config.random_weights)

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(SWEEP_PERIOD_S)
            self.sessions.sweep()


def _browser_decoding(config: AppConfig, store: ModelStore) -> BrowserDecoding | None:
    """The page decoder's server side, its decoder files in the checkpoint folder; None (with a line on stderr)
    where the pinned onnxruntime-web release is unknown (no package-lock.json)."""
    try:
        return BrowserDecoding(
            (store.checkpoint_dir or default_cache_dir()) / DECODER_FOLDER,
            max_decoders=config.decoder_cache_items,
            session_key=session_id_of,
        )
    except OrtFilesError as error:
        print(f"In-browser decoder off: {error}", file=sys.stderr, flush=True)
        return None
