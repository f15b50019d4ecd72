"""A real browser (Debian chromium, headless, driven by playwright) using the app on random weights."""
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from app_server import served_app
from mobile_sam.model_store import ModelStore
from mobile_sam.visualize import overlay_masks

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts" / "screenshots"
README_SHOTS = REPO / "assets" / "screenshots"
PHOTO = REPO / "assets" / "cat_chelsea.jpg"
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def url():
    with served_app(app.AppConfig(random_weights=True, download=False), ModelStore("cpu", download=False)) as url:
        yield url


@pytest.fixture(scope="module")
def page(url):
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (install Debian's chromium: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#segment-upload")
        try:
            yield page
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "last_state.png"), full_page=True)  # for failures
            browser.close()


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
    with page.expect_download() as download:
        page.get_by_role("button", name="Mask PNG").click()
    mask = np.array(Image.open(download.value.path())) > 0
    assert mask.shape == before.shape[:2] and mask.any()
    changed = (after != before).any(axis=-1)
    assert changed[mask].mean() > 0.9  # the overlay covers the mask
    expected = overlay_masks(before, [mask], colors=np.array([[30, 144, 255]], np.uint8))
    assert (after != expected).any(axis=-1).mean() < 0.01  # the rest is exactly the overlay, but for the marker
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
    for label, value in (("Points per side", "4"), ("Predicted-IoU threshold", "0"), ("Stability-score threshold", "0")):
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
