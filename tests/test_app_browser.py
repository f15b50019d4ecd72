"""A real browser (Debian chromium, headless, driven by playwright) using the app on random weights."""

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.app_server import served_demo

import app
from samkit.drawing import overlay_masks
from webapp.model_store import ModelStore

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts" / "screenshots"
README_SHOTS = REPO / "assets" / "screenshots"
PHOTO = REPO / "assets" / "cat_chelsea.jpg"
TIMEOUT_MS = 180_000
CACHE_AGE_S = 2  # Gradio's cache cleaning, shortened so that the test outlives it
CONFIG = app.AppConfig(
    random_weights=True, download=False, max_everything_seconds=100_000, upload_max_age_s=CACHE_AGE_S
)


@pytest.fixture(scope="module")
def server():
    with served_demo(CONFIG, ModelStore("cpu", download=False)) as served:
        yield served


@pytest.fixture(scope="module")
def browser(server):
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (install Debian's chromium: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#segment-upload")
    return page


@pytest.fixture(scope="module")
def page(server, browser):
    page = _open(browser, server[0])
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "last_state.png"), full_page=True)  # for failures


def _shot(page, name: str, readme: bool = False) -> None:
    """Save a screenshot as a test artifact; with MOBILE_SAM_UPDATE_SCREENSHOTS=1 also refresh the README's copy."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if readme and os.environ.get("MOBILE_SAM_UPDATE_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as shot:
            shot.convert("RGB").quantize(colors=128).save(README_SHOTS / f"{name}.png", optimize=True)


def _image_at(page, selector: str) -> np.ndarray:
    source = page.locator(selector).get_attribute("src")
    return np.array(Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB"))


def _wait_for_new_src(page, selector: str, old: str | None) -> None:
    page.wait_for_function(
        "([sel, old]) => { const img = document.querySelector(sel); return img && img.src && img.src !== old; }",
        arg=[selector, old],
    )


def test_click_segments_and_box_and_everything_work_in_a_real_browser(page):
    canvas = "#segment-canvas img"
    assert page.locator("#random-weights-banner").is_visible()  # random weights are never shown as real results
    page.set_input_files("#segment-upload input[type=file]", str(PHOTO))
    page.wait_for_selector(canvas)
    page.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('encoded in')")
    before = _image_at(page, canvas)
    np.testing.assert_array_equal(before, np.array(Image.open(PHOTO).convert("RGB")))

    # A foreground click: the candidates appear and the shown image changes where the chosen mask is.
    old_src = page.locator(canvas).get_attribute("src")
    page.locator(canvas).click()
    _wait_for_new_src(page, canvas, old_src)
    page.wait_for_selector("#segment-candidates img")
    after = _image_at(page, canvas)
    page.locator("#segment-downloads").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')].some(b => b.innerText.includes('Mask PNG') && !b.disabled)"
    )
    page.wait_for_timeout(1000)
    with page.expect_download() as download:
        page.get_by_role("button", name="Mask PNG").click()
    mask = np.array(Image.open(download.value.path())) > 0
    assert mask.shape == before.shape[:2] and mask.any()
    changed = (after != before).any(axis=-1)
    assert changed[mask].mean() > 0.9  # the overlay covers the mask
    expected = overlay_masks(before, [mask], colors=np.array([[30, 144, 255]], np.uint8), antialiased=False)
    assert (after != expected).any(axis=-1).mean() < 0.01  # the rest is exactly the overlay, but for the marker
    page.mouse.move(0, 0)  # off the canvas: the page's hover preview is cleared
    _shot(page, "segment_anything", readme=True)

    # A box dragged with the mouse in box mode.
    page.get_by_label("Box (drag, or click two corners)").check()
    box = page.locator(canvas).bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=8)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('1 box(es)')")
    _shot(page, "segment_anything_box")

    # Segment everything with a small grid.
    page.get_by_role("tab", name="Segment everything").click()
    page.set_input_files("#everything-upload input[type=file]", str(PHOTO))
    for label, value in (
        ("Points per side", "4"),
        ("Predicted-IoU threshold", "0"),
        ("Stability-score threshold", "0"),
    ):
        field = page.get_by_label(f"number input for {label}")
        field.fill(value)
        field.press("Enter")
    page.locator("#everything-run").click()
    page.wait_for_selector("#everything-overlay img")
    page.wait_for_function("() => document.querySelector('#everything-summary').innerText.includes('masks in')")
    overlay = _image_at(page, "#everything-overlay img")
    assert overlay.shape == before.shape and (overlay != before).any()
    _shot(page, "segment_everything", readme=True)

    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-run")
    _shot(page, "compare")


def _info_has(page, text: str) -> None:
    page.wait_for_function(f"() => document.querySelector('#segment-info').innerText.includes({text!r})")


def test_five_quick_clicks_give_five_points(page):
    page.get_by_role("tab", name="Segment anything").click()
    page.get_by_label("Foreground point", exact=True).first.check()
    page.get_by_role("button", name="Clear prompts").click()
    _info_has(page, "0 point(s), 0 box(es)")
    box = page.locator("#segment-canvas img").bounding_box()
    for index in range(5):
        page.mouse.click(box["x"] + box["width"] * (0.2 + 0.12 * index), box["y"] + box["height"] * 0.5)
        page.wait_for_timeout(150)
    _info_has(page, "5 point(s)")


def test_a_click_survives_the_canvas_image_being_replaced_under_it(page):
    """A server answer may swap the canvas image between mousedown and mouseup; the browser then sends the click
    event to neither image. The click is still one more point."""
    box = page.locator("#segment-canvas img").bounding_box()
    page.evaluate(
        """() => document.addEventListener('mousedown', () => {
            const img = document.querySelector('#segment-canvas img');
            img.replaceWith(img.cloneNode(true));
        }, {capture: true, once: true})"""
    )
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.7)
    _info_has(page, "6 point(s)")


def test_a_click_counts_while_the_canvas_image_that_replaced_it_is_still_loading(page):
    """The image of a server answer may replace the canvas image between mousedown and mouseup and still be loading
    at mouseup (no size yet, nothing to map the release onto). The click counts where it was pressed."""
    box = page.locator("#segment-canvas img").bounding_box()
    page.evaluate(
        """() => document.addEventListener('mousedown', () => {
            const img = document.querySelector('#segment-canvas img');
            const loading = img.cloneNode(true);
            loading.removeAttribute('src');
            img.replaceWith(loading);
            setTimeout(() => { loading.src = img.src; }, 1000);
        }, {capture: true, once: true})"""
    )
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    _info_has(page, "7 point(s)")


def _lane_running(server) -> int:
    return server[1].mobile_sam_parts.lane.load()[0]


def _start_long_everything(page) -> None:
    page.get_by_role("tab", name="Segment everything").click()  # the photo is still there from the first test
    for label, value in (
        ("Points per side", "64"),
        ("Predicted-IoU threshold", "0"),
        ("Stability-score threshold", "0"),
    ):
        field = page.get_by_label(f"number input for {label}")
        field.fill(value)
        field.press("Enter")
    page.locator("#everything-run").click()


def test_a_second_tabs_clicks_are_answered_while_the_first_runs_everything(server, browser, page):
    _start_long_everything(page)
    deadline = time.monotonic() + 120
    while _lane_running(server) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    other = _open(browser, server[0])
    try:
        other.set_input_files("#segment-upload input[type=file]", str(REPO / "assets" / "coffee.jpg"))
        other.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('encoded in')")
        other.locator("#segment-canvas img").click()
        other.wait_for_selector("#segment-candidates img")
        assert _lane_running(server) == 1  # answered while the first tab's job still runs
    finally:
        other.close()


def test_stop_ends_a_running_segment_everything(server, page):
    assert _lane_running(server) == 1  # still the job of the previous test
    page.locator("#everything-stop").click()
    deadline = time.monotonic() + 5
    while _lane_running(server):
        assert time.monotonic() < deadline, "the job did not stop"
        time.sleep(0.1)


def test_an_example_still_loads_after_the_cache_cleaning_interval(page):
    time.sleep(3 * CACHE_AGE_S)  # Gradio's cleaning has run and removed everything older than CACHE_AGE_S
    page.get_by_role("tab", name="Segment anything").click()
    page.locator(".gallery-item, [data-testid='examples'] button, table.table tr").filter(
        has_text="coffee"
    ).first.click()
    page.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('encoded in')")
    page.wait_for_function("() => document.querySelector('#segment-info').innerText.includes('Image 600x400')")
