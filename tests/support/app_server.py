"""Serve the app on a free 127.0.0.1 port for a test module (gradio_client and browser tests), in this
process or as `python app.py` in a child process (to measure its CPU time and send it signals)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

import app
from webapp.model_store import ModelStore

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_demo(config: app.AppConfig, store: ModelStore) -> Iterator[tuple[str, object]]:
    """Launch the app in this process without blocking, as app.py does (`app.serve`); yield its URL and Blocks;
    close it afterwards."""
    demo = app.build_app(config, store)
    port = free_port()
    app.serve(
        demo,
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=config.max_file_size,
    )
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.mobile_sam_parts.shutdown()
        demo.close()


@contextmanager
def served_app(config: app.AppConfig, store: ModelStore) -> Iterator[str]:
    """served_demo's URL only."""
    with served_demo(config, store) as (url, _):
        yield url


@dataclass
class AppProcess:
    """`python app.py` running in a child process: its URL, process and temporary folder (TMPDIR)."""

    url: str
    process: subprocess.Popen
    tmpdir: Path

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its children so far."""
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def session_root(self) -> Path | None:
        """The app's folder of visitors' files (None once deleted)."""
        return next(iter(self.tmpdir.glob("mobile-sam-app-*")), None)


@contextmanager
def launched_app(tmpdir: Path, *args: str, timeout_s: float = 240.0) -> Iterator[AppProcess]:
    """Start app.py with args on a free port (TMPDIR=tmpdir); wait until it answers; stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "YOLO_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmpdir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--port", str(port), *args],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{(tmpdir / 'server.log').read_text()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("app.py did not answer in time")
            time.sleep(0.5)
        yield AppProcess(url, process, tmpdir)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
        log.close()
