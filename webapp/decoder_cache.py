"""The web page's decoder files (`export_low_res_decoder` of a loaded model), exported once and kept on disk.

An entry is keyed by the weights' SHA-256 (the checkpoint file's; `weights_sha256(sam)` for weights without a
file, such as random ones) and the export settings. It is two graphs: the prompts' (decoder-<16 hex>.onnx) and the
image side's (decoder-<16 hex>.image.onnx, run once per image), both named by the SHA-256 of their contents
together, so the page may cache their URLs forever and a new export never reuses an old URL; a gzip copy
(name + ".gz") sits beside each for clients that accept gzip. Every file is written atomically; concurrent
requests for one entry export it once. With `max_entries`, the least recently used entries beyond it are deleted
after each export (old weights, old settings, old graph versions).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mobile_sam.modeling import Sam
from mobile_sam.onnx.export import DEFAULT_OPSET
from mobile_sam.onnx.low_res import WeightsDtype, export_low_res_decoder, image_side_path
from mobile_sam.utils.atomic import atomic_write_bytes

# Bump when SamLowResOnnxModel or its export changes a decoder file (what it computes, or how): old entries are
# then unused.
GRAPH_VERSION = 4
FILE_NAME = re.compile(r"decoder-[0-9a-f]{16}(\.image)?\.onnx")


@dataclass(frozen=True)
class DecoderSettings:
    """How the decoder is exported (part of the cache key)."""

    opset: int = DEFAULT_OPSET
    weights_dtype: WeightsDtype = "float16"


@dataclass(frozen=True)
class DecoderFile:
    """One cached decoder: the prompts' graph's path (name decoder-<content hash>.onnx; the image side's graph is
    beside it, `image_side_path`), the SHA-256 of both graphs' contents (the prompts' then the image side's bytes)
    and their sizes in bytes together."""

    path: Path
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def image_side(self) -> Path:
        return image_side_path(self.path)


class DecoderCache:
    """Decoder files under `folder`, one per (weights, settings); at most max_entries of them (None: no bound)."""

    def __init__(
        self, folder: str | Path, settings: DecoderSettings | None = None, max_entries: int | None = None
    ) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.folder = Path(folder)
        self.settings = settings or DecoderSettings()
        self.max_entries = max_entries
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def decoder(self, sam: Sam, weights_sha256: str) -> DecoderFile:
        """The decoder file of `sam`, whose weights have this SHA-256; exported on the first call (about a second)."""
        key = self._key(weights_sha256)
        with self._lock(key):
            found = self._lookup(key)
            if found is not None:
                return found
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".export-", dir=self.folder) as scratch:
                exported = export_low_res_decoder(
                    sam, Path(scratch) / "decoder.onnx", self.settings.opset, self.settings.weights_dtype
                )
                prompts, image_side = exported.read_bytes(), image_side_path(exported).read_bytes()
            sha256 = hashlib.sha256(prompts + image_side).hexdigest()
            path = self.folder / f"decoder-{sha256[:16]}.onnx"
            # The image side first: a record names the prompts' file, which appears only when both are in place.
            for target, data in ((image_side_path(path), image_side), (path, prompts)):
                atomic_write_bytes(target.with_name(f"{target.name}.gz"), gzip.compress(data, compresslevel=9, mtime=0))
                atomic_write_bytes(target, data)
            size = len(prompts) + len(image_side)
            record = {"file": path.name, "sha256": sha256, "size": size}
            atomic_write_bytes(self._record(key), json.dumps(record).encode())
            self._prune()
            return DecoderFile(path, sha256, size)

    def lookup(self, weights_sha256: str) -> DecoderFile | None:
        """The decoder file of these weights when it is exported already (never exports), else None."""
        return self._lookup(self._key(weights_sha256))

    def file(self, name: str) -> Path | None:
        """The path of a decoder file by its name (as in its URL), or None for anything else."""
        if not FILE_NAME.fullmatch(name):
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def _key(self, weights_sha256: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", weights_sha256):
            raise ValueError(f"weights_sha256 must be 64 lowercase hex digits, got {weights_sha256!r}")
        fields = {"graph": GRAPH_VERSION, "weights_sha256": weights_sha256, **asdict(self.settings)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]

    def _record(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def _lookup(self, key: str) -> DecoderFile | None:
        """The entry's files when its record and both graphs are there and agree in size."""
        try:
            record = json.loads(self._record(key).read_text())
            path = self.file(record["file"])
            if path is not None and path.stat().st_size + image_side_path(path).stat().st_size == record["size"]:
                os.utime(self._record(key))  # recently used
                return DecoderFile(path, record["sha256"], record["size"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def _prune(self) -> None:
        """Delete the least recently used entries (record, file and gzip copy) beyond max_entries; a file that no
        record names yet (another process is writing its entry) is left alone."""
        if self.max_entries is None:
            return
        records = sorted(self.folder.glob("*.json"), key=_mtime, reverse=True)
        kept = {_record_file(record) for record in records[: self.max_entries]}
        for record in records[self.max_entries :]:
            name = _record_file(record)
            record.unlink(missing_ok=True)
            if name is not None and name not in kept and self.file(name) is not None:  # another entry may share it
                for graph in (self.folder / name, image_side_path(self.folder / name)):
                    graph.unlink(missing_ok=True)
                    graph.with_name(f"{graph.name}.gz").unlink(missing_ok=True)

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def _record_file(record: Path) -> str | None:
    """The decoder file an entry's record names, or None for an unreadable record."""
    try:
        return json.loads(record.read_text())["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def weights_sha256(sam: Sam) -> str:
    """SHA-256 of the decoder's weights (prompt encoder and mask decoder state, by name), for weights with no
    checkpoint file: equal weights give equal keys."""
    digest = hashlib.sha256()
    for module_name in ("prompt_encoder", "mask_decoder"):
        for name, tensor in sorted(getattr(sam, module_name).state_dict().items()):
            digest.update(f"{module_name}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
