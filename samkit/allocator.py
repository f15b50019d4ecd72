"""Letting glibc malloc keep freed memory, so large short-lived tensors stop page-faulting.

Segment-everything and training allocate and free tensors of a few to a few tens of MB thousands of
times. By default glibc returns such memory to the kernel (mmap for large blocks, heap trimming for the
rest), and every new tensor then page-faults its pages back in: on a CPU this costs about a quarter of the
mask decoder's time in segment-everything, and a training step of the TinyViT student took 3.4 s instead of
2.5 s. `keep_freed_memory` changes that for the whole process, so it is never called by library code:
programs opt in once at start (the `python -m everything` and `python -m distill` CLIs do).
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(trim_threshold: int = 1 << 30, mmap_threshold: int = 32 << 20) -> bool:
    """Make glibc keep up to `trim_threshold` bytes of freed heap and serve blocks below `mmap_threshold`
    (at most 32 MiB) from the heap. Process-wide. Returns False, changing nothing, where this is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
