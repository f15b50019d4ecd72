"""Checkpoint registry, cache, verified download (against a local HTTP server) and safe loading."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from mobile_sam.build_sam import read_state_dict
from mobile_sam.utils import atomic
from samkit import checkpoints
from samkit.checkpoints import (
    CACHE_DIR_ENV,
    RECORD_SUFFIX,
    CheckpointDownloadError,
    CheckpointError,
    CheckpointNotFoundError,
    ChecksumError,
    checkpoint_status,
    default_cache_dir,
    download_checkpoint,
    resolve_checkpoint,
)
from samkit.models import MODELS as CHECKPOINTS
from samkit.models import ModelInfo, model_info

PAYLOAD = np.random.default_rng(0).integers(0, 256, 2 * (1 << 20) + 12345, dtype=np.uint8).tobytes()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class TrainingConfig:
    """An arbitrary Python object, as found in pickled training checkpoints."""


class FileServer:
    """Serves `files` on 127.0.0.1; `modes[path]` can be "404" or "drop" (close the connection mid-file)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[str] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                state.requests.append(self.path)
                body = state.files.get(self.path)
                mode = state.modes.get(self.path, "ok")
                if body is None or mode == "404":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[FileServer]:
    file_server = FileServer()
    file_server.files["/fake.pt"] = PAYLOAD
    file_server.thread.start()
    try:
        yield file_server
    finally:
        file_server.httpd.shutdown()
        file_server.httpd.server_close()
        file_server.thread.join(timeout=5)


@pytest.fixture
def refused_url() -> str:
    """A URL on a local port nobody listens on (connection refused, like being offline)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/fake.pt"


def _info(url: str, sha256: str | None = PAYLOAD_SHA256, size: int | None = None) -> ModelInfo:
    return ModelInfo(
        name="test",
        label="test",
        filename="fake.pt",
        url=url,
        family="sam",
        sha256=sha256,
        size=size,
        description="test file",
    )


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _touch_later(path: Path) -> None:
    """Move the modification time forward so a change is visible even on coarse-mtime file systems."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


# ---------------------------------------------------------------- registry and cache folder


def test_registry_lists_official_files_with_published_hashes() -> None:
    assert CHECKPOINTS["vit_t"].filename == "mobile_sam.pt"
    assert CHECKPOINTS["vit_t"].sha256 == "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"
    assert CHECKPOINTS["vit_h"].filename == "sam_vit_h_4b8939.pth"
    assert CHECKPOINTS["vit_h"].size == 2_564_550_879
    assert CHECKPOINTS["vit_l"].url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth"
    assert CHECKPOINTS["vit_b"].sha256 == "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"


def test_fastsam_entries_have_no_published_hash_and_are_not_state_dicts() -> None:
    for name in ("fastsam-s", "fastsam-x"):
        info = CHECKPOINTS[name]
        assert info.sha256 is None and info.family == "fastsam" and not info.is_state_dict
        assert info.url.endswith("/" + info.filename)


def test_registry_cannot_be_modified() -> None:
    with pytest.raises(TypeError):
        CHECKPOINTS["vit_t"] = CHECKPOINTS["vit_b"]  # type: ignore[index]


def test_lookup_accepts_file_names_alias_and_any_case() -> None:
    assert model_info("mobile_sam.pt").name == "vit_t"
    assert model_info("default").name == "vit_h"
    assert model_info("FastSAM-x").name == "fastsam-x"


def test_unknown_name_raises_value_error_listing_known_names() -> None:
    with pytest.raises(ValueError, match="known models: vit_t, vit_b"):
        model_info("vit_q")


def test_cache_dir_env_variable_overrides_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "weights"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "weights"


def test_cache_dir_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "mobile_sam"


def test_cache_dir_defaults_to_home_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "mobile_sam"


# ---------------------------------------------------------------- download


def test_download_stores_verified_file_and_leaves_no_temporary_file(server: FileServer, tmp_path: Path) -> None:
    path = resolve_checkpoint(_info(server.url("/fake.pt")), cache_dir=tmp_path, progress=False)
    assert path == tmp_path / "fake.pt"
    assert path.read_bytes() == PAYLOAD
    assert _listing(tmp_path) == ["fake.pt", "fake.pt" + RECORD_SUFFIX]


def test_download_goes_to_env_cache_dir(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    path = resolve_checkpoint(_info(server.url("/fake.pt")), progress=False)
    assert path == tmp_path / "env-cache" / "fake.pt"
    assert path.is_file()


def test_progress_callback_receives_increasing_byte_counts(server: FileServer, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    resolve_checkpoint(
        _info(server.url("/fake.pt")), cache_dir=tmp_path, progress=lambda done, total: calls.append((done, total))
    )
    done = [d for d, _ in calls]
    assert len(calls) >= 3
    assert done[0] == 0 and done[-1] == len(PAYLOAD)
    assert done == sorted(done)
    assert {total for _, total in calls} == {len(PAYLOAD)}


def test_default_progress_shows_a_bar_on_stderr(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolve_checkpoint(_info(server.url("/fake.pt")), cache_dir=tmp_path)
    assert "fake.pt" in capsys.readouterr().err


def test_hash_mismatch_raises_checksum_error_and_leaves_nothing(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"), sha256="0" * 64)
    with pytest.raises(ChecksumError, match="corrupt or not the official file") as caught:
        resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    assert PAYLOAD_SHA256 in str(caught.value)
    assert _listing(tmp_path) == []


def test_http_404_error_names_file_url_hash_and_folder(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/missing.pt"))
    with pytest.raises(CheckpointDownloadError) as caught:
        resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    message = str(caught.value)
    for expected in ("HTTP 404", "fake.pt", info.url, PAYLOAD_SHA256, str(tmp_path / "fake.pt"), CACHE_DIR_ENV):
        assert expected in message
    assert _listing(tmp_path) == []


def test_offline_error_names_file_url_hash_and_folder(refused_url: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointDownloadError, match="no connection") as caught:
        resolve_checkpoint(_info(refused_url), cache_dir=tmp_path, progress=False)
    message = str(caught.value)
    for expected in (refused_url, PAYLOAD_SHA256, str(tmp_path / "fake.pt")):
        assert expected in message
    assert _listing(tmp_path) == []


def test_unresponsive_server_times_out_with_download_error(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/fake.pt"
        with pytest.raises(CheckpointDownloadError):
            resolve_checkpoint(_info(url), cache_dir=tmp_path, progress=False, timeout=0.3)
    assert _listing(tmp_path) == []


def test_failed_download_can_simply_be_retried(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"))
    server.modes["/fake.pt"] = "404"
    with pytest.raises(CheckpointDownloadError):
        resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    server.modes["/fake.pt"] = "ok"
    assert resolve_checkpoint(info, cache_dir=tmp_path, progress=False).read_bytes() == PAYLOAD


def test_connection_dropped_mid_file_leaves_no_partial_file(server: FileServer, tmp_path: Path) -> None:
    server.modes["/fake.pt"] = "drop"
    with pytest.raises(CheckpointDownloadError, match="closed after"):
        resolve_checkpoint(_info(server.url("/fake.pt"), sha256=None), cache_dir=tmp_path, progress=False)
    assert _listing(tmp_path) == []


def test_interrupted_download_leaves_no_partial_file(server: FileServer, tmp_path: Path) -> None:
    def interrupt(done: int, total: int | None) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resolve_checkpoint(_info(server.url("/fake.pt")), cache_dir=tmp_path, progress=interrupt)
    assert _listing(tmp_path) == []


def test_unexpected_length_raises_download_error(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"), sha256=None, size=len(PAYLOAD) + 1)
    with pytest.raises(CheckpointDownloadError, match="expected"):
        resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    assert _listing(tmp_path) == []


def test_download_disabled_raises_not_found_with_guidance(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"))
    with pytest.raises(CheckpointNotFoundError, match="downloading is disabled") as caught:
        resolve_checkpoint(info, cache_dir=tmp_path, download=False)
    assert info.url in str(caught.value) and str(tmp_path / "fake.pt") in str(caught.value)
    assert server.requests == []


def test_unwritable_cache_folder_raises_download_error_with_guidance(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "cache"
    with pytest.raises(CheckpointDownloadError, match="Cannot write to the checkpoint folder") as caught:
        resolve_checkpoint(_info(server.url("/fake.pt")), cache_dir=folder, progress=False)
    assert str(folder / "fake.pt") in str(caught.value)
    assert server.requests == []


def test_download_checkpoint_replaces_existing_copy(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "fake.pt").write_bytes(b"old")
    path = download_checkpoint(_info(server.url("/fake.pt")), cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD


# ---------------------------------------------------------------- cached files


def test_cached_file_is_reused_without_network(server: FileServer, tmp_path: Path, refused_url: str) -> None:
    first = resolve_checkpoint(_info(server.url("/fake.pt")), cache_dir=tmp_path, progress=False)
    assert resolve_checkpoint(_info(refused_url), cache_dir=tmp_path) == first


def test_cached_file_is_not_rehashed_while_unchanged(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = _info(server.url("/fake.pt"))
    resolve_checkpoint(info, cache_dir=tmp_path, progress=False)

    def fail(path: object) -> str:
        raise AssertionError("the verified file was hashed again")

    monkeypatch.setattr(checkpoints, "sha256_file", fail)
    assert resolve_checkpoint(info, cache_dir=tmp_path) == tmp_path / "fake.pt"
    assert server.requests == ["/fake.pt"]


def test_modified_cached_file_raises_checksum_error(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"))
    path = resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    path.write_bytes(PAYLOAD[::-1])
    _touch_later(path)
    with pytest.raises(ChecksumError, match="does not match the official file") as caught:
        resolve_checkpoint(info, cache_dir=tmp_path)
    assert str(path) in str(caught.value) and "Delete it" in str(caught.value)


def test_file_put_in_cache_by_hand_is_verified_and_used(tmp_path: Path, refused_url: str) -> None:
    (tmp_path / "fake.pt").write_bytes(PAYLOAD)
    assert resolve_checkpoint(_info(refused_url), cache_dir=tmp_path) == tmp_path / "fake.pt"
    assert (tmp_path / ("fake.pt" + RECORD_SUFFIX)).is_file()


def test_wrong_file_put_in_cache_by_hand_raises_checksum_error(tmp_path: Path, refused_url: str) -> None:
    (tmp_path / "fake.pt").write_bytes(b"something else")
    with pytest.raises(ChecksumError, match="SHA-256"):
        resolve_checkpoint(_info(refused_url), cache_dir=tmp_path)


def test_known_size_mismatch_is_caught_without_hashing(
    tmp_path: Path, refused_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake.pt").write_bytes(PAYLOAD[:100])
    monkeypatch.setattr(checkpoints, "sha256_file", lambda path: pytest.fail("hashed a file of the wrong size"))
    with pytest.raises(ChecksumError, match="100 bytes"):
        resolve_checkpoint(_info(refused_url, size=len(PAYLOAD)), cache_dir=tmp_path)


def test_unwritable_cache_folder_still_resolves(
    tmp_path: Path, refused_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake.pt").write_bytes(PAYLOAD)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only folder")

    monkeypatch.setattr(atomic.os, "open", refuse)
    assert resolve_checkpoint(_info(refused_url), cache_dir=tmp_path) == tmp_path / "fake.pt"
    assert _listing(tmp_path) == ["fake.pt"]


# ---------------------------------------------------------------- trust on first use (no published hash)


def test_unpublished_hash_is_recorded_on_first_download(server: FileServer, tmp_path: Path) -> None:
    resolve_checkpoint(_info(server.url("/fake.pt"), sha256=None), cache_dir=tmp_path, progress=False)
    record = (tmp_path / ("fake.pt" + RECORD_SUFFIX)).read_text()
    assert PAYLOAD_SHA256 in record and str(len(PAYLOAD)) in record


def test_unpublished_hash_is_checked_against_first_use_record(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"), sha256=None)
    path = resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    path.write_bytes(PAYLOAD[::-1])
    _touch_later(path)
    with pytest.raises(ChecksumError, match="recorded on first use"):
        resolve_checkpoint(info, cache_dir=tmp_path)


def test_changed_upstream_file_without_published_hash_is_rejected(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"), sha256=None)
    resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    server.files["/fake.pt"] = PAYLOAD[::-1]
    with pytest.raises(ChecksumError, match="Delete that record"):
        download_checkpoint(info, cache_dir=tmp_path, progress=False)
    assert (tmp_path / "fake.pt").read_bytes() == PAYLOAD


# ---------------------------------------------------------------- explicit paths


def test_explicit_path_wins_without_cache_or_network(tmp_path: Path, refused_url: str) -> None:
    explicit = tmp_path / "my_finetuned.pt"
    explicit.write_bytes(b"user weights")
    assert resolve_checkpoint(_info(refused_url), path=explicit, cache_dir=tmp_path / "cache") == explicit
    assert not (tmp_path / "cache").exists()


def test_missing_explicit_path_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as caught:
        resolve_checkpoint("vit_t", path=tmp_path / "nope.pt")
    assert isinstance(caught.value, FileNotFoundError)


def test_explicit_folder_error_suggests_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="mobile_sam.pt") as caught:
        resolve_checkpoint("vit_t", path=tmp_path)
    assert "is a folder" in str(caught.value) and "does not exist" not in str(caught.value)


# ---------------------------------------------------------------- status


def test_status_of_missing_file_tells_where_to_put_it(tmp_path: Path) -> None:
    status = checkpoint_status("vit_t", cache_dir=tmp_path)
    assert status.state == "missing" and not status.present
    assert status.path == tmp_path / "mobile_sam.pt" and status.folder == tmp_path
    assert status.url == CHECKPOINTS["vit_t"].url


def test_status_after_download_is_verified(server: FileServer, tmp_path: Path) -> None:
    info = _info(server.url("/fake.pt"))
    resolve_checkpoint(info, cache_dir=tmp_path, progress=False)
    assert checkpoint_status(info, cache_dir=tmp_path).state == "verified"


def test_status_of_unchecked_file_is_unverified(tmp_path: Path) -> None:
    (tmp_path / "mobile_sam.pt").write_bytes(b"not yet hashed")
    assert checkpoint_status("vit_t", cache_dir=tmp_path).state == "unverified"


# ---------------------------------------------------------------- loading state dicts


def _saved(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_state_dict_file_loads_tensors_on_cpu(tmp_path: Path) -> None:
    weights = {"a.weight": torch.arange(6.0).reshape(2, 3), "b.bias": torch.ones(2)}
    loaded = read_state_dict(_saved(weights, tmp_path / "w.pt"))
    assert set(loaded) == set(weights)
    assert torch.equal(loaded["a.weight"], weights["a.weight"]) and loaded["a.weight"].device.type == "cpu"


def test_state_dict_wrapped_under_model_key_is_unwrapped(tmp_path: Path) -> None:
    loaded = read_state_dict(_saved({"model": {"w": torch.zeros(1)}, "epoch": 3}, tmp_path / "w.pt"))
    assert list(loaded) == ["w"]


def test_random_bytes_raise_checkpoint_error_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(PAYLOAD[:5000])
    with pytest.raises(CheckpointError, match="corrupt, truncated") as caught:
        read_state_dict(path)
    assert str(path) in str(caught.value)


def test_truncated_checkpoint_raises_checkpoint_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(1000)}, buffer)
    path = tmp_path / "truncated.pt"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        read_state_dict(path)


def test_empty_file_raises_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt:\n  it is empty"):
        read_state_dict(path)


def test_pickled_python_object_is_refused(tmp_path: Path) -> None:
    path = _saved({"w": torch.zeros(1), "config": TrainingConfig()}, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        read_state_dict(path)


def test_non_dict_checkpoint_raises_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="holds a Tensor, not a state dict"):
        read_state_dict(_saved(torch.zeros(3), tmp_path / "t.pt"))


def test_dict_with_non_tensor_entry_raises_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="entry 'epoch' is not a tensor"):
        read_state_dict(_saved({"w": torch.zeros(1), "epoch": 3}, tmp_path / "t.pt"))


def test_missing_state_dict_file_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        read_state_dict(tmp_path / "absent.pt")


def test_a_file_without_a_direct_link_says_where_it_is_linked_from_and_where_to_put_it(tmp_path):
    from samkit.models import MODELS

    page = MODELS["objectaware"].url
    with pytest.raises(CheckpointNotFoundError) as error:
        resolve_checkpoint("objectaware", cache_dir=tmp_path, download=True)
    message = str(error.value)
    assert "no direct download link" in message and f"linked from\n  {page}" in message
    assert str(tmp_path / "ObjectAwareModel.pt") in message
    assert f"download\n  {page}" not in message  # a web page saved as the .pt would not load


def test_checkpoint_messages_name_no_command_line_option(tmp_path):
    """The library's messages are read under every command line; each command adds its own options."""
    (tmp_path / "folder").mkdir()
    for call in (
        lambda: resolve_checkpoint("vit_t", cache_dir=tmp_path, download=False),
        lambda: resolve_checkpoint("vit_t", path=tmp_path / "folder"),
    ):
        with pytest.raises(CheckpointNotFoundError) as error:
            call()
        assert "--" not in str(error.value), str(error.value)
