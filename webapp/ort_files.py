"""onnxruntime-web's files for the page's mask decoder, put in a static folder: `ensure_ort_files`.

The release (version and the npm tarball's sha512 integrity) is the one package-lock.json pins: one source.
The page needs three files of its dist/ folder (ORT_FILES): the ES module entry of the WebAssembly build, its
Emscripten loader and the SIMD + threads WebAssembly binary. They are taken, in this order, from

1. node_modules/onnxruntime-web, when `npm ci` has run and installed the locked version;
2. `npm ci`, where npm is on PATH (it checks the lockfile's integrity itself);
3. the npm registry's tarball, downloaded by Python and checked against the lockfile's integrity (a Hugging
   Face Space's build runs pip only: there the files come this way when the app starts).

The folder is built beside its final place and renamed into it, with a record (`RECORD`) of the release and the
files' SHA-256 written last; a folder without a matching record is rebuilt. Each file also gets a gzip copy
(name + ".gz") for clients that accept gzip. Without any source (offline, no npm), `OrtFilesError` says why;
the app then keeps the server round trip for every click.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATIC_DIR = Path(__file__).resolve().parent / "static"
PACKAGE = "onnxruntime-web"
ENTRY = "ort.wasm.min.mjs"
ORT_FILES = (ENTRY, "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
RECORD = "release.json"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
NPM_TIMEOUT_S = 300
_CHUNK = 1 << 20

Progress = Callable[[int, "int | None"], None]


class OrtFilesError(RuntimeError):
    """onnxruntime-web's files could not be put in place (the message says why and what to do)."""


@dataclass(frozen=True)
class OrtRelease:
    """The locked onnxruntime-web: version, tarball integrity ("sha512-<base64>") and tarball URL."""

    version: str
    integrity: str
    tarball_url: str

    @classmethod
    def from_lockfile(cls, lockfile: str | Path = REPO / "package-lock.json") -> OrtRelease:
        """The release package-lock.json pins (npm's registry: $npm_config_registry, else registry.npmjs.org)."""
        try:
            entry = json.loads(Path(lockfile).read_text())["packages"][f"node_modules/{PACKAGE}"]
            version, integrity = entry["version"], entry["integrity"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise OrtFilesError(f"{lockfile} does not pin {PACKAGE} (version and integrity): {error}") from error
        if not integrity.startswith("sha512-"):
            raise OrtFilesError(f"{lockfile}: {PACKAGE}'s integrity is not a sha512 one: {integrity}")
        registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY
        default_url = f"{registry.rstrip('/')}/{PACKAGE}/-/{PACKAGE}-{version}.tgz"
        return cls(version, integrity, entry.get("resolved", default_url))


def ort_folder(static_dir: str | Path, release: OrtRelease) -> Path:
    """Where a release's files live in static_dir: <static_dir>/onnxruntime-web-<version>."""
    return Path(static_dir) / f"{PACKAGE}-{release.version}"


def ensure_ort_files(
    static_dir: str | Path = STATIC_DIR,
    *,
    release: OrtRelease | None = None,
    repo: str | Path = REPO,
    use_npm: bool = True,
    download: bool = True,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """The folder holding ORT_FILES of the locked release (and their .gz copies), built when missing.

    Args:
        static_dir: the folder of built static files (created when missing).
        release: the release to put in place (default: package-lock.json's, in repo).
        repo: the checkout holding package-lock.json and, after `npm ci`, node_modules.
        use_npm: run `npm ci` when node_modules lacks the release and npm is on PATH.
        download: download the registry's tarball when neither node_modules nor npm gave the files.
        progress: called with (bytes so far, total or None) while downloading; default: a line on stderr.
        timeout_s: network time-out of the download, in seconds.
    Raises:
        OrtFilesError: no source gave the files; the message lists what each one answered.
    """
    repo = Path(repo)
    release = release or OrtRelease.from_lockfile(repo / "package-lock.json")
    folder = ort_folder(static_dir, release)
    if _is_complete(folder, release):
        return folder
    reasons = []
    dist = repo / "node_modules" / PACKAGE / "dist"
    if use_npm and _installed_version(repo) != release.version:
        reasons.extend(_npm_ci(repo))
    if _installed_version(repo) == release.version:
        try:
            return _build(folder, release, lambda name: (dist / name).read_bytes())
        except OrtFilesError as error:
            reasons.append(f"node_modules/{PACKAGE}: {error}")
    else:
        reasons.append(f"node_modules/{PACKAGE} does not hold version {release.version} (`npm ci` installs it)")
    if download:
        try:
            with tempfile.TemporaryFile() as tarball:
                _download(release, tarball, progress, timeout_s)
                tarball.seek(0)
                with tarfile.open(fileobj=tarball, mode="r:gz") as archive:
                    return _build(folder, release, lambda name: _member(archive, name))
        except OrtFilesError as error:
            reasons.append(str(error))
    raise OrtFilesError(
        f"{PACKAGE} {release.version} is not available for the in-browser decoder: "
        + "; ".join(reasons)
        + ". The page uses the server for every mask until then."
    )


def _is_complete(folder: Path, release: OrtRelease) -> bool:
    """The folder has the release's record and every file with the recorded SHA-256."""
    try:
        record = json.loads((folder / RECORD).read_text())
        if (record["version"], record["integrity"]) != (release.version, release.integrity):
            return False
        return all(_sha256((folder / name).read_bytes()) == record["files"][name] for name in ORT_FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _installed_version(repo: Path) -> str | None:
    try:
        return json.loads((repo / "node_modules" / PACKAGE / "package.json").read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        return None


def _npm_ci(repo: Path) -> list[str]:
    """Run `npm ci` in repo; return the reasons it gave nothing (empty when it ran)."""
    npm = shutil.which("npm")
    if npm is None:
        return ["npm is not on PATH"]
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--fetch-retries=1"]
    print(f"Installing {PACKAGE} for the in-browser decoder: npm ci (in {repo}) ...", file=sys.stderr, flush=True)
    try:
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [f"`npm ci` failed: {error}"]
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return [f"`npm ci` failed ({lines[-1] if lines else f'exit status {result.returncode}'})"]
    return []


def _download(release: OrtRelease, out, progress: Progress | None, timeout_s: float) -> None:
    """Stream the tarball into out and check its sha512 against the release's integrity."""
    digest = hashlib.sha512()
    received = 0
    request = urllib.request.Request(release.tarball_url, headers={"User-Agent": "mobile-sam-demo"})
    report = progress or _print_progress(f"Downloading {release.tarball_url}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            report(0, total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                report(received, total)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = f"HTTP {error.code}" if isinstance(error, urllib.error.HTTPError) else str(error)
        raise OrtFilesError(f"downloading {release.tarball_url} failed ({reason})") from error
    found = "sha512-" + base64.b64encode(digest.digest()).decode()
    if found != release.integrity:
        raise OrtFilesError(
            f"{release.tarball_url} does not match package-lock.json's integrity "
            f"(expected {release.integrity}, got {found}, {received:,} bytes)"
        )


def _print_progress(label: str) -> Progress:
    """A line on stderr at the start and at every further tenth of the download (log-friendly: no carriage returns)."""
    shown = [-1]

    def report(done: int, total: int | None) -> None:
        step = 10 * done // total if total else done // (10 * _CHUNK)
        if step > shown[0]:
            shown[0] = step
            of = f" of {total / 1e6:.1f}" if total else ""
            print(f"{label}: {done / 1e6:.1f}{of} MB", file=sys.stderr, flush=True)

    return report


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        member = archive.extractfile(f"package/dist/{name}")
    except KeyError:
        member = None
    if member is None:
        raise OrtFilesError(f"the {PACKAGE} tarball has no dist/{name}")
    return member.read()


def _build(folder: Path, release: OrtRelease, read: Callable[[str], bytes]) -> Path:
    """Write the files (and .gz copies) into a new folder beside `folder`, the record last, then rename it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        hashes = {}
        for name in ORT_FILES:
            data = read(name)
            (scratch / name).write_bytes(data)
            (scratch / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
            hashes[name] = _sha256(data)
        record = {"package": PACKAGE, "version": release.version, "integrity": release.integrity, "files": hashes}
        (scratch / RECORD).write_text(json.dumps(record, indent=1))
        scratch.chmod(0o755)
        for path in scratch.iterdir():
            path.chmod(0o644)
        if folder.exists():
            shutil.rmtree(folder)  # an incomplete or older build
        try:
            scratch.rename(folder)
        except OSError:
            if not _is_complete(folder, release):  # another process built it in the meantime, or a real error
                raise
    except OSError as error:
        raise OrtFilesError(f"could not write {folder}: {error}") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
