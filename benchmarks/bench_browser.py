"""Masks in the visitor's browser, in the real app (headless Debian chromium, onnxruntime-web's WebAssembly build).

Serves the app (as `python app.py --random-weights` does, with the conformance weights as its random MobileSAM
where they exist, so that masks are not empty) once per mode: plain (one decoder thread) and cross-origin isolated
(`--cross-origin-isolation`, the page's decoder on ISOLATED_THREADS threads). In a fresh browser per mode it uploads
a photo (default: ../shared/images/truck.jpg enlarged to 2048x1366) and prints:
- the decode time in the page p50/p95 (one point on the uploaded image, after warm-up; onnxruntime-web in the
  page's decoder worker, as the page runs it),
- mouse move -> mask on screen p50/p95 (playwright moves over the canvas every 40 ms; until the next frame after
  the mask is drawn),
- the first visit's bytes on the wire for the page's decoder (onnxruntime-web, the decoder, our modules, the first
  embedding) and for Gradio's page, and the bytes per new image (a second upload's embedding file),
- the server's click round trip p50/p95: a click (preview off: the server path alone) until the new canvas image
  has loaded in the page, each from the same prompts (the prompts are cleared between clicks),
and the machine's load before and after.

    python -m benchmarks.bench_browser [--image PATH] [--weights FILE] [--runs 30] [--modes plain,isolated]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CHROMIUM = "/usr/bin/chromium"
PHOTO_SIZE = (2048, 1366)
WARMUP = 5
ISOLATED_THREADS = 2  # the page's default is half the logical cores (webapp/browser/runtime.js threadCount)
MODES = {"plain": False, "isolated": True}  # name: cross-origin isolated
TIMEOUT_MS = 180_000
KINDS = {
    "onnxruntime-web": "/mobile-sam/ort/",
    "decoder": "/mobile-sam/decoders/",
    "modules": "/mobile-sam/js/",
    "embedding": "/mobile-sam/embeddings/",
}
# Times of mouse presses and of the canvas image's loads, in the page (performance.now()).
TIMING_SCRIPT = """
window.benchTimes = {presses: [], canvases: []};
document.addEventListener('mousedown', () => window.benchTimes.presses.push(performance.now()), true);
document.addEventListener('load', (event) => {
  const canvas = event.target.matches && event.target.matches('#segment-canvas img');
  if (canvas) window.benchTimes.canvases.push(performance.now());
}, true);
"""


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  (n={len(ordered)})"


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1/5/15 min)"


def _photos(image: Path | None, folder: Path) -> tuple[Path, Path]:
    """The photo to upload and a second one (mirrored) for the bytes per new image."""
    if image is None:
        source = Image.open(SHARED / "images" / "truck.jpg").convert("RGB").resize(PHOTO_SIZE, Image.LANCZOS)
    else:
        source = Image.open(image).convert("RGB")
    first, second = folder / "photo.png", folder / "photo_mirrored.png"
    source.save(first)
    Image.fromarray(np.ascontiguousarray(np.array(source)[:, ::-1])).save(second)
    return first, second


def _wire_bytes(requests: list) -> dict[str, int]:
    """Bytes on the wire (headers + encoded body) per kind of file; the rest is Gradio's page."""
    totals = dict.fromkeys([*KINDS, "Gradio's page"], 0)
    for request in requests:
        sizes = request.sizes()
        kind = next((k for k, prefix in KINDS.items() if prefix in request.url), "Gradio's page")
        totals[kind] += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    return totals


def _wait_ready(page) -> None:
    page.wait_for_function("() => window.mobileSamSegment && window.mobileSamSegment.ready")


def _upload(page, path: Path) -> None:
    old = page.evaluate("window.mobileSamSegment.embeddingUrl")
    if old is not None:
        page.locator("#segment-upload button[aria-label='Clear']").click()
        page.wait_for_function("() => window.mobileSamSegment.embeddingUrl === null")
    page.set_input_files("#segment-upload input[type=file]", str(path))
    page.wait_for_function(
        "(old) => window.mobileSamSegment.embeddingUrl && window.mobileSamSegment.embeddingUrl !== old", arg=old
    )
    _wait_ready(page)


def _run_mode(playwright, url: str, photos: tuple[Path, Path], mode: str, runs: int) -> None:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        if MODES[mode]:  # threadCount() gives half the logical cores: ask for ISOLATED_THREADS
            page.add_init_script(
                f"Object.defineProperty(navigator, 'hardwareConcurrency', {{get: () => {2 * ISOLATED_THREADS}}})"
            )
        page.add_init_script(TIMING_SCRIPT)
        finished = []
        page.on("requestfinished", lambda request: finished.append(request))
        page.goto(url)
        page.wait_for_selector("#segment-upload")
        page.wait_for_function("() => window.mobileSamSegment !== undefined")
        _upload(page, photos[0])
        page.wait_for_timeout(500)  # the canvas image and the warm-up decode
        first_visit = _wire_bytes(finished)
        finished.clear()
        _upload(page, photos[1])
        per_image = _wire_bytes(finished)["embedding"]
        threads = page.evaluate("window.mobileSamSegment.controller.decoder.threads")
        isolated = page.evaluate("crossOriginIsolated")

        height, width = page.evaluate("window.mobileSamSegment.server.image")
        prompt = {"points": [[width / 2, height / 3]], "labels": [1], "boxes": []}
        timing = """async ([prompt, n]) => {
          const controller = window.mobileSamSegment.controller, times = [];
          for (let i = 0; i < n; i++) {
            const start = performance.now();
            await controller.decode(prompt);
            times.push(performance.now() - start);
          }
          return times;
        }"""
        page.evaluate(timing, [prompt, WARMUP])
        decodes = page.evaluate(timing, [prompt, runs])

        box = page.locator("#segment-canvas img").bounding_box()
        page.evaluate("window.mobileSamSegment.stats.hover.length = 0")
        page.mouse.move(box["x"] + 10, box["y"] + 10)
        for step in range(runs):
            fraction = 0.1 + 0.8 * step / runs
            page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * (1 - fraction))
            page.wait_for_timeout(40)
        page.evaluate("window.mobileSamSegment.preview.idle()")
        page.wait_for_timeout(100)
        hover = page.evaluate("window.mobileSamSegment.stats.hover")
        stats = page.evaluate("({...window.mobileSamSegment.preview.stats})")

        page.locator("#segment-preview input").uncheck()
        clicks = []
        for index in range(min(runs, 15) + 1):
            before = page.evaluate("window.benchTimes.canvases.length")
            page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4)
            page.wait_for_function("(n) => window.benchTimes.canvases.length > n", arg=before)
            times = page.evaluate("window.benchTimes")
            if index:  # the first click is a warm-up
                clicks.append(times["canvases"][-1] - times["presses"][-1])
            before = page.evaluate("window.benchTimes.canvases.length")
            page.get_by_role("button", name="Clear prompts").click()
            page.wait_for_function("(n) => window.benchTimes.canvases.length > n", arg=before)
    finally:
        browser.close()
    where = "onnxruntime-web in the page's decoder worker"
    print(f"{mode}: crossOriginIsolated={isolated}, {threads} decoder thread(s), {where}")
    print(f"  decode in the page            {_percentiles(decodes)}")
    print(
        f"  mouse move -> mask on screen  {_percentiles(hover)}  ({stats['moves']} moves, {stats['decodes']} decodes)"
    )
    decoder_bytes = sum(size for kind, size in first_visit.items() if kind in KINDS)
    parts = ", ".join(f"{kind} {size / 1e6:.2f}" for kind, size in first_visit.items())
    print(f"  first visit: {decoder_bytes / 1e6:.2f} MB for the page's decoder on the wire ({parts} MB)")
    print(f"  per new image: {per_image / 1e6:.3f} MB (the embedding file)")
    print(f"  server click round trip       {_percentiles(clicks)}  (click -> new canvas loaded, preview off)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=None, help="photo to upload (default: truck.jpg at 2048x1366)")
    parser.add_argument("--weights", type=Path, default=SHARED / "conformance" / "mobile_sam_vit_t_seed0.pt")
    parser.add_argument("--runs", type=int, default=30, help="timed decodes and mouse moves per mode")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose among {', '.join(MODES)}")
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"no chromium at {CHROMIUM}")
    sys.path.insert(0, str(REPO / "tests"))
    from playwright.sync_api import sync_playwright
    from support.app_models import ConformanceStore
    from support.app_server import served_app

    import app
    from webapp.model_store import ModelStore

    print(f"load before: {_load()}")
    with tempfile.TemporaryDirectory() as folder:
        photos = _photos(args.image, Path(folder))
        weights = args.weights.name if args.weights.is_file() else "random"
        with Image.open(photos[0]) as photo:
            print(f"image {photo.width}x{photo.height}; weights: {weights}")
        with sync_playwright() as playwright:
            for mode in args.modes.split(","):
                config = app.AppConfig(random_weights=True, download=False, cross_origin_isolation=MODES[mode])
                options = {"checkpoint_dir": Path(folder) / "cache"}
                if args.weights.is_file():
                    store = ConformanceStore(args.weights, **options)
                else:
                    store = ModelStore("cpu", download=False, **options)
                with served_app(config, store) as url:
                    _run_mode(playwright, url, photos, mode, args.runs)
    print(f"load after: {_load()}")


if __name__ == "__main__":
    main()
