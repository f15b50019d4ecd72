"""
Per-visitor state kept on the server: the segment tab's prompts, the session's running jobs and
its download files, by Gradio session id.

Every event of one session reads and writes its state under the session's lock, so quick clicks
never overwrite each other. A session ends when its browser tab closes (Gradio's unload event),
after `ttl_s` idle seconds, or when the server stops: its jobs are cancelled, its files deleted and
the `on_end` callbacks told. All sessions' files together stay under `max_bytes` (the oldest files go
first). A session's files are result folders (`new_folder`: the last few kept) and named folders
(`named_folder`: one per name, e.g. the current image's embedding for the page), counted alike.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scheduling import JobControl, Priority

DIRECT = "direct"  # the session of calls without a Gradio request (tests, scripts)
NAMED_PREFIX = "named-"  # named folders; new_folder's rotation leaves them alone


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
        self._on_end: list[Callable[[str], None]] = []

    def on_end(self, callback: Callable[[str], None]) -> None:
        """Call callback(session id) whenever a session ends (after its files are deleted)."""
        self._on_end.append(callback)

    def session(self, request: Any) -> Session:
        """The session of a gr.Request (or DIRECT without one), created on first use."""
        session_id = session_key(request)
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
        older = sorted(
            (p for p in session.folder.iterdir() if p != folder and not p.name.startswith(NAMED_PREFIX)),
            key=lambda p: p.stat().st_mtime,
        )
        for stale in older[: max(0, len(older) - keep + 1)]:
            shutil.rmtree(stale, ignore_errors=True)
        return folder

    def named_folder(self, request: Any, name: str) -> Path:
        """The session's folder called name (created when missing): kept by new_folder, counted in the cap,
        deleted with the session."""
        if not name.isidentifier():
            raise ValueError(f"a folder name must be an identifier, got {name!r}")
        folder = self.session(request).folder / f"{NAMED_PREFIX}{name}"
        folder.mkdir(parents=True, exist_ok=True)
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
        self._end(session_key(request))

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
        for callback in self._on_end:
            callback(session_id)


def session_key(request: Any) -> str:
    """The session id of a gr.Request (its session hash, as a safe folder name), DIRECT without one."""
    return session_id_of(getattr(request, "session_hash", None))


def session_id_of(session_hash: str | None) -> str:
    """A Gradio session hash as the session id (a safe folder name); DIRECT for none."""
    raw = session_hash or DIRECT
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in raw)[:64] or DIRECT


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
