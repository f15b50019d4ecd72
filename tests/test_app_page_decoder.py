"""The segment tab's side of the page's decoder (webapp.segment.SegmentTab.publish / page_json, webapp.sessions'
named folders, webapp.image_files): what the page is told about each image and its prompts, with a stand-in
onnxruntime-web and a random-weight MobileSAM (the page itself: tests/test_app_browser_decoder.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient
from support.app_images import photo

from samkit.models import MOBILE_SAM
from webapp.browser_decoding import LOADING, BrowserDecoding, PageDecoder, ServerOnly
from webapp.image_files import png_file
from webapp.model_store import ModelStore
from webapp.ort_files import ORT_FILES, OrtRelease
from webapp.scheduling import Priority
from webapp.segment import SegmentTab
from webapp.sessions import Sessions

RELEASE = OrtRelease("9.9.9", "sha512-unused", "http://127.0.0.1:9/unused.tgz")
FG = "Foreground point"


def _fake_ort_repo(folder: Path) -> Path:
    dist = folder / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    (dist.parent / "package.json").write_text(json.dumps({"version": RELEASE.version}))
    for name in ORT_FILES:
        (dist / name).write_text(f"// {name}")
    return folder


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore("cpu", download=False)


def _tab(store: ModelStore, folder: Path, warm: bool) -> tuple[SegmentTab, BrowserDecoding, Sessions]:
    browser = BrowserDecoding(folder / "decoders", folder / "static", release=RELEASE)
    repo = _fake_ort_repo(folder / "repo")
    browser.start(warm=(lambda: store.model(MOBILE_SAM, True)) if warm else None, repo=repo, use_npm=False).join()
    sessions = Sessions(50 * 2**20, 3600)
    sessions.on_end(browser.forget)
    return SegmentTab(store, sessions, Priority(), 512, browser), browser, sessions


@pytest.fixture(scope="module")
def prepared(store, tmp_path_factory):
    """A tab whose page decoder is ready (exported at start)."""
    return _tab(store, tmp_path_factory.mktemp("prepared"), warm=True)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(photo((40, 60), seed=3)).save(path)  # shown enlarged: 96x64 on the canvas
    return path


def _request(name: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=name)


def test_a_new_image_is_offered_to_the_page_with_the_servers_prompts(prepared, image_path):
    seg, browser, sessions = prepared
    request = _request("alice")
    state = seg.publish(seg.load_image(str(image_path), True), request, True)
    assert isinstance(state.page, PageDecoder)
    assert (sessions.named_folder(request, "embedding") / "embedding.bin").is_file()
    page = json.loads(seg.page_json(state))
    assert page["decoder"]["embedding_url"] == state.page.embedding_url and page["reason"] is None
    assert page["image"] == [40, 60] and page["prompts"] == {"points": [], "labels": [], "boxes": []}

    scale = state.display_scale  # the page sends display pixels
    actions = [{"click": [48, 32], "id": 1}, {"box": [10, 10, 80, 50], "id": 2}]
    state = seg.canvas_actions(state, FG, json.dumps(actions), True)
    page = json.loads(seg.page_json(state))
    assert page["applied"] == 2 and page["corner"] is None
    assert page["prompts"]["points"] == [[48 / scale, 32 / scale]] and page["prompts"]["labels"] == [1]
    assert page["prompts"]["boxes"] == [[10 / scale, 10 / scale, 80 / scale, 50 / scale]]


@pytest.mark.parametrize("bad", ["1", True, -3, 1.5, None])
def test_only_growing_integer_action_ids_count(prepared, image_path, bad):
    seg, _, _ = prepared
    state = seg.load_image(str(image_path), True)
    state = seg.canvas_actions(state, FG, json.dumps([{"click": [5, 5], "id": 7}]), True)
    state = seg.canvas_actions(state, FG, json.dumps([{"click": [6, 6], "id": bad}, {"click": [7, 7], "id": 3}]), True)
    assert state.applied == 7 and len(state.clicks.points) == 3  # the clicks count, their ids do not


def test_a_new_image_and_the_session_end_expire_the_link(prepared, image_path):
    seg, browser, sessions = prepared
    client = TestClient(Starlette(routes=browser.routes()), headers={"X-Mobile-Sam-Session": "bob"})
    request = _request("bob")
    first = seg.publish(seg.load_image(str(image_path), True), request, True)
    assert client.get(first.page.embedding_url).status_code == 200
    cleared = seg.publish(seg.load_image(None, True), request, True)  # the visitor removed the image
    assert cleared.page is None and client.get(first.page.embedding_url).status_code == 404
    again = seg.publish(seg.load_image(str(image_path), True), request, True)
    assert client.get(again.page.embedding_url).status_code == 200
    sessions.end(request)
    assert client.get(again.page.embedding_url).status_code == 404


def test_an_image_whose_decoder_is_still_being_exported_is_offered_again_on_a_later_event(store, image_path, tmp_path):
    seg, browser, _ = _tab(store, tmp_path, warm=False)
    request = _request("carol")
    state = seg.publish(seg.load_image(str(image_path), True), request, True)
    assert state.page == ServerOnly(LOADING, state.page.message)
    page = json.loads(seg.page_json(state))
    assert page["decoder"] is None and page["reason"] == LOADING and page["message"]
    for thread in [t for t in threading.enumerate() if t.name == "decoder export"]:
        thread.join(120)
    state = seg.click(state, FG, 10, 10, True)
    assert isinstance(seg.publish(state, request, True, again=False).page, PageDecoder)


def test_a_published_offer_is_not_written_again_by_later_events(prepared, image_path):
    seg, _, _ = prepared
    request = _request("dave")
    state = seg.publish(seg.load_image(str(image_path), True), request, True)
    clicked = seg.publish(seg.click(state, FG, 10, 10, True), request, True, again=False)
    assert clicked.page == state.page


def test_named_folders_outlive_result_folders_and_count_in_the_cap(tmp_path):
    sessions = Sessions(max_bytes=3000, ttl_s=3600)
    request = _request("erin")
    named = sessions.named_folder(request, "embedding")
    (named / "embedding.bin").write_bytes(b"x" * 1000)
    for _ in range(5):
        (sessions.new_folder(request) / "result.bin").write_bytes(b"y" * 1000)
    assert (named / "embedding.bin").is_file()  # new_folder keeps its last few result folders only
    total = sum(p.stat().st_size for p in sessions.root.rglob("*") if p.is_file())
    sessions.enforce_cap()
    after = sum(p.stat().st_size for p in sessions.root.rglob("*") if p.is_file())
    assert total == 4000 and after <= 3000
    with pytest.raises(ValueError, match="identifier"):
        sessions.named_folder(request, "../escape")
    sessions.end_all()


def test_png_files_hold_the_pixels_and_a_folder_keeps_the_newest(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    paths = [png_file(image, tmp_path, keep=3) for _ in range(5)]
    np.testing.assert_array_equal(np.array(Image.open(paths[-1])), image)
    assert sorted(str(p) for p in tmp_path.glob("*.png")) == sorted(paths[-3:])
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        png_file(image.astype(np.float32), tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        png_file(image, tmp_path, keep=0)
