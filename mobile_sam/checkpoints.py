"""
Official checkpoint files: registry, cache folder, verified download and safe loading.

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

Files without a published hash (EfficientViT-SAM, FastSAM, MobileSAMv2's ObjectAwareModel) are trusted on
first use: the hash of the first downloaded or found copy is recorded beside it and every later use is checked
against it. FastSAM's and ObjectAwareModel's files are ultralytics pickles, read only by
`load_ultralytics_checkpoint`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import torch
from tqdm import tqdm

CACHE_DIR_ENV = "MOBILE_SAM_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 60.0
RECORD_SUFFIX = ".sha256.json"
_CHUNK_BYTES = 1 << 20

# Called as progress(done_bytes, total_bytes); total_bytes is None when the size is unknown.
ProgressCallback = Callable[[int, int | None], None]


class CheckpointError(Exception):
    """A checkpoint could not be found, downloaded, verified or read."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file is not where it was looked for (and was not downloaded)."""


class CheckpointDownloadError(CheckpointError):
    """Downloading the checkpoint failed (network, HTTP error or incomplete transfer)."""


class ChecksumError(CheckpointError):
    """A checkpoint file's size or SHA-256 differs from the expected one."""


@dataclass(frozen=True)
class CheckpointInfo:
    """One official checkpoint file. `family` is "mobile_sam", "sam", "efficientvit_sam", "fastsam" or "objectaware"."""

    name: str
    filename: str
    url: str
    family: str
    sha256: str | None
    size: int | None
    description: str
    downloadable: bool = True  # False: `url` is a page that links the file (no direct download)

    @property
    def is_state_dict(self) -> bool:
        """True for files `load_state_dict_file` reads (SAM, MobileSAM, EfficientViT-SAM); the others are
        ultralytics pickles."""
        return self.family in ("mobile_sam", "sam", "efficientvit_sam")


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_FASTSAM_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/"
# The links of mit-han-lab/efficientvit's applications/efficientvit_sam/README.md (no hash is published).
_EFFICIENTVIT_SAM_URL = "https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/"

CHECKPOINTS: Mapping[str, CheckpointInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            CheckpointInfo(
                name="vit_t",
                filename="mobile_sam.pt",
                url="https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt",
                family="mobile_sam",
                sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
                size=None,
                description="MobileSAM, TinyViT image encoder",
            ),
            CheckpointInfo(
                name="vit_b",
                filename="sam_vit_b_01ec64.pth",
                url=_SAM_URL + "sam_vit_b_01ec64.pth",
                family="sam",
                sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                size=None,
                description="SAM, ViT-B image encoder",
            ),
            CheckpointInfo(
                name="vit_l",
                filename="sam_vit_l_0b3195.pth",
                url=_SAM_URL + "sam_vit_l_0b3195.pth",
                family="sam",
                sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                size=None,
                description="SAM, ViT-L image encoder",
            ),
            CheckpointInfo(
                name="vit_h",
                filename="sam_vit_h_4b8939.pth",
                url=_SAM_URL + "sam_vit_h_4b8939.pth",
                family="sam",
                sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                size=2_564_550_879,
                description="SAM, ViT-H image encoder",
            ),
            *(
                CheckpointInfo(
                    name=f"efficientvit_sam_{variant}",
                    filename=f"efficientvit_sam_{variant}.pt",
                    url=f"{_EFFICIENTVIT_SAM_URL}efficientvit_sam_{variant}.pt",
                    family="efficientvit_sam",
                    sha256=None,
                    size=None,
                    description=f"EfficientViT-SAM-{variant.upper()}, EfficientViT image encoder at {pixels} px",
                )
                for variant, pixels in (("l0", 512), ("l1", 512), ("l2", 512), ("xl0", 1024), ("xl1", 1024))
            ),
            CheckpointInfo(
                name="fastsam-s",
                filename="FastSAM-s.pt",
                url=_FASTSAM_URL + "FastSAM-s.pt",
                family="fastsam",
                sha256=None,
                size=None,
                description="FastSAM-s, YOLOv8-s segmentation (ultralytics)",
            ),
            CheckpointInfo(
                name="fastsam-x",
                filename="FastSAM-x.pt",
                url=_FASTSAM_URL + "FastSAM-x.pt",
                family="fastsam",
                sha256=None,
                size=None,
                description="FastSAM-x, YOLOv8-x segmentation (ultralytics)",
            ),
            CheckpointInfo(
                name="objectaware",
                filename="ObjectAwareModel.pt",
                url="https://github.com/ChaoningZhang/MobileSAM/tree/master/MobileSAMv2",
                family="objectaware",
                sha256=None,
                size=None,
                description="MobileSAMv2 object-aware box detector, YOLOv8 (ultralytics); linked from that README",
                downloadable=False,
            ),
        )
    }
)
_ALIASES = MappingProxyType({"default": "vit_h"})


@dataclass(frozen=True)
class CheckpointStatus:
    """What the cache holds for one checkpoint (computed without hashing)."""

    info: CheckpointInfo
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


def get_checkpoint_info(name: str | CheckpointInfo) -> CheckpointInfo:
    """
    Look up a registry entry by name ("vit_t", "vit_b", "vit_l", "vit_h", "default", "efficientvit_sam_l0" ...
    "efficientvit_sam_xl1", "fastsam-s", "fastsam-x", "objectaware") or by file name ("mobile_sam.pt", ...),
    case-insensitively.
    A CheckpointInfo is returned as is (custom or test entries).
    """
    if isinstance(name, CheckpointInfo):
        return name
    if not isinstance(name, str):
        raise TypeError(f"Checkpoint name must be a str or CheckpointInfo, got {type(name).__name__}.")
    wanted = name.strip().lower()
    wanted = _ALIASES.get(wanted, wanted)
    for info in CHECKPOINTS.values():
        if wanted in (info.name, info.filename.lower()):
            return info
    known = ", ".join(list(CHECKPOINTS) + list(_ALIASES))
    raise ValueError(f"Unknown checkpoint {name!r}; known names: {known} (or their file names).")


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
    name: str | CheckpointInfo,
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
      name: a registry name or file name (see get_checkpoint_info), or a CheckpointInfo.
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
    info = get_checkpoint_info(name)
    if path is not None:
        explicit = Path(path).expanduser()
        if explicit.is_file():
            return explicit
        hint = (
            f"\nIt is a folder: pass the file itself (for example {explicit / info.filename}), "
            "or pass the folder as the checkpoint folder (--checkpoint-dir / cache_dir)."
            if explicit.is_dir()
            else ""
        )
        raise CheckpointNotFoundError(f"Checkpoint file {explicit} does not exist.{hint}")
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
    name: str | CheckpointInfo,
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
    info = get_checkpoint_info(name)
    folder = _cache_folder(cache_dir)
    if not info.downloadable:
        raise CheckpointDownloadError(
            f"{info.filename} has no direct download link.\n{_manual_install_hint(info, folder)}"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{info.filename}.", suffix=".part", dir=folder)
    except OSError as error:
        raise CheckpointDownloadError(
            f"Cannot write to the checkpoint folder {folder}: {error}.\n{_manual_install_hint(info, folder)}"
        ) from error
    target = folder / info.filename
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            digest = _fetch(info, out, progress, timeout, folder)
        expected = _expected_sha256(info, target)
        if expected is not None and digest != expected:
            raise ChecksumError(
                f"The downloaded {info.filename} is corrupt or not the official file:\n"
                f"  SHA-256 {digest}\n  expected {expected}\n"
                f"It was deleted; run again to retry.\n{_trust_hint(info, target)}{_manual_install_hint(info, folder)}"
            )
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)  # no-op after the rename; removes the partial file on any failure
    _write_record(target, digest)
    return target


def checkpoint_status(name: str | CheckpointInfo, cache_dir: str | Path | None = None) -> CheckpointStatus:
    """Whether a checkpoint is in the cache and already verified; fast (never hashes the file)."""
    info = get_checkpoint_info(name)
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


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """
    Read a SAM / MobileSAM checkpoint as a state dict on the CPU, with
    torch.load(weights_only=True), so no code in the file is ever executed.

    A plain state dict is expected; a dict wrapping one under "model" or "state_dict" (common
    for fine-tuned checkpoints) is unwrapped.

    Raises:
      CheckpointNotFoundError: the file does not exist.
      CheckpointError: the file is not a readable state dict (corrupt, truncated, a full
        pickled model such as an ultralytics file, or not a mapping of names to tensors).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointNotFoundError(f"Checkpoint file {file} does not exist.")
    if file.stat().st_size == 0:
        raise CheckpointError(f"Cannot read checkpoint {file}:\n  it is empty (0 bytes).")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        if "unsupported global" in str(error).lower():
            reason = (
                "it contains Python objects other than tensors (for example a full training "
                "checkpoint or an ultralytics model such as FastSAM), and only plain state dicts "
                "are read (torch.load with weights_only=True)"
            )
        else:
            reason = f"it is corrupt, truncated or not a PyTorch file ({_root_cause(error)})"
        raise CheckpointError(f"Cannot read checkpoint {file}:\n  {reason}.") from error

    if isinstance(loaded, Mapping) and not _is_tensor_mapping(loaded):
        for key in ("model", "state_dict"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and _is_tensor_mapping(inner):
                loaded = inner
                break
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"Checkpoint {file} holds a {type(loaded).__name__}, not a state dict.")
    if not _is_tensor_mapping(loaded):
        bad = next((k for k, v in loaded.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
        detail = f"entry {bad!r} is not a tensor" if bad is not None else "it is empty"
        raise CheckpointError(
            f"Checkpoint {file} is not a state dict of tensors: {detail}. Expected a mapping of parameter names "
            'to tensors, flat or under "model" or "state_dict".'
        )
    return dict(loaded)


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


def _root_cause(error: BaseException) -> str:
    """The innermost chained error as "Type: first line" (torch wraps the useful one)."""
    while (inner := error.__cause__ or error.__context__) is not None:
        error = inner
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _is_tensor_mapping(mapping: Mapping) -> bool:
    return len(mapping) > 0 and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in mapping.items()
    )


def _fetch(
    info: CheckpointInfo, out: BinaryIO, progress: ProgressCallback | bool | None, timeout: float, folder: Path
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


def _download_failed_message(info: CheckpointInfo, folder: Path, reason: str) -> str:
    return (
        f"Could not download checkpoint {info.filename} ({info.description}):\n  {reason}.\n"
        f"Nothing was left in the cache; run again to retry.\n{_manual_install_hint(info, folder)}"
    )


def _manual_install_hint(info: CheckpointInfo, folder: Path) -> str:
    expected = info.sha256 or "not published (recorded on first use)"
    return (
        f"To install it by hand, download\n  {info.url}\n"
        f"and save it as\n  {folder / info.filename}\n"
        f"(expected SHA-256: {expected}).\n"
        f"Another folder can be used with --checkpoint-dir or the {CACHE_DIR_ENV} environment variable."
    )


def _trust_hint(info: CheckpointInfo, path: Path) -> str:
    if info.sha256 is not None:
        return ""
    return (
        f"No hash is published for {info.filename}; the expected one was recorded when it was first used,\n"
        f"in {_record_path(path)}. Delete that record to trust a new copy.\n"
    )


def _expected_sha256(info: CheckpointInfo, path: Path) -> str | None:
    """The published hash, else the one recorded on first use (None if neither exists)."""
    if info.sha256 is not None:
        return info.sha256
    record = _read_record(path)
    return record["sha256"] if record is not None else None


def _verify_cached_file(path: Path, info: CheckpointInfo) -> None:
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


def _cached_mismatch_message(path: Path, info: CheckpointInfo, found: str, expected: str) -> str:
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
    target = _record_path(path)
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(record, out, indent=1)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except OSError:
        pass  # a read-only or full folder only costs a re-hash next time
    finally:
        Path(temp_name).unlink(missing_ok=True)
