"""Write a file so that readers see the old content or the new one, never a part: `atomic_path`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target` (its folder is created), renamed onto it when the block succeeds and
    removed when it fails. The file ends readable by everyone (0o644), as the web server's files must be."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: str | Path, data: bytes) -> Path:
    """Write data to target atomically; return target."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)
