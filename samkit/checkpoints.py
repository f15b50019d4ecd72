"""
Official checkpoint files: cache folder, verified download and safe loading (the files are listed in
`samkit.models`).

Where a checkpoint comes from (`resolve_checkpoint`):
  1. an explicit path: used as given. It must exist; its hash is not checked, because users
     legitimately pass fine-tuned or converted files there (`build_sam` still checks every key
     and shape strictly).
  2. the cache folder (`cache_dir` argument, else $MOBILE_SAM_CACHE_DIR, else
     $XDG_CACHE_HOME/mobile_sam, else ~/.cache/mobile_sam): the file is checked against its
     SHA-256. Hashing a 2.5 GB file takes seconds, so a verification record
     `<file>.sha256.json` (size, mtime, sha256) is kept beside it and the hash is recomputed
     only when the file changed.
  3. a download from the official URL into a temporary file in the cache folder, checked,
     then renamed into place atomically. Failures of any kind delete the temporary file.

Files without a published hash (FastSAM, MobileSAMv2's ObjectAwareModel) are trusted on first use:
the hash of the first downloaded or found copy is recorded beside it and every later use is checked
against it. Those files are ultralytics pickles, read only by `load_ultralytics_checkpoint`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from tqdm import tqdm

from mobile_sam.build_sam import CheckpointError, CheckpointNotFoundError
from mobile_sam.utils.atomic import atomic_path, atomic_write_bytes

from .extras import ULTRALYTICS_USE, require
from .models import ModelInfo, model_info

__all__ = [
    "CACHE_DIR_ENV",
    "CheckpointDownloadError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointStatus",
    "ChecksumError",
    "checkpoint_status",
    "default_cache_dir",
    "download_checkpoint",
    "load_ultralytics_checkpoint",
    "resolve_checkpoint",
    "sha256_file",
]

CACHE_DIR_ENV = "MOBILE_SAM_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 60.0
RECORD_SUFFIX = ".sha256.json"
_CHUNK_BYTES = 1 << 20

# Called as progress(done_bytes, total_bytes); total_bytes is None when the size is unknown.
ProgressCallback = Callable[[int, int | None], None]


class CheckpointDownloadError(CheckpointError):
    """Downloading the checkpoint failed (network, HTTP error or incomplete transfer)."""


class ChecksumError(CheckpointError):
    """A checkpoint file's size or SHA-256 differs from the expected one."""


@dataclass(frozen=True)
class CheckpointStatus:
    """What the cache holds for one checkpoint (computed without hashing)."""

    info: ModelInfo
    path: Path  # where the file is, or where it would be put
    present: bool
    verified: bool  # the recorded hash still describes the file and matches the expected one

    @property
    def state(self) -> str:
        """One of "verified", "unverified" (present, hash not checked yet) or "missing"."""
        if not self.present:
            return "missing"
        return "verified" if self.verified else "unverified"

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def url(self) -> str:
        return self.info.url


def default_cache_dir() -> Path:
    """$MOBILE_SAM_CACHE_DIR, else $XDG_CACHE_HOME/mobile_sam, else ~/.cache/mobile_sam."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).expanduser().is_absolute():
        return Path(xdg).expanduser() / "mobile_sam"
    return Path.home() / ".cache" / "mobile_sam"


def _cache_folder(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's contents."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def resolve_checkpoint(
    name: str | ModelInfo,
    path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    progress: ProgressCallback | bool | None = None,
    *,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """
    Return the path of a usable checkpoint file, downloading it if needed (see the module doc).

    Arguments:
      name: a catalog name, alias or file name (see `samkit.models.model_info`), or a ModelInfo.
      path: an explicit file; when given it is returned (it must exist) and nothing else is tried.
      cache_dir: the cache folder; None means default_cache_dir().
      download: whether a missing file may be downloaded.
      progress: None or True shows a tqdm bar on stderr, False shows nothing, a callable is
        called as progress(done_bytes, total_bytes) during the download.
      timeout: seconds to wait for the server before giving up (per connection/read).

    Raises:
      CheckpointNotFoundError: the explicit path does not exist, or the file is not cached and
        download is False.
      CheckpointDownloadError: the download failed (nothing is left in the cache).
      ChecksumError: the cached or downloaded file does not match its expected SHA-256.
    """
    info = model_info(name)
    if path is not None:
        explicit = Path(path).expanduser()
        if explicit.is_file():
            return explicit
        if explicit.is_dir():
            raise CheckpointNotFoundError(
                f"Checkpoint file {explicit} is a folder: pass the file itself (for example "
                f"{explicit / info.filename}), or use the folder as the checkpoint cache folder (cache_dir)."
            )
        raise CheckpointNotFoundError(f"Checkpoint file {explicit} does not exist.")
    folder = _cache_folder(cache_dir)
    cached = folder / info.filename
    if cached.is_file():
        _verify_cached_file(cached, info)
        return cached
    if not download or not info.downloadable:
        reason = "downloading is disabled" if info.downloadable else "it has no direct download link"
        raise CheckpointNotFoundError(
            f"Checkpoint {info.filename} ({info.description}) is not in {folder} "
            f"and {reason}.\n{_manual_install_hint(info, folder)}"
        )
    return download_checkpoint(info, cache_dir=folder, progress=progress, timeout=timeout)


def download_checkpoint(
    name: str | ModelInfo,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | bool | None = None,
    *,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """
    Download a checkpoint into the cache folder (replacing any existing copy) and return its path.

    The data goes to a temporary file in the same folder, is checked (length, SHA-256), then
    renamed into place atomically; on any failure, Ctrl-C included, the temporary file is deleted.
    Arguments and errors as in resolve_checkpoint.
    """
    info = model_info(name)
    folder = _cache_folder(cache_dir)
    if not info.downloadable:
        raise CheckpointDownloadError(
            f"{info.filename} has no direct download link.\n{_manual_install_hint(info, folder)}"
        )
    target = folder / info.filename
    try:
        with atomic_path(target) as temporary, open(temporary, "wb") as out:
            digest = _fetch(info, out, progress, timeout, folder)
            expected = _expected_sha256(info, target)
            if expected is not None and digest != expected:
                raise ChecksumError(
                    f"The downloaded {info.filename} is corrupt or not the official file:\n"
                    f"  SHA-256 {digest}\n  expected {expected}\n"
                    f"It was deleted; run again to retry.\n{_trust_hint(info, target)}"
                    f"{_manual_install_hint(info, folder)}"
                )
    except OSError as error:
        raise CheckpointDownloadError(
            f"Cannot write to the checkpoint folder {folder}: {error}.\n{_manual_install_hint(info, folder)}"
        ) from error
    _write_record(target, digest)
    return target


def checkpoint_status(name: str | ModelInfo, cache_dir: str | Path | None = None) -> CheckpointStatus:
    """Whether a checkpoint is in the cache and already verified; fast (never hashes the file)."""
    info = model_info(name)
    folder = _cache_folder(cache_dir)
    path = folder / info.filename
    if not path.is_file():
        return CheckpointStatus(info=info, path=path, present=False, verified=False)
    record = _read_record(path)
    verified = (
        record is not None
        and _record_describes(record, path)
        and (info.sha256 is None or record["sha256"] == info.sha256)
    )
    return CheckpointStatus(info=info, path=path, present=True, verified=verified)


def load_ultralytics_checkpoint(path: str | Path) -> torch.nn.Module:
    """
    The network inside an ultralytics checkpoint (FastSAM-s/x.pt, MobileSAMv2's ObjectAwareModel.pt), in
    eval mode, float32, on the CPU.

    These files are pickles that only ultralytics can read (it is imported here, not with `mobile_sam`).
    They are read with ultralytics' restricted loader (`torch.load(weights_only=True)` plus its allow-list
    of ultralytics classes); pass only the verified cache (`resolve_checkpoint`) or a path you chose.

    Raises:
      CheckpointNotFoundError: the file does not exist.
      CheckpointError: the restricted loader cannot read it, or it holds no network.
    """
    require("ultralytics", ULTRALYTICS_USE)
    from ultralytics.nn.tasks import torch_safe_load

    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointNotFoundError(f"Checkpoint file {file} does not exist.")
    try:
        checkpoint, _ = torch_safe_load(str(file), safe_only=True)
    except TypeError as error:
        raise CheckpointError(
            f"{file} could not be read with ultralytics' restricted loader ({error}). If you trust the file, load "
            "it yourself with ultralytics and pass the network (its .model) instead of the path."
        ) from error
    network = (checkpoint.get("ema") or checkpoint.get("model")) if isinstance(checkpoint, dict) else None
    if not isinstance(network, torch.nn.Module):
        raise CheckpointError(f"{file} is not an ultralytics checkpoint (no 'model' network inside).")
    return network.float().eval()


def _fetch(
    info: ModelInfo, out: BinaryIO, progress: ProgressCallback | bool | None, timeout: float, folder: Path
) -> str:
    """Stream info.url into out; return the SHA-256 of what was received."""
    digest = hashlib.sha256()
    received = 0
    request = urllib.request.Request(info.url, headers={"User-Agent": "mobile-sam-demo"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            announced = int(length) if length and length.isdigit() else None
            total = announced if announced is not None else info.size
            show_bar = progress is None or progress is True
            bar = (
                tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=info.filename)
                if show_bar
                else None
            )
            try:
                if callable(progress):
                    progress(0, total)
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    elif callable(progress):
                        progress(received, total)
            finally:
                if bar is not None:
                    bar.close()
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
        raise CheckpointDownloadError(_download_failed_message(info, folder, _describe_network_error(error))) from error
    if announced is not None and received != announced:
        reason = f"the connection closed after {received:,} of {announced:,} bytes"
        raise CheckpointDownloadError(_download_failed_message(info, folder, reason))
    if info.size is not None and received != info.size:
        reason = f"received {received:,} bytes, expected {info.size:,}"
        raise CheckpointDownloadError(_download_failed_message(info, folder, reason))
    return digest.hexdigest()


def _describe_network_error(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"no connection ({error.reason})"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _download_failed_message(info: ModelInfo, folder: Path, reason: str) -> str:
    return (
        f"Could not download checkpoint {info.filename} ({info.description}):\n  {reason}.\n"
        f"Nothing was left in the cache; run again to retry.\n{_manual_install_hint(info, folder)}"
    )


def _manual_install_hint(info: ModelInfo, folder: Path) -> str:
    expected = info.sha256 or "not published (recorded on first use)"
    target = folder / info.filename
    if info.downloadable:
        where = f"To install it by hand, download\n  {info.url}\nand save it as\n  {target}\n"
    else:  # the URL is the web page that links the file: saving the page itself as the file would not load
        where = (
            f"{info.filename} has no direct download link; it is linked from\n  {info.url}\n"
            f"Download it through that link and save it as\n  {target}\n"
        )
    return (
        f"{where}(expected SHA-256: {expected}).\n"
        f"Another cache folder can be set with the {CACHE_DIR_ENV} environment variable."
    )


def _trust_hint(info: ModelInfo, path: Path) -> str:
    if info.sha256 is not None:
        return ""
    return (
        f"No hash is published for {info.filename}; the expected one was recorded when it was first used,\n"
        f"in {_record_path(path)}. Delete that record to trust a new copy.\n"
    )


def _expected_sha256(info: ModelInfo, path: Path) -> str | None:
    """The published hash, else the one recorded on first use (None if neither exists)."""
    if info.sha256 is not None:
        return info.sha256
    record = _read_record(path)
    return record["sha256"] if record is not None else None


def _verify_cached_file(path: Path, info: ModelInfo) -> None:
    """Check a cached file against its expected hash, skipping the hashing when the record is current."""
    size = path.stat().st_size
    if info.size is not None and size != info.size:
        raise ChecksumError(_cached_mismatch_message(path, info, f"{size:,} bytes", f"{info.size:,} bytes"))
    record = _read_record(path)
    expected = _expected_sha256(info, path)
    if record is not None and _record_describes(record, path) and record["sha256"] == expected:
        return
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise ChecksumError(_cached_mismatch_message(path, info, f"SHA-256 {actual}", f"SHA-256 {expected}"))
    _write_record(path, actual)


def _cached_mismatch_message(path: Path, info: ModelInfo, found: str, expected: str) -> str:
    origin = "the official file" if info.sha256 is not None else "the copy recorded on first use"
    return (
        f"Checkpoint {path} does not match {origin}:\n  found    {found}\n  expected {expected}\n"
        f"It may be truncated or a different file. Delete it to download it again, "
        f"or replace it with the file from\n  {info.url}\n{_trust_hint(info, path)}"
    ).rstrip("\n")


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def _read_record(path: Path) -> dict | None:
    """The verification record beside path, or None if absent or unreadable."""
    try:
        record = json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return None
    valid = (
        isinstance(record, dict)
        and isinstance(record.get("sha256"), str)
        and isinstance(record.get("size"), int)
        and isinstance(record.get("mtime_ns"), int)
    )
    return record if valid else None


def _record_describes(record: dict, path: Path) -> bool:
    """True if the file still has the size and modification time the record was made for."""
    stat = path.stat()
    return record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns


def _write_record(path: Path, sha256: str) -> None:
    """Write the verification record atomically; best effort (a read-only folder just means re-hashing)."""
    stat = path.stat()
    record = {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    try:
        atomic_write_bytes(_record_path(path), json.dumps(record, indent=1).encode("utf-8"))
    except OSError:
        pass  # a read-only or full folder only costs a re-hash next time
