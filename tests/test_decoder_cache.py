"""The decoder files' cache (webapp/decoder_cache.py): one export per weights and settings, content-hashed names,
atomic files, and names that cannot reach outside its folder."""

from __future__ import annotations

import gzip
import hashlib
import threading

import onnxruntime
import pytest
import torch

from mobile_sam import sam_model_registry
from mobile_sam.onnx.files import IMAGE_SIDE_INPUTS, LOW_RES_DECODER_INPUTS
from webapp import decoder_cache
from webapp.decoder_cache import DecoderCache, DecoderSettings, weights_sha256

SHA = "ab" * 32


@pytest.fixture(scope="module")
def sam():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return sam_model_registry["vit_t"](None).eval()


@pytest.fixture
def exports(monkeypatch):
    """Count the exports the cache runs."""
    calls = []
    real = decoder_cache.export_low_res_decoder

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(decoder_cache, "export_low_res_decoder", counted)
    return calls


def test_the_first_request_exports_and_later_ones_reuse_the_file(sam, tmp_path, exports):
    cache = DecoderCache(tmp_path)
    first = cache.decoder(sam, SHA)
    data, image_side = first.path.read_bytes(), first.image_side.read_bytes()
    assert first.sha256 == hashlib.sha256(data + image_side).hexdigest() and first.size == len(data) + len(image_side)
    assert first.name == f"decoder-{first.sha256[:16]}.onnx"
    assert first.image_side.name == f"decoder-{first.sha256[:16]}.image.onnx"
    session = onnxruntime.InferenceSession(str(first.path))
    assert tuple(i.name for i in session.get_inputs()) == LOW_RES_DECODER_INPUTS
    session = onnxruntime.InferenceSession(str(first.image_side))
    assert tuple(i.name for i in session.get_inputs()) == IMAGE_SIDE_INPUTS
    assert DecoderCache(tmp_path).decoder(sam, SHA) == first  # a new process finds it on disk
    assert cache.file(first.image_side.name) == first.image_side
    assert len(exports) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".json")) == sorted(
        [first.name, f"{first.name}.gz", first.image_side.name, f"{first.image_side.name}.gz"]
    )
    assert gzip.decompress((tmp_path / f"{first.name}.gz").read_bytes()) == data
    assert gzip.decompress((tmp_path / f"{first.image_side.name}.gz").read_bytes()) == image_side


def test_settings_and_weights_are_part_of_the_key(sam, tmp_path, exports):
    float16 = DecoderCache(tmp_path).decoder(sam, SHA)
    float32 = DecoderCache(tmp_path, DecoderSettings(weights_dtype="float32")).decoder(sam, SHA)
    other = DecoderCache(tmp_path).decoder(sam, "cd" * 32)
    assert len(exports) == 3
    assert float32.size > 1.8 * float16.size
    assert other.path == float16.path  # same weights in fact: same content, same file


def test_concurrent_requests_export_once(sam, tmp_path, exports):
    cache = DecoderCache(tmp_path)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.decoder(sam, SHA))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(exports) == 1 and len(set(results)) == 1


def test_a_damaged_entry_is_exported_again(sam, tmp_path, exports):
    cache = DecoderCache(tmp_path)
    first = cache.decoder(sam, SHA)
    first.path.write_bytes(b"truncated")
    again = cache.decoder(sam, SHA)
    assert len(exports) == 2 and again.path.read_bytes() != b"truncated" and again.size == first.size
    again.image_side.unlink()
    assert cache.decoder(sam, SHA).image_side.is_file() and len(exports) == 3


def test_file_names_outside_the_pattern_are_refused(sam, tmp_path):
    cache = DecoderCache(tmp_path / "decoders")
    entry = cache.decoder(sam, SHA)
    (tmp_path / "secret.onnx").write_text("no")
    assert cache.file(entry.name) == entry.path
    for name in ("../secret.onnx", "decoder-0123456789abcdef.onnx", f"{entry.name}.json", "x.onnx", "", "a.image.onnx"):
        assert cache.file(name) is None


def test_weights_sha256_follows_the_decoder_weights(sam):
    digest = weights_sha256(sam)
    assert len(digest) == 64 and digest == weights_sha256(sam)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        other = sam_model_registry["vit_t"](None).eval()
    other.image_encoder.load_state_dict(sam.image_encoder.state_dict())
    assert weights_sha256(other) != digest  # the decoder weights differ
    other.mask_decoder.load_state_dict(sam.mask_decoder.state_dict())
    other.prompt_encoder.load_state_dict(sam.prompt_encoder.state_dict())
    assert weights_sha256(other) == digest  # the image encoder does not matter


def test_a_malformed_weights_sha256_is_refused(sam, tmp_path):
    with pytest.raises(ValueError, match="64 lowercase hex"):
        DecoderCache(tmp_path).decoder(sam, "ABC")


def test_lookup_finds_exported_entries_and_never_exports(sam, tmp_path, exports):
    cache = DecoderCache(tmp_path)
    assert cache.lookup(SHA) is None and exports == []
    exported = cache.decoder(sam, SHA)
    assert cache.lookup(SHA) == exported and len(exports) == 1
    with pytest.raises(ValueError, match="64 lowercase hex"):
        cache.lookup("not a digest")


def test_entries_beyond_max_entries_are_deleted_least_recently_used_first(sam, tmp_path):
    float16 = DecoderCache(tmp_path, max_entries=1)
    in_flight = tmp_path / "decoder-0123456789abcdef.onnx"  # another process's entry, its record not written yet
    in_flight.write_bytes(b"onnx")
    old = float16.decoder(sam, SHA)
    new = DecoderCache(tmp_path, DecoderSettings(weights_dtype="float32"), max_entries=1).decoder(sam, SHA)
    assert float16.lookup(SHA) is None
    assert not old.path.exists() and not old.path.with_name(f"{old.name}.gz").exists()
    assert not old.image_side.exists() and not old.image_side.with_name(f"{old.image_side.name}.gz").exists()
    assert new.path.is_file() and len(list(tmp_path.glob("*.json"))) == 1
    assert in_flight.is_file()
    with pytest.raises(ValueError, match="at least 1"):
        DecoderCache(tmp_path, max_entries=0)
