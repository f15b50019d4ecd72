"""
Per-visitor state kept on the server: the segment tab's prompts, the session's running jobs and
its download files, by Gradio session id.

Every event of one session reads and writes its state under the session's lock, so quick clicks
never overwrite each other. A session ends when its browser tab closes (Gradio's unload event),
after `ttl_s` idle seconds, or when the server stops: its jobs are cancelled and its files deleted.
All sessions' files together stay under `max_bytes` (the oldest files go first).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scheduling import JobControl, Priority

DIRECT = "direct"  # the session of calls without a Gradio request (tests, scripts)


@dataclass
class Session:
    """One visitor: state by name, running jobs, files folder, last activity."""

    folder: Path
    lock: threading.RLock = field(default_factory=threading.RLock)
    state: dict[str, Any] = field(default_factory=dict)
    jobs: set[JobControl] = field(default_factory=set)
    last_seen: float = field(default_factory=time.monotonic)


class Sessions:
    """The server's sessions, their files under one work folder, and the disk cap."""

    def __init__(self, max_bytes: int, ttl_s: float, priority: Priority | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mobile-sam-app-"))
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.priority = priority
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def session(self, request: Any) -> Session:
        """The session of a gr.Request (or DIRECT without one), created on first use."""
        session_id = _session_id(request)
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = Session(folder=self.root / session_id)
                self._sessions[session_id] = session
            session.last_seen = time.monotonic()
            return session

    @contextmanager
    def job(self, request: Any) -> Iterator[JobControl]:
        """A JobControl registered with the session while the block runs (ending the session cancels it)."""
        session = self.session(request)
        control = JobControl(self.priority)
        with session.lock:
            session.jobs.add(control)
        try:
            yield control
        finally:
            with session.lock:
                session.jobs.discard(control)

    def cancel_jobs(self, request: Any) -> None:
        """Stop every running job of the request's session."""
        session = self.session(request)
        with session.lock:
            for control in session.jobs:
                control.cancel()

    def new_folder(self, request: Any, keep: int = 3) -> Path:
        """A new folder for one result's files; the session keeps its last few, all sessions stay under the cap."""
        session = self.session(request)
        session.folder.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=session.folder))
        older = sorted((p for p in session.folder.iterdir() if p != folder), key=lambda p: p.stat().st_mtime)
        for stale in older[: max(0, len(older) - keep + 1)]:
            shutil.rmtree(stale, ignore_errors=True)
        return folder

    def enforce_cap(self) -> None:
        """Delete the oldest result folders of any session until all files fit in max_bytes."""
        if not self.root.is_dir():
            return
        folders = [p for session in self.root.iterdir() if session.is_dir() for p in session.iterdir() if p.is_dir()]
        sizes = {folder: _size(folder) for folder in folders}
        total = sum(sizes.values())
        for folder in sorted(folders, key=lambda p: p.stat().st_mtime):
            if total <= self.max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= sizes[folder]

    def end(self, request: Any) -> None:
        """End the request's session: cancel its jobs, delete its files and state."""
        self._end(_session_id(request))

    def sweep(self) -> None:
        """End sessions idle for longer than ttl_s and apply the disk cap."""
        now = time.monotonic()
        with self._lock:
            idle = [sid for sid, s in self._sessions.items() if now - s.last_seen > self.ttl_s and not s.jobs]
        for session_id in idle:
            self._end(session_id)
        self.enforce_cap()

    def end_all(self) -> None:
        """Cancel every job and delete every file (server shutdown)."""
        with self._lock:
            ids = list(self._sessions)
        for session_id in ids:
            self._end(session_id)
        shutil.rmtree(self.root, ignore_errors=True)

    def active_jobs(self) -> int:
        with self._lock:
            return sum(len(s.jobs) for s in self._sessions.values())

    def _end(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return
        with session.lock:
            for control in session.jobs:
                control.cancel()
            session.state.clear()
        shutil.rmtree(session.folder, ignore_errors=True)


def _session_id(request: Any) -> str:
    raw = getattr(request, "session_hash", None) or DIRECT
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in raw)[:64] or DIRECT


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
