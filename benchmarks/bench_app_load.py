"""The app under load: click latency idle vs while heavy jobs run, heavy job times, and how fast Stop frees the CPU.

Starts `python app.py` (random weights unless --checkpoints) in a child process and drives it through
gradio_client: `--clients` threads send `--clicks` clicks each to `/segment` on an already encoded image,
first with the server idle, then while `--heavy` segment-everything jobs run. Prints p50/p95 of both and
their ratio (the fast-lane goal: loaded p95 at most 2x idle p95), each heavy job's time alone, and the
seconds from `job.cancel()` to the server's CPU going idle (from the process's CPU time).

    python -m benchmarks.bench_app_load [--clients 8] [--clicks 5] [--heavy 2] [--points-per-side 64]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "assets" / "cat_chelsea.jpg"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _cpu_rate(process: psutil.Process, seconds: float) -> float:
    before = _cpu(process)
    time.sleep(seconds)
    return (_cpu(process) - before) / seconds


def _clicks(url: str, clients: int, clicks: int) -> list[float]:
    from gradio_client import Client, handle_file

    latencies: list[float] = []

    def run(index: int) -> None:
        client = Client(url, verbose=False)
        for k in range(clicks):
            prompts = json.dumps({"points": [[40 + 40 * index, 60 + 40 * k]], "labels": [1]})
            start = time.perf_counter()
            client.predict(handle_file(str(PHOTO)), prompts, True, api_name="/segment")
            latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _heavy_args(points_per_side: int) -> tuple:
    return (points_per_side, 0.0, 0.0, 0.7, 0, 0, 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--clicks", type=int, default=5, help="clicks per client")
    parser.add_argument("--heavy", type=int, default=2, help="segment-everything jobs running during the loaded run")
    parser.add_argument("--points-per-side", type=int, default=64, help="grid of each heavy job")
    parser.add_argument("--checkpoints", action="store_true", help="use the real checkpoints instead of random weights")
    args = parser.parse_args(argv)
    from gradio_client import Client, handle_file

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [
        sys.executable,
        str(REPO / "app.py"),
        "--port",
        str(port),
        "--max-everything-seconds",
        "1e9",
        "--heavy-concurrency",
        str(args.heavy),
        "--no-download",
    ]
    if not args.checkpoints:
        command.append("--random-weights")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "YOLO_OFFLINE": "1"}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            process = psutil.Process(server.pid)
            client = Client(url, verbose=False)
            client.predict(
                handle_file(str(PHOTO)), json.dumps({"points": [[10, 10]], "labels": [1]}), True, api_name="/segment"
            )
            idle = _clicks(url, args.clients, args.clicks)

            start = time.perf_counter()
            client.predict(handle_file(str(PHOTO)), *_heavy_args(16), api_name="/everything")
            alone = time.perf_counter() - start

            jobs = [
                Client(url, verbose=False).submit(
                    handle_file(str(PHOTO)), *_heavy_args(args.points_per_side), api_name="/everything"
                )
                for _ in range(args.heavy)
            ]
            while _cpu_rate(process, 1.0) < 0.5:
                pass
            loaded = _clicks(url, args.clients, args.clicks)
            cancelled = time.perf_counter()
            for job in jobs:
                job.cancel()
            while _cpu_rate(process, 0.25) > 0.1:
                pass
            stop_seconds = time.perf_counter() - cancelled - 0.25
        finally:
            server.terminate()
            server.wait(timeout=60)

    def row(name: str, values: list[float]) -> str:
        p50, p95 = statistics.median(values), np.percentile(values, 95)
        return f"{name:<22} p50 {p50:6.3f} s   p95 {p95:6.3f} s   n={len(values)}"

    print(
        f"{args.clients} clients x {args.clicks} clicks on /segment (cached embedding), "
        f"{'real' if args.checkpoints else 'random'} weights, {psutil.cpu_count()} CPUs"
    )
    print(row("idle", idle))
    print(row(f"{args.heavy} heavy jobs running", loaded))
    print(f"loaded / idle p95: {np.percentile(loaded, 95) / np.percentile(idle, 95):.2f} (goal: <= 2)")
    print(f"heavy job alone (16 points per side on {PHOTO.name}): {alone:.1f} s")
    print(f"cancel -> CPU idle: {stop_seconds:.2f} s (goal: <= 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
