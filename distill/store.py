"""The embedding store: teacher image embeddings saved once, read memory-mapped during training.

Layout of a store folder:

    index.json          teacher name, checkpoint SHA-256, input size, embedding shape, the shards, one record
                        per embedded image (path relative to `image_root`, original (H, W), shard, row) and the
                        images that could not be read (`failures`: path and reason)
    shard_00000.npy     float16 array (n, C, h, w), (n, 256, 64, 64) for the real teachers (2 MiB per image)

Every file is written to a temporary name and renamed into place, shard before index, so an interrupted run
leaves a consistent store; `embed` then resumes after the last complete shard.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mobile_sam.utils.atomic import atomic_write_bytes

INDEX_NAME = "index.json"
STORE_VERSION = 1
STORE_DTYPE = "float16"


class StoreError(ValueError):
    """A store folder that is missing, unreadable, or made with another teacher than the one asked for."""


@dataclass(frozen=True)
class ImageRecord:
    """One embedded image: `path` relative to the store's image root, `original_size` (H, W), its shard and row."""

    path: str
    original_size: tuple[int, int]
    shard: int
    row: int


@dataclass
class StoreIndex:
    """The contents of index.json (see the module doc)."""

    teacher: str
    checkpoint_sha256: str | None
    image_size: int
    embedding_shape: tuple[int, int, int]
    image_root: str
    shards: list[str] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    version: int = STORE_VERSION
    dtype: str = STORE_DTYPE

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: dict) -> StoreIndex:
        if data.get("version") != STORE_VERSION:
            raise StoreError(f"unsupported store version {data.get('version')!r} (expected {STORE_VERSION})")
        fields = dict(data)
        fields["embedding_shape"] = tuple(fields["embedding_shape"])
        fields["images"] = [
            ImageRecord(r["path"], tuple(r["original_size"]), int(r["shard"]), int(r["row"])) for r in data["images"]
        ]
        return cls(**fields)


def read_index(folder: str | Path) -> StoreIndex:
    """The index of the store in `folder`; StoreError when there is none or it is damaged."""
    path = Path(folder) / INDEX_NAME
    try:
        return StoreIndex.from_json(json.loads(path.read_text()))
    except FileNotFoundError as err:
        raise StoreError(f"{folder} holds no embedding store (no {INDEX_NAME}); run `python -m distill embed`") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StoreError(f"cannot read {path}: {err}") from err


class StoreWriter:
    """Appends embeddings to a store, `shard_size` images per shard; `flush` writes the pending shard and index.

    Opening an existing store checks that it was made by the same teacher (name, checkpoint hash, input size);
    `done` lists the images already stored, which `embed` skips.
    """

    def __init__(self, folder: str | Path, template: StoreIndex, shard_size: int = 64) -> None:
        if shard_size < 1:
            raise ValueError(f"shard size must be at least 1, got {shard_size}")
        self.folder = Path(folder)
        self.shard_size = shard_size
        if (self.folder / INDEX_NAME).exists():
            self.index = read_index(self.folder)
            _check_same_teacher(self.index, template, self.folder)
            self.index.failures = []  # failures are retried (and listed again) by each run
        else:
            self.index = template
        self._pending: list[np.ndarray] = []
        self._pending_records: list[tuple[str, tuple[int, int]]] = []

    @property
    def done(self) -> set[str]:
        """Relative paths of the images already stored (pending ones included)."""
        return {r.path for r in self.index.images} | {p for p, _ in self._pending_records}

    def add(self, path: str, original_size: tuple[int, int], embedding: np.ndarray) -> None:
        """Queue one (C, h, w) embedding; writes a shard when `shard_size` are pending."""
        if tuple(embedding.shape) != tuple(self.index.embedding_shape):
            raise ValueError(f"embedding of shape {embedding.shape}, store holds {self.index.embedding_shape}")
        self._pending.append(np.asarray(embedding, dtype=np.float16))
        self._pending_records.append((path, (int(original_size[0]), int(original_size[1]))))
        if len(self._pending) >= self.shard_size:
            self.flush()

    def add_failure(self, path: str, reason: str) -> None:
        self.index.failures.append({"path": path, "error": reason})

    def flush(self) -> None:
        """Write the pending embeddings as a new shard (atomically), then the index."""
        if self._pending:
            shard = len(self.index.shards)
            name = f"shard_{shard:05d}.npy"
            buffer = io.BytesIO()
            np.save(buffer, np.stack(self._pending))
            atomic_write_bytes(self.folder / name, buffer.getvalue())
            self.index.shards.append(name)
            self.index.images.extend(
                ImageRecord(path, size, shard, row) for row, (path, size) in enumerate(self._pending_records)
            )
            self._pending, self._pending_records = [], []
        atomic_write_bytes(self.folder / INDEX_NAME, self.index.to_json())


def _check_same_teacher(found: StoreIndex, wanted: StoreIndex, folder: Path) -> None:
    for name in ("teacher", "checkpoint_sha256", "image_size", "embedding_shape", "image_root"):
        if getattr(found, name) != getattr(wanted, name):
            raise StoreError(
                f"{folder} was made with {name}={getattr(found, name)!r}, this run has {getattr(wanted, name)!r}; "
                "use another output folder"
            )


class EmbeddingStore:
    """Read access to a store: `embedding(i)` is image i's (C, h, w) float16 embedding, memory-mapped."""

    def __init__(self, folder: str | Path, image_root: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        self.image_root = Path(image_root) if image_root is not None else Path(self.index.image_root)
        self._shards = [np.load(self.folder / name, mmap_mode="r") for name in self.index.shards]

    def __len__(self) -> int:
        return len(self.index.images)

    def image_path(self, i: int) -> Path:
        return self.image_root / self.index.images[i].path

    def embedding(self, i: int) -> np.ndarray:
        record = self.index.images[i]
        return self._shards[record.shard][record.row]
