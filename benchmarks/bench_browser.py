"""The mask decoder in the page (headless Debian chromium, onnxruntime-web's WebAssembly build), one run.

Serves the decoder harness (tests/support/browser_harness, not the app) from a local server, plain (one thread) and
cross-origin isolated (COOP/COEP: ISOLATED_THREADS threads), with onnxruntime-web in its worker (the page's
default: decoding never blocks the page) and on the main thread, each mode in a fresh browser. Prints, per mode:
the decode time in the page p50/p95 (one point, after warm-up; with the worker it includes sending the embedding
to it), the harness's mouse move -> mask drawn p50/p95 (playwright moves over the canvas every 40 ms), the
first-visit bytes on the wire (onnxruntime-web, the decoder, our modules, the first embedding), the bytes per new
image (one embedding file), and the machine's load.

    python -m benchmarks.bench_browser [--weights FILE] [--image PATH] [--runs 30] [--weights-dtype float16]
        [--modes plain,plain-main,isolated,isolated-main]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.support.browser_harness.server import harness_url, serve_harness

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO.parent / "shared" / "conformance"
CHROMIUM = "/usr/bin/chromium"
DISPLAY_SIDE = 1024
WARMUP = 5
ISOLATED_THREADS = 2  # the page's default is half the logical cores (webapp/browser/runtime.js threadCount)
MODES = {  # name: (cross-origin isolated, onnxruntime-web in its worker)
    "plain": (False, True),
    "plain-main": (False, False),
    "isolated": (True, True),
    "isolated-main": (True, False),
}


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  (n={len(ordered)})"


def _prepare(args: argparse.Namespace, folder: Path):
    from mobile_sam import SamPredictor, sam_model_registry
    from webapp.decoder_cache import DecoderCache, DecoderSettings, weights_sha256
    from webapp.embedding_file import EmbeddingHeader, write_embedding
    from webapp.ort_files import OrtRelease, ensure_ort_files
    from webapp.web_assets import WebAssets

    if args.weights is not None and args.weights.is_file():
        sam = sam_model_registry["vit_t"](args.weights).eval()
        sha256 = hashlib.sha256(args.weights.read_bytes()).hexdigest()
    else:
        torch.manual_seed(0)
        sam = sam_model_registry["vit_t"](None).eval()
        sha256 = weights_sha256(sam)
    decoders = DecoderCache(folder / "decoders", DecoderSettings(weights_dtype=args.weights_dtype))
    decoder = decoders.decoder(sam, sha256)
    image = np.array(Image.open(args.image).convert("RGB"))
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    header = EmbeddingHeader(
        predictor.original_size, predictor.input_size, sam.image_size, sam.mask_threshold, "vit_t", decoder.name
    )
    embedding = write_embedding(folder / "image.bin", predictor.features.numpy(), header)
    release = OrtRelease.from_lockfile()
    assets = WebAssets(ensure_ort_files(), release.version, decoders)
    scale = min(1.0, DISPLAY_SIDE / max(image.shape[:2]))
    display = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    files = {"first.bin": embedding, "second.bin": embedding}
    return assets, files, display, (predictor.original_size[1] / 2, predictor.original_size[0] / 3)


def _wire_bytes(requests: list) -> dict[str, int]:
    """Bytes on the wire (headers + encoded body) per kind of file."""
    kinds = {"onnxruntime-web": "/mobile-sam/ort/", "decoder": "/mobile-sam/decoders/", "modules": "/mobile-sam/js/"}
    totals = dict.fromkeys([*kinds, "embedding", "harness page"], 0)
    for request in requests:
        sizes = request.sizes()
        size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        kind = next((k for k, prefix in kinds.items() if prefix in request.url), None)
        kind = kind or ("embedding" if "/files/" in request.url else "harness page")
        totals[kind] += size
    return totals


def _run_mode(playwright, assets, files, display, point, mode: str, runs: int) -> None:
    isolate, worker = MODES[mode]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
    try:
        context = browser.new_context(viewport={"width": display[0] + 40, "height": display[1] + 80})
        page = context.new_page()
        page.set_default_timeout(180_000)
        finished = []
        page.on("requestfinished", lambda request: finished.append(request))
        with serve_harness(assets, files, isolate=isolate) as base:
            threads = {"threads": str(ISOLATED_THREADS)} if isolate else {}
            page.goto(harness_url(base, assets, "/files/first.bin", display, proxy="1" if worker else "0", **threads))
            page.wait_for_function("window.harnessReady === true")
            state = page.evaluate("harness.load('/files/first.bin')")
            if state != "ready":
                raise SystemExit(f"the page could not decode: {page.evaluate('harness.events')}")
            first_visit = _wire_bytes(finished)
            finished.clear()
            page.evaluate("harness.load('/files/second.bin')")
            per_image = sum(_wire_bytes(finished).values())
            prompt = {"points": [list(point)], "labels": [1], "boxes": []}
            page.evaluate(f"(p) => harness.time(p, {WARMUP})", prompt)
            times = page.evaluate(f"(p) => harness.time(p, {runs})", prompt)
            box = page.locator("#mask").bounding_box()
            page.mouse.move(box["x"] + 10, box["y"] + 10)
            for step in range(runs):
                fraction = 0.1 + 0.8 * step / runs
                page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * (1 - fraction))
                page.wait_for_timeout(40)
            page.evaluate("harness.preview.idle()")
            latencies = page.evaluate("harness.latencies")
            stats = page.evaluate("({...harness.preview.stats})")
            threads = page.evaluate("harness.threads")
            isolated = page.evaluate("crossOriginIsolated")
    finally:
        browser.close()
    where = "onnxruntime-web's worker" if worker else "the main thread"
    print(f"{mode}: crossOriginIsolated={isolated}, {threads} thread(s), in {where}")
    print(f"  decode in the page        {_percentiles(times)}")
    print(
        f"  mouse move -> mask drawn  {_percentiles(latencies)}  ({stats['moves']} moves, {stats['decodes']} decodes)"
    )
    total = sum(first_visit.values())
    parts = ", ".join(f"{kind} {size / 1e6:.2f}" for kind, size in first_visit.items())
    print(f"  first visit: {total / 1e6:.2f} MB on the wire ({parts})")
    print(f"  per new image: {per_image / 1e6:.3f} MB (the embedding file)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=CONFORMANCE / "mobile_sam_vit_t_seed0.pt")
    parser.add_argument("--image", type=Path, default=CONFORMANCE / "dogs.jpg")
    parser.add_argument("--runs", type=int, default=30, help="timed decodes and mouse moves per mode")
    parser.add_argument("--weights-dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose among {', '.join(MODES)}")
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"no chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    with tempfile.TemporaryDirectory() as folder:
        assets, files, display, point = _prepare(args, Path(folder))
        print(f"image {args.image.name}, display {display[0]}x{display[1]}, decoder weights {args.weights_dtype}")
        with sync_playwright() as playwright:
            for mode in args.modes.split(","):
                _run_mode(playwright, assets, files, display, point, mode, args.runs)
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")


if __name__ == "__main__":
    main()
