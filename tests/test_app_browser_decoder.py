"""The mask decoder in the visitor's browser, in the real app (Debian chromium, headless, playwright; no internet):
hovering shows the mask under the cursor without a request to the server's queue or API and agrees with the
server's mask for the same prompt; a click shows the local mask, then the server's; the toggle and a failed load
fall back to the server; the embedding link is served to its session only and expires.

The app runs on "random weights" whose MobileSAM is the conformance checkpoint (random too: the masks mean nothing),
so that the page's masks are checked against the server's on the weights the conformance data describes.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from support.app_models import ConformanceStore
from support.app_server import served_demo

import app
from samkit.models import MOBILE_SAM
from webapp.decoder_cache import DecoderFile

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts" / "screenshots"
README_SHOTS = REPO / "assets" / "screenshots"
TIMEOUT_MS = 120_000
MIN_DISPLAY_IOU = 0.98
CONFIG = app.AppConfig(random_weights=True, download=False)
CANVAS = "#segment-canvas img"


@pytest.fixture(scope="module")
def server(conformance_dir, tmp_path_factory):
    store = ConformanceStore(conformance_dir / "mobile_sam_vit_t_seed0.pt", checkpoint_dir=tmp_path_factory.mktemp("c"))
    with served_demo(CONFIG, store) as (url, demo):
        parts = demo.mobile_sam_parts
        model = store.model(MOBILE_SAM, random_weights=True)
        deadline = time.monotonic() + 120
        while not (parts.browser.ready and isinstance(parts.browser.prepare(model), DecoderFile)):
            assert parts.browser.error is None, parts.browser.error
            assert time.monotonic() < deadline, "onnxruntime-web's files or the decoder were not ready in time"
            time.sleep(0.2)
        yield url, parts


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (install Debian's chromium: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open(browser, url: str, photo: Path, block_ort: bool = False):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    if block_ort:  # what a page sees when onnxruntime-web cannot be fetched
        page.route("**/mobile-sam/ort/**", lambda route: route.abort())
    page.goto(url)
    page.wait_for_selector("#segment-upload")
    page.wait_for_function("() => window.mobileSamSegment !== undefined")
    page.set_input_files("#segment-upload input[type=file]", str(photo))
    page.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('encoded in')")
    return page


@pytest.fixture(scope="module")
def page(server, browser, conformance_dir):
    page = _open(browser, server[0], conformance_dir / "dogs.jpg")
    page.wait_for_function("() => window.mobileSamSegment.ready")
    try:
        yield page
    finally:
        page.close()


def _painted(page, layer: str) -> np.ndarray:
    """Where the page's overlay canvas `layer` ("hover" or "local") is painted, (height, width) bool."""
    found = page.evaluate(f"window.mobileSamSegment.painted('{layer}')")
    bits = np.unpackbits(np.frombuffer(base64.b64decode(found["bits"]), np.uint8))
    return bits[: found["width"] * found["height"]].reshape(found["height"], found["width"]) > 0


def _session(parts, page):
    """The server's session of the page."""
    return parts.sessions.session(SimpleNamespace(session_hash=page.evaluate("window.__gradio_session_hash__")))


def _server_state(parts, page):
    """The server's segment-tab state of the page's session."""
    return _session(parts, page).state["segment"]


def _queue_or_api_requests(page, requests: list) -> list[str]:
    """The requests to Gradio's queue or API, but the models panel's timer (it ticks every 3 s on its own)."""
    timer = page.evaluate(
        """() => { const config = window.gradio_config, timers = new Set(config.components
              .filter((c) => c.type === 'timer').map((c) => c.id));
            return config.dependencies.filter((d) => d.targets.some(([id]) => timers.has(id))).map((d) => d.id); }"""
    )
    found = []
    for request in requests:
        if "/gradio_api/" not in request.url:
            continue
        body = request.post_data_json if request.method == "POST" else None
        if isinstance(body, dict) and body.get("fn_index") in timer:
            continue
        found.append(request.url)
    return found


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _wait_canvas_change(page, old: str | None) -> None:
    page.wait_for_function(
        "(old) => { const img = document.querySelector('#segment-canvas img'); "
        "return img && img.src !== old && img.complete; }",
        arg=old,
    )


def _shot(page, name: str) -> None:
    """A screenshot as a test artifact; with MOBILE_SAM_UPDATE_SCREENSHOTS=1 also the README's copy."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("MOBILE_SAM_UPDATE_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as shot:
            shot.convert("RGB").quantize(colors=128).save(README_SHOTS / f"{name}.png", optimize=True)


def test_hover_shows_the_servers_mask_without_asking_the_server_and_a_click_answers_at_once(server, page):
    _, parts = server
    box = page.locator(CANVAS).bounding_box()
    target = (box["x"] + box["width"] * 0.61, box["y"] + box["height"] * 0.33)
    requests = []

    def log(request) -> None:
        requests.append(request)

    page.on("request", log)
    try:
        page.mouse.move(box["x"] + 5, box["y"] + 5)
        page.mouse.move(*target, steps=25)
        page.evaluate("window.mobileSamSegment.preview.idle()")
        hover = _painted(page, "hover")
        last = page.evaluate("window.mobileSamSegment.lastHover")
        stats = page.evaluate("({...window.mobileSamSegment.preview.stats})")
    finally:
        page.remove_listener("request", log)
    assert _queue_or_api_requests(page, requests) == [] and stats["moves"] >= 25 and stats["decodes"] >= 1
    assert hover.any()
    _shot(page, "segment_hover")

    old = page.locator(CANVAS).get_attribute("src")
    with _session(parts, page).lock:  # the server's answer waits (on a loaded machine it could come before the reads)
        page.mouse.click(*target)
        page.wait_for_function("() => window.mobileSamSegment.stats.local.length > 0")
        local = _painted(page, "local")
        assert local.any() and page.locator(CANVAS).get_attribute("src") == old  # drawn without the server's answer
    _wait_canvas_change(page, old)
    page.wait_for_function("() => window.mobileSamSegment.stats.cleared.length > 0")
    times = page.evaluate("window.mobileSamSegment.stats")
    assert times["local"][0]["at"] < min(times["serverImages"][-1], times["cleared"][-1])
    assert not _painted(page, "local").any()  # the server's canvas replaced the local mask

    state = _server_state(parts, page)
    ((x, y),) = state.clicks.points
    assert (x, y) == pytest.approx((last["x"], last["y"]))  # the server got the prompt the hover previewed
    height, width = state.display.shape[:2]
    server_mask = cv2.resize(
        state.masks[state.selected].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
    )
    assert hover.shape == (height, width) and _iou(hover, server_mask > 0) >= MIN_DISPLAY_IOU


def test_a_dragged_box_shows_its_mask_while_the_mouse_moves(page):
    page.get_by_role("button", name="Clear prompts").click()
    page.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('0 point(s), 0 box(es)')")
    page.get_by_label("Box (drag, or click two corners)").check()
    box = page.locator(CANVAS).bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    drawn = []
    for step in range(1, 4):
        page.mouse.move(box["x"] + box["width"] * (0.2 + 0.15 * step), box["y"] + box["height"] * (0.2 + 0.2 * step))
        page.evaluate("window.mobileSamSegment.preview.idle()")
        drawn.append(_painted(page, "hover").sum())
    page.mouse.up()
    assert all(drawn) and len(set(drawn)) == 3  # a mask for each box
    page.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('1 box(es)')")
    page.get_by_label("Foreground point", exact=True).check()


def test_the_toggle_off_leaves_every_mask_to_the_server(page):
    page.locator("#segment-preview input").uncheck()
    notice = page.locator("#segment-decoder-notice").inner_text()
    assert "Masks come from the server" in notice and "turned off" in notice
    decodes = page.evaluate("window.mobileSamSegment.preview.stats.decodes")
    local = page.evaluate("window.mobileSamSegment.stats.local.length")
    box = page.locator(CANVAS).bounding_box()
    old = page.locator(CANVAS).get_attribute("src")
    page.mouse.move(box["x"] + 40, box["y"] + 40, steps=5)
    page.mouse.click(box["x"] + 40, box["y"] + 40)
    _wait_canvas_change(page, old)
    assert page.evaluate("window.mobileSamSegment.preview.stats.decodes") == decodes
    assert page.evaluate("window.mobileSamSegment.stats.local.length") == local
    assert not _painted(page, "hover").any()
    page.locator("#segment-preview input").check()
    page.wait_for_function("() => window.mobileSamSegment.ready")
    assert page.locator("#segment-decoder-notice").inner_text().strip() == ""


def test_a_failed_load_falls_back_to_the_server_with_one_notice(server, browser, conformance_dir):
    page = _open(browser, server[0], conformance_dir / "dogs.jpg", block_ort=True)
    try:
        page.wait_for_function(
            "() => document.querySelector('#segment-decoder-notice').innerText.includes('could not be loaded')"
        )
        assert page.evaluate("window.mobileSamSegment.controller.reason") == "load-failed"
        old = page.locator(CANVAS).get_attribute("src")
        box = page.locator(CANVAS).bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        _wait_canvas_change(page, old)
        assert "1 point(s)" in page.locator("#segment-info").inner_text()
        assert page.evaluate("window.mobileSamSegment.stats.local.length") == 0
    finally:
        page.close()


def test_the_embedding_is_served_to_its_session_only_and_expires(server, browser, conformance_dir):
    url, parts = server
    page = _open(browser, url, conformance_dir / "dogs.jpg")
    try:
        page.wait_for_function("() => window.mobileSamSegment.ready")
        decoder = page.evaluate("window.mobileSamSegment.server.decoder")
        link, header = url.rstrip("/") + decoder["embedding_url"], decoder["session_header"]
        mine = {header: page.evaluate("window.__gradio_session_hash__")}
        assert httpx.get(link, headers=mine).status_code == 200
        for other in ({}, {header: "someone-else"}):
            refused = httpx.get(link, headers=other)
            assert refused.status_code == 403 and "another session" in refused.text
        folder = parts.sessions.session(SimpleNamespace(session_hash=mine[header])).folder
        assert any(folder.rglob("embedding.bin"))  # in the session's folder: counted in the cap

        page.locator("#segment-upload button[aria-label='Clear']").click()  # a new image
        page.wait_for_function("() => window.mobileSamSegment.embeddingUrl === null")
        page.set_input_files("#segment-upload input[type=file]", str(REPO / "assets" / "cat_chelsea.jpg"))
        page.wait_for_function("(old) => (window.mobileSamSegment.embeddingUrl || old) !== old", arg=link)
        newer = url.rstrip("/") + page.evaluate("window.mobileSamSegment.embeddingUrl")
        gone = httpx.get(link, headers=mine)
        assert gone.status_code == 404 and "expired" in gone.text
        assert httpx.get(newer, headers=mine).status_code == 200
    finally:
        page.close()
    parts.sessions.end(SimpleNamespace(session_hash=mine[header]))  # Gradio's unload may be doing it already
    deadline = time.monotonic() + 30
    while folder.exists():
        assert time.monotonic() < deadline, "the session's files were not deleted"
        time.sleep(0.1)
    assert httpx.get(newer, headers=mine).status_code == 404
