"""The in-browser decoder's HTTP routes (webapp/web_assets.py) inside a Gradio 6 app, as the app will mount them
(`launch(app_kwargs={"routes": ..., "middleware": ...})`): media types, gzip, cache policy, refusals, and the
cross-origin isolation headers, with which a Gradio page still works (real browser)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import gradio as gr
import httpx
import pytest
import torch
from starlette.middleware import Middleware
from support.browser_harness.server import free_port

from mobile_sam import sam_model_registry
from webapp.decoder_cache import DecoderCache
from webapp.ort_files import ORT_FILES, ensure_ort_files
from webapp.web_assets import FOREVER, REVALIDATE, CrossOriginIsolation, WebAssets

VERSION = "9.9.9"
CHROMIUM = Path("/usr/bin/chromium")


def _fake_ort(tmp_path: Path) -> Path:
    """A built folder of stand-in files, through ensure_ort_files' node_modules path."""
    repo = tmp_path / "repo"
    dist = repo / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    (dist.parent / "package.json").write_text(json.dumps({"version": VERSION}))
    for name in ORT_FILES:
        (dist / name).write_bytes(f"// {name}\n".encode() * 200)
    entry = {"version": VERSION, "integrity": "sha512-unused"}
    (repo / "package-lock.json").write_text(json.dumps({"packages": {"node_modules/onnxruntime-web": entry}}))
    return ensure_ort_files(tmp_path / "static", repo=repo, use_npm=False, download=False)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> WebAssets:
    tmp_path = tmp_path_factory.mktemp("assets")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam = sam_model_registry["vit_t"](None).eval()
    decoders = DecoderCache(tmp_path / "decoders")
    decoders.decoder(sam, "ab" * 32)
    return WebAssets(_fake_ort(tmp_path), VERSION, decoders)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "isolated"])
def gradio_app(request, assets):
    with gr.Blocks() as demo:
        out = gr.Textbox(elem_id="out")
        gr.Button("go", elem_id="go").click(lambda: "pong", None, out)
    app_kwargs = {"routes": assets.routes()}
    if request.param:
        app_kwargs["middleware"] = [Middleware(CrossOriginIsolation)]
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, app_kwargs=app_kwargs)
    try:
        yield f"http://127.0.0.1:{port}", request.param
    finally:
        demo.close()


def test_ort_files_have_their_media_types_gzip_and_are_cached_forever(gradio_app, assets):
    base, _ = gradio_app
    for name, media_type in zip(ORT_FILES, ("text/javascript", "text/javascript", "application/wasm")):
        expected = (assets.ort_folder / name).read_bytes()
        plain = httpx.get(f"{base}{assets.ort_url}{name}", headers={"Accept-Encoding": "identity"})
        zipped = httpx.get(f"{base}{assets.ort_url}{name}", headers={"Accept-Encoding": "gzip"})
        for response in (plain, zipped):
            assert response.status_code == 200 and response.content == expected
            assert response.headers["content-type"].split(";")[0] == media_type
            assert response.headers["cache-control"] == FOREVER
            assert "content-disposition" not in response.headers  # Gradio's cache route sends attachments
        assert "content-encoding" not in plain.headers
        assert zipped.headers["content-encoding"] == "gzip"
        assert int(zipped.headers["content-length"]) == len(gzip.compress(expected, compresslevel=9, mtime=0))


def test_decoder_and_module_routes(gradio_app, assets):
    base, _ = gradio_app
    name = next(assets.decoders.folder.glob("decoder-*.onnx")).name
    decoder = httpx.get(f"{base}{assets.decoder_url(name)}")
    assert decoder.status_code == 200 and decoder.headers["cache-control"] == FOREVER
    assert decoder.headers["content-encoding"] == "gzip"  # httpx asks for gzip and decodes it
    assert decoder.content == (assets.decoders.folder / name).read_bytes()
    module = httpx.get(f"{base}{assets.module_url('decoder.js')}")
    assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
    assert module.headers["cache-control"] == REVALIDATE


@pytest.mark.parametrize(
    "path",
    [
        "/mobile-sam/ort/9.9.9/release.json",
        "/mobile-sam/ort/9.9.9/ort.wasm.min.mjs.gz",
        "/mobile-sam/ort/1.0.0/ort.wasm.min.mjs",
        "/mobile-sam/decoders/decoder-0123456789abcdef.onnx",
        "/mobile-sam/decoders/..%2F..%2Fstatic",
        "/mobile-sam/js/..%2Fort_files.py",
        "/mobile-sam/js/Missing.js",
    ],
)
def test_other_names_are_not_found(gradio_app, path):
    base, _ = gradio_app
    assert httpx.get(f"{base}{path}").status_code == 404


def test_isolation_headers_are_on_every_response_in_isolated_mode_only(gradio_app, assets):
    base, isolated = gradio_app
    for path in ("/", "/config", f"{assets.ort_url}ort.wasm.min.mjs"):
        headers = httpx.get(f"{base}{path}").headers
        expected = ("same-origin", "require-corp") if isolated else (None, None)
        assert (headers.get("cross-origin-opener-policy"), headers.get("cross-origin-embedder-policy")) == expected


@pytest.mark.browser
def test_an_isolated_gradio_page_works_in_a_real_browser(gradio_app):
    base, isolated = gradio_app
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page()
            failed = []
            page.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))
            page.goto(f"{base}/")
            assert page.evaluate("crossOriginIsolated") is isolated
            page.click("#go")
            page.wait_for_function("() => document.querySelector('#out textarea').value === 'pong'", timeout=30_000)
            # COEP require-corp blocks cross-origin resources without CORP (net::ERR_BLOCKED_BY_RESPONSE); an
            # aborted event stream (net::ERR_ABORTED, when Gradio reconnects) is not a blocked resource.
            assert [f for f in failed if "BLOCKED" in f] == []
        finally:
            browser.close()
