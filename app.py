"""
MobileSAM web demo: segment anything, segment everything, compare SAM / MobileSAM / FastSAM.

The entry point: read the settings, build the app (`webapp.blocks.build_app`), serve it until Ctrl-C or
SIGTERM, then stop every job and delete every visitor's files. Everything else lives in `webapp/`.

    python app.py --help
"""

from __future__ import annotations

from webapp.config import AppConfig, check_app_packages, parse_args

if __name__ == "__main__":
    CONFIG = parse_args()  # --help and bad options answer before the slow imports below
    check_app_packages()

import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from webapp.blocks import build_app, new_store, serve  # noqa: E402
from webapp.model_store import ModelStore  # noqa: E402

__all__ = ["AppConfig", "ModelStore", "build_app", "main", "new_store", "parse_args", "serve"]


def main(config: AppConfig) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop every job and delete every visitor's files."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics must never download or pip-install at run time
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((config.host, config.port))
    except OSError as error:
        raise SystemExit(
            f"error: --port {config.port} on --host {config.host} is not available ({error.strerror}); "
            "choose another with --port."
        ) from error
    try:
        demo = build_app(config, new_store(config))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve(
        demo,
        server_name=config.host,
        server_port=config.port,
        share=config.share,
        max_file_size=config.max_file_size,
        prevent_thread_lock=True,
    )
    while not stop.wait(0.5):
        pass
    print("Stopping: cancelling jobs and deleting session files ...", flush=True)
    demo.mobile_sam_parts.shutdown()
    demo.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # torch's worker threads are idle now; skip interpreter teardown, which can abort on them


if __name__ == "__main__":
    main(CONFIG)
