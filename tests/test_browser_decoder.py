"""The mask decoder in a real browser (Debian chromium, headless, playwright) on the conformance weights: the page's
masks agree with our torch `SamPredictor` at display size, hovering makes no request, failures and the toggle
give the fallback signal. The page is a harness (tests/support/browser_harness), not the app.

onnxruntime-web's files are put in place once for the session (`ensure_ort_files`: node_modules, `npm ci` or the
npm registry); the pages themselves only reach the local server.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from support.browser_harness.server import harness_url, serve_harness

from mobile_sam import SamPredictor, sam_model_registry
from mobile_sam.onnx.export import export_decoder
from webapp.decoder_cache import DecoderCache
from webapp.embedding_file import EmbeddingHeader, write_embedding
from webapp.ort_files import OrtRelease, ensure_ort_files
from webapp.web_assets import WebAssets

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TIMEOUT_MS = 120_000
MIN_DISPLAY_IOU = 0.98
DISPLAY_SIDE = 1024  # the app's canvas (webapp.segment.DISPLAY_SIDE)
# Logits at the original size against torch's postprocess_masks: float16 embedding and weights, wasm arithmetic.
LOGITS_ATOL = 0.01
PROMPTS = {
    "one point": {"points": [[653.46, 190.45]], "labels": [1], "boxes": []},
    "point and background point": {"points": [[142.34, 68.27], [804.66, 500.61]], "labels": [1, 0], "boxes": []},
    "box": {"points": [], "labels": [], "boxes": [[638.88, 325.18, 757.42, 537.61]]},
    "box and point": {"points": [[732.95, 145.04]], "labels": [1], "boxes": [[56.24, 48.38, 840.74, 495.46]]},
    "three points": {"points": [[847.46, 321.5], [364.23, 264.2], [131.49, 120.25]], "labels": [1, 1, 0], "boxes": []},
    "two boxes and a point": {
        "points": [[690.0, 300.0]],
        "labels": [1],
        "boxes": [[678.0, 238.4, 700.6, 364.1], [428.8, 103.5, 717.8, 421.7]],
    },
}


@pytest.fixture(scope="module")
def sam(conformance_dir):
    return sam_model_registry["vit_t"](checkpoint=conformance_dir / "mobile_sam_vit_t_seed0.pt").eval()


@pytest.fixture(scope="module")
def predictor(sam, conformance_dir) -> SamPredictor:
    predictor = SamPredictor(sam)
    predictor.set_image(np.array(Image.open(conformance_dir / "dogs.jpg").convert("RGB")))
    return predictor


@pytest.fixture(scope="module")
def assets(sam, conformance_dir, tmp_path_factory) -> WebAssets:
    release = OrtRelease.from_lockfile()
    decoders = DecoderCache(tmp_path_factory.mktemp("decoders"))
    sha256 = hashlib.sha256((conformance_dir / "mobile_sam_vit_t_seed0.pt").read_bytes()).hexdigest()
    decoders.decoder(sam, sha256)
    return WebAssets(ensure_ort_files(), release.version, decoders)


@pytest.fixture(scope="module")
def files(sam, predictor, assets, conformance_dir, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("files")
    sha256 = hashlib.sha256((conformance_dir / "mobile_sam_vit_t_seed0.pt").read_bytes()).hexdigest()
    decoder = assets.decoders.decoder(sam, sha256)
    header = EmbeddingHeader(
        predictor.original_size, predictor.input_size, sam.image_size, sam.mask_threshold, "vit_t", decoder.name
    )
    unsupported = EmbeddingHeader(**{**header.__dict__, "decoder": "decoder-0000000000000000.onnx"})
    export_decoder(sam, assets.decoders.folder / unsupported.decoder)  # the official graph: other inputs
    return {
        "dogs.bin": write_embedding(folder / "dogs.bin", predictor.features.numpy(), header),
        "official.bin": write_embedding(folder / "official.bin", predictor.features.numpy(), unsupported),
    }


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (install Debian's chromium: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(assets, files):
    with serve_harness(assets, files) as base:
        yield base


def _open(browser, base: str, assets: WebAssets, size: tuple[int, int], **overrides: str):
    page = browser.new_page(viewport={"width": size[0] + 40, "height": size[1] + 80})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(harness_url(base, assets, "/files/dogs.bin", size, **overrides))
    page.wait_for_function("window.harnessReady === true")
    return page


@pytest.fixture(scope="module")
def page(browser, server, assets, predictor):
    height, width = _display_size(predictor.original_size)
    page = _open(browser, server, assets, (width, height))
    assert page.evaluate("harness.load('/files/dogs.bin')") == "ready"
    yield page
    page.close()


def _display_size(original: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the app's canvas for an image (longest side at most DISPLAY_SIDE)."""
    scale = min(1.0, DISPLAY_SIDE / max(original))
    return round(original[0] * scale), round(original[1] * scale)


def _server_masks(predictor: SamPredictor, prompt: dict) -> list[np.ndarray]:
    """What the app shows (mobile_sam.session.segment, multimask): one group -> the best of three; several boxes ->
    one single-mask output per box, with the points inside it."""
    points = np.array(prompt["points"], dtype=float).reshape(-1, 2)
    labels = np.array(prompt["labels"])
    boxes = np.array(prompt["boxes"], dtype=float).reshape(-1, 4)
    if len(boxes) <= 1:
        masks, scores, _ = predictor.predict(
            points if len(points) else None,
            labels if len(points) else None,
            boxes[0] if len(boxes) else None,
            multimask_output=True,
        )
        return [masks[np.argmax(scores)]]
    shown = []
    for box in boxes:
        inside = (
            (points[:, 0] >= box[0]) & (points[:, 0] <= box[2]) & (points[:, 1] >= box[1]) & (points[:, 1] <= box[3])
        )
        masks, _, _ = predictor.predict(
            points[inside] if inside.any() else None,
            labels[inside] if inside.any() else None,
            box,
            multimask_output=False,
        )
        shown.append(masks[0])
    return shown


def _unpack(text: str, height: int, width: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))[: height * width].reshape(height, width) > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.parametrize("name", PROMPTS)
def test_page_mask_agrees_with_torch_at_display_size(name, page, predictor):
    prompt = PROMPTS[name]
    height, width = _display_size(predictor.original_size)
    ours = _unpack(page.evaluate("(p) => harness.mask(p)", prompt), height, width)
    # The app's display: each mask resized to the canvas with nearest neighbour (webapp.segment.resize_mask).
    shown = [
        cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        for m in _server_masks(predictor, prompt)
    ]
    reference = np.logical_or.reduce(shown).astype(bool)
    assert reference.any()
    assert _iou(ours, reference) >= MIN_DISPLAY_IOU


def test_page_logits_at_original_size_are_postprocess_masks_logits(page, predictor):
    """Drawn at the image's own size, the page's upsampling is Sam.postprocess_masks' (same crop and scale)."""
    height, width = predictor.original_size
    prompt = PROMPTS["one point"]
    ours = np.frombuffer(base64.b64decode(page.evaluate(f"(p) => harness.logits(p, {width}, {height})", prompt)), "<f4")
    logits, scores, _ = predictor.predict(np.array(prompt["points"]), np.array(prompt["labels"]), return_logits=True)
    reference = logits[np.argmax(scores)]
    assert np.abs(ours.reshape(height, width) - reference).max() <= LOGITS_ATOL


def _canvas_mask(page, width: int, height: int) -> np.ndarray:
    """Where the hover canvas is painted, (height, width) bool."""
    return _unpack(page.evaluate("harness.painted()"), height, width)


def test_hover_shows_the_mask_under_the_cursor_and_makes_no_request(page, predictor):
    height, width = _display_size(predictor.original_size)
    box = page.locator("#mask").bounding_box()
    requests = []

    def log(request) -> None:
        requests.append(request.url)

    page.on("request", log)
    try:
        before = page.evaluate("({...harness.preview.stats})")
        page.mouse.move(box["x"] + 5, box["y"] + 5)
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.3, steps=40)
        page.evaluate("harness.preview.idle()")
        stats = page.evaluate("({...harness.preview.stats})")
        last = page.evaluate("harness.lastDraw")
        shown = _canvas_mask(page, width, height)
    finally:
        page.remove_listener("request", log)
    assert requests == []  # no server call, nothing fetched again
    moves, decodes = stats["moves"] - before["moves"], stats["decodes"] - before["decodes"]
    assert moves >= 40 and 0 < decodes < moves  # throttled: stale moves dropped
    assert page.evaluate("harness.flight.max") == 1
    # The last mask drawn answers the last move: the server's mask for a foreground point there.
    assert abs(last["x"] - 0.6 * box["width"] * predictor.original_size[1] / width) <= 2
    prompt = {"points": [[last["x"], last["y"]]], "labels": [1], "boxes": []}
    expected = cv2.resize(
        _server_masks(predictor, prompt)[0].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
    )
    assert shown.any() and _iou(shown, expected > 0) >= MIN_DISPLAY_IOU

    page.mouse.move(box["x"] + box["width"] + 20, box["y"] + box["height"] + 20)  # leaves the canvas
    page.evaluate("harness.preview.idle()")
    assert not _canvas_mask(page, width, height).any()


def test_toggle_off_gives_the_fallback_signal_and_stops_the_preview(page):
    page.locator("#toggle").uncheck()
    event = page.evaluate("harness.events.at(-1)")
    assert event["state"] == "fallback" and event["reason"] == "off" and event["message"]
    decodes = page.evaluate("harness.preview.stats.decodes")
    box = page.locator("#mask").bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50, steps=5)
    page.wait_for_timeout(100)
    assert page.evaluate("harness.preview.stats.decodes") == decodes
    page.locator("#toggle").check()
    assert page.evaluate("harness.events.at(-1)")["state"] == "ready"


def test_a_failed_load_gives_the_fallback_signal(browser, server, assets, predictor):
    height, width = _display_size(predictor.original_size)
    page = _open(browser, server, assets, (width, height), ort="/mobile-sam/ort/0.0.0/")
    try:
        assert page.evaluate("harness.load('/files/dogs.bin')") == "fallback"
        event = page.evaluate("harness.events.at(-1)")
        assert event["reason"] == "load-failed" and "could not be loaded" in event["message"]
        assert page.evaluate("harness.load('/files/missing.bin')") == "fallback"
    finally:
        page.close()


def test_a_decoder_of_another_graph_is_an_unsupported_model(page):
    assert page.evaluate("harness.load('/files/official.bin')") == "fallback"
    assert page.evaluate("harness.events.at(-1)")["reason"] == "unsupported-model"
    assert page.evaluate("harness.load('/files/dogs.bin')") == "ready"  # the next image decodes again


def test_a_browser_without_webassembly_simd_gets_the_fallback_signal(browser, server, assets, predictor):
    height, width = _display_size(predictor.original_size)
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script("WebAssembly.validate = () => false")  # what a browser without SIMD answers for our probe
    try:
        page.goto(harness_url(server, assets, "/files/dogs.bin", (width, height)))
        page.wait_for_function("window.harnessReady === true")
        assert page.evaluate("harness.load('/files/dogs.bin')") == "fallback"
        event = page.evaluate("harness.events.at(-1)")
        assert event["reason"] == "no-simd" and "SIMD" in event["message"]
    finally:
        page.close()


def test_a_cross_origin_isolated_page_decodes_on_two_threads(browser, assets, files, predictor):
    """With COOP/COEP the page's decoder runs on onnxruntime-web's thread pool (webapp/browser/decoder.js
    SESSION_OPTIONS: no spinning, blocks taken on demand), and its masks are the one-thread masks."""
    height, width = _display_size(predictor.original_size)
    with serve_harness(assets, files, isolate=True) as base:
        page = _open(browser, base, assets, (width, height), threads="2")
        try:
            assert page.evaluate("crossOriginIsolated") is True
            assert page.evaluate("harness.load('/files/dogs.bin')") == "ready"
            assert page.evaluate("harness.threads") == 2
            for name in ("one point", "two boxes and a point"):
                prompt = PROMPTS[name]
                ours = _unpack(page.evaluate("(p) => harness.mask(p)", prompt), height, width)
                shown = [
                    cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
                    for m in _server_masks(predictor, prompt)
                ]
                assert _iou(ours, np.logical_or.reduce(shown).astype(bool)) >= MIN_DISPLAY_IOU
        finally:
            page.close()
