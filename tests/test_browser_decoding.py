"""The server side of masks in the browser (webapp/browser_decoding.py), over HTTP with a stand-in onnxruntime-web:
what `publish` hands the page is served to its session only, names the right decoder, and expires with the next
image or the session; a decoder is exported in the background (at start for the model warmed, else after the first
image asks for it), never while a visitor waits; without onnxruntime-web's files the page is told to use the server
and the reason is kept."""

from __future__ import annotations

import json
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mobile_sam import sam_model_registry
from webapp import decoder_cache
from webapp.browser_decoding import LOADING, BrowserDecoding, PageDecoder
from webapp.embedding_links import SESSION_HEADER
from webapp.ort_files import ORT_FILES, OrtRelease

VERSION = "9.9.9"
RELEASE = OrtRelease(VERSION, "sha512-unused", "http://127.0.0.1:9/unused.tgz")


@dataclass(frozen=True)
class Image:
    features: torch.Tensor
    original_size: tuple[int, int] = (603, 1072)
    input_size: tuple[int, int] = (576, 1024)


@pytest.fixture(scope="module")
def sam():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return sam_model_registry["vit_t"](None).eval()


def _repo(tmp_path: Path) -> Path:
    dist = tmp_path / "repo" / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    (dist.parent / "package.json").write_text(json.dumps({"version": VERSION}))
    for name in ORT_FILES:
        (dist / name).write_text(f"// {name}")
    return tmp_path / "repo"


def _header(data: bytes) -> dict:
    (length,) = struct.unpack("<I", data[8:12])
    return json.loads(data[12 : 12 + length])


ALICE = {SESSION_HEADER: "alice"}


def test_published_images_are_served_with_their_decoder_and_expire(sam, tmp_path):
    decoding = BrowserDecoding(tmp_path / "decoders", tmp_path / "static", release=RELEASE)
    decoding.start(warm=lambda: sam, repo=_repo(tmp_path), use_npm=False, download=False).join()
    assert decoding.ready and decoding.error is None
    client = TestClient(Starlette(routes=decoding.routes()), headers=ALICE)
    first = decoding.publish("alice", tmp_path / "alice1", sam, "vit_t", Image(torch.zeros(1, 256, 64, 64)))
    assert isinstance(first, PageDecoder)  # the decoder was exported at start
    assert client.get(first.embedding_url, headers={SESSION_HEADER: "bob"}).status_code == 403
    header = _header(client.get(first.embedding_url).content)
    assert header["model"] == "vit_t" and header["original_size"] == [603, 1072] and header["input_size"] == [576, 1024]
    assert client.get(first.decoder_base + header["decoder"]).status_code == 200
    assert client.get(first.ort_url + ORT_FILES[0]).headers["content-type"].startswith("text/javascript")
    assert client.get(first.modules_url + "controller.js").status_code == 200

    second = decoding.publish("alice", tmp_path / "alice2", sam, "vit_t", Image(torch.ones(1, 256, 64, 64)))
    assert client.get(first.embedding_url).status_code == 404  # the old image
    assert _header(client.get(second.embedding_url).content)["decoder"] == header["decoder"]  # exported once
    decoding.forget("alice")
    assert client.get(second.embedding_url).status_code == 404  # the session ended


def test_without_onnxruntime_web_the_page_gets_nothing_and_the_reason_is_kept(sam, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    decoding = BrowserDecoding(tmp_path / "decoders", tmp_path / "static", release=RELEASE)
    decoding.start(repo=tmp_path, timeout_s=5, progress=lambda *_: None).join()
    assert not decoding.ready and "uses the server for every mask" in decoding.error
    answer = decoding.publish("alice", tmp_path / "a", sam, "vit_t", Image(torch.zeros(1, 256, 64, 64)))
    assert answer.reason == "load-failed" and "not available" in answer.message
    assert str(tmp_path) not in answer.message  # the page is told why, not where
    assert not (tmp_path / "a").exists()


def test_a_decoder_not_yet_exported_is_exported_in_the_background(sam, tmp_path, monkeypatch):
    release, exporting = threading.Event(), threading.Event()
    real = decoder_cache.export_low_res_decoder

    def slow(*args, **kwargs):
        exporting.set()
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(decoder_cache, "export_low_res_decoder", slow)
    decoding = BrowserDecoding(tmp_path / "decoders", tmp_path / "static", release=RELEASE)
    decoding.start(repo=_repo(tmp_path), use_npm=False, download=False).join()
    image = Image(torch.zeros(1, 256, 64, 64))
    first = decoding.publish("alice", tmp_path / "a", sam, "vit_t", image)
    assert first.reason == LOADING and exporting.wait(30)  # answered while the export waits
    assert decoding.publish("alice", tmp_path / "a", sam, "vit_t", image).reason == LOADING  # one export only
    release.set()
    for thread in [t for t in threading.enumerate() if t.name == "decoder export"]:
        thread.join(60)
    assert isinstance(decoding.publish("alice", tmp_path / "a", sam, "vit_t", image), PageDecoder)


def test_models_outside_the_sam_family_are_unsupported(tmp_path):
    decoding = BrowserDecoding(tmp_path / "decoders", tmp_path / "static", release=RELEASE)
    decoding.start(repo=_repo(tmp_path), use_npm=False, download=False).join()
    answer = decoding.publish("alice", tmp_path / "a", torch.nn.Linear(1, 1), "x", Image(torch.zeros(1, 256, 64, 64)))
    assert answer.reason == "unsupported-model" and "Linear" in answer.message
