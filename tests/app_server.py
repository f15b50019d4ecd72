"""Serve the app on a free 127.0.0.1 port for a test module (gradio_client and browser tests)."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import app
from mobile_sam.model_store import ModelStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_app(config: app.AppConfig, store: ModelStore) -> Iterator[str]:
    """Launch the app in this process without blocking; yield its URL; close it afterwards."""
    demo = app.build_app(config, store)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, max_file_size=config.max_file_size
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
