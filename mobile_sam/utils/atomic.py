"""
Atomic file writes: every file this project writes appears whole or not at all.

Data goes to a temporary file beside the target, which is renamed onto it only when the writing succeeded;
on any failure (Ctrl-C included) the temporary file is removed and an older target stays as it was. The file
gets the permissions a plain `open(path, "wb")` would give (0666 less the umask).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A new empty temporary file beside `path` for the block to write; renamed onto `path` when the block
    succeeds, removed when it fails. The folder is created if needed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (flushed to disk before the rename) and return the path."""
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return Path(path)
