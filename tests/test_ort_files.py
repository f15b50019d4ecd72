"""onnxruntime-web's files (webapp/ort_files.py) from each source, without the internet: a fake node_modules, a
fake `npm` on PATH, and a fake registry tarball served locally (checked against the lockfile's integrity)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from webapp.ort_files import ORT_FILES, OrtFilesError, OrtRelease, ensure_ort_files, ort_folder

VERSION = "9.9.9"
CONTENT = {name: f"content of {name}".encode() * 100 for name in ORT_FILES}


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _repo(tmp_path: Path, integrity: str, resolved: str | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    entry = {"version": VERSION, "integrity": integrity, **({"resolved": resolved} if resolved else {})}
    (repo / "package-lock.json").write_text(json.dumps({"packages": {"node_modules/onnxruntime-web": entry}}))
    return repo


def _node_modules(repo: Path, version: str = VERSION) -> None:
    package = repo / "node_modules" / "onnxruntime-web"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "onnxruntime-web", "version": version}))
    for name, data in CONTENT.items():
        (package / "dist" / name).write_bytes(data)


def _assert_built(folder: Path) -> None:
    for name, data in CONTENT.items():
        assert (folder / name).read_bytes() == data
        assert gzip.decompress((folder / f"{name}.gz").read_bytes()) == data
    record = json.loads((folder / "release.json").read_text())
    assert record["version"] == VERSION and set(record["files"]) == set(ORT_FILES)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no scratch folder left


class _Registry:
    """A local HTTP server answering every GET with the given bytes, counting the requests."""

    def __init__(self, body: bytes) -> None:
        registry = self
        self.body, self.requests = body, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                registry.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(registry.body)))
                self.end_headers()
                self.wfile.write(registry.body)

            def log_message(self, *_args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/onnxruntime-web-{VERSION}.tgz"


@pytest.fixture
def registry():
    served = _Registry(_tarball(CONTENT))
    yield served
    served.server.shutdown()


def test_the_release_is_the_lockfiles_pin():
    release = OrtRelease.from_lockfile()
    assert release.version == json.loads(Path("package.json").read_text())["dependencies"]["onnxruntime-web"]
    assert release.integrity.startswith("sha512-")
    assert release.tarball_url.endswith(f"/onnxruntime-web/-/onnxruntime-web-{release.version}.tgz")


def test_files_come_from_node_modules(tmp_path):
    repo = _repo(tmp_path, "sha512-unused")
    _node_modules(repo)
    folder = ensure_ort_files(tmp_path / "static", repo=repo, use_npm=False, download=False)
    assert folder == ort_folder(tmp_path / "static", OrtRelease.from_lockfile(repo / "package-lock.json"))
    _assert_built(folder)


def test_npm_ci_runs_where_node_modules_lacks_the_release(tmp_path, monkeypatch):
    repo = _repo(tmp_path, "sha512-unused")
    _node_modules(repo, version="1.0.0")  # an older install
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A stand-in npm: `npm ci` installs the locked version (the fake files), as the real one would.
    fake_dist = tmp_path / "dist"
    fake_dist.mkdir()
    for name, data in CONTENT.items():
        (fake_dist / name).write_bytes(data)
    script = bin_dir / "npm"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{tmp_path}/npm-args"\n'
        "mkdir -p node_modules/onnxruntime-web/dist\n"
        f"cp {fake_dist}/* node_modules/onnxruntime-web/dist/\n"
        f'echo \'{{"version": "{VERSION}"}}\' > node_modules/onnxruntime-web/package.json\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _assert_built(ensure_ort_files(tmp_path / "static", repo=repo, download=False))
    assert (tmp_path / "npm-args").read_text().split()[0] == "ci"


def test_files_come_from_the_registry_tarball_checked_against_the_lockfile(tmp_path, registry):
    repo = _repo(tmp_path, _integrity(registry.body), resolved=registry.url)
    progress = []
    folder = ensure_ort_files(
        tmp_path / "static", repo=repo, use_npm=False, progress=lambda done, total: progress.append((done, total))
    )
    _assert_built(folder)
    assert progress[-1] == (len(registry.body), len(registry.body))
    assert ensure_ort_files(tmp_path / "static", repo=repo, use_npm=False) == folder
    assert registry.requests == 1  # a complete folder is used as it is


def test_a_tarball_that_does_not_match_the_integrity_is_refused(tmp_path, registry):
    repo = _repo(tmp_path, _integrity(b"something else"), resolved=registry.url)
    with pytest.raises(OrtFilesError, match="does not match package-lock.json's integrity"):
        ensure_ort_files(tmp_path / "static", repo=repo, use_npm=False, progress=lambda *_: None)
    assert not (tmp_path / "static").exists() or not any((tmp_path / "static").iterdir())


def test_a_damaged_file_is_rebuilt(tmp_path, registry):
    repo = _repo(tmp_path, _integrity(registry.body), resolved=registry.url)
    folder = ensure_ort_files(tmp_path / "static", repo=repo, use_npm=False, progress=lambda *_: None)
    (folder / ORT_FILES[2]).write_bytes(b"damaged")
    _assert_built(ensure_ort_files(tmp_path / "static", repo=repo, use_npm=False, progress=lambda *_: None))
    assert registry.requests == 2


def test_offline_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    repo = _repo(tmp_path, "sha512-x", resolved="http://127.0.0.1:9/onnxruntime-web.tgz")  # nothing listens there
    with pytest.raises(OrtFilesError) as error:
        ensure_ort_files(tmp_path / "static", repo=repo, timeout_s=5, progress=lambda *_: None)
    message = str(error.value)
    assert "npm is not on PATH" in message and "npm ci" in message and "downloading http://127.0.0.1:9" in message
    assert "uses the server for every mask" in message


def test_a_lockfile_without_the_package_is_a_clear_error(tmp_path):
    (tmp_path / "package-lock.json").write_text(json.dumps({"packages": {}}))
    with pytest.raises(OrtFilesError, match="does not pin onnxruntime-web"):
        OrtRelease.from_lockfile(tmp_path / "package-lock.json")


def test_an_incomplete_node_modules_falls_back_to_the_registry(tmp_path, registry):
    repo = _repo(tmp_path, _integrity(registry.body), resolved=registry.url)
    _node_modules(repo)
    (repo / "node_modules" / "onnxruntime-web" / "dist" / ORT_FILES[2]).unlink()
    _assert_built(ensure_ort_files(tmp_path / "static", repo=repo, use_npm=False, progress=lambda *_: None))
    assert registry.requests == 1
