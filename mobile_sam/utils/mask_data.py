"""`MaskData`: a batch of candidate masks as parallel columns that are filtered and concatenated together."""

from __future__ import annotations

from collections.abc import ItemsView
from typing import Any

import numpy as np
import torch

Column = torch.Tensor | np.ndarray | list[Any]


class MaskData:
    """Columns of equal length: torch tensors, numpy arrays (both indexed on dim 0) or Python lists.

    The official `MaskData` API: item access, `items`, `filter`, `cat` and `to_numpy`. Every column must
    describe the same candidates in the same order; `filter` and `cat` keep them aligned.
    """

    def __init__(self, **columns: Column) -> None:
        self._stats: dict[str, Column] = {}
        for key, value in columns.items():
            self[key] = value

    def __setitem__(self, key: str, item: Column) -> None:
        if not isinstance(item, (torch.Tensor, np.ndarray, list)):
            raise TypeError(
                f"MaskData columns are torch tensors, numpy arrays or lists, got {type(item).__name__} for {key!r}"
            )
        self._stats[key] = item

    def __getitem__(self, key: str) -> Column:
        return self._stats[key]

    def __delitem__(self, key: str) -> None:
        del self._stats[key]

    def items(self) -> ItemsView[str, Column]:
        return self._stats.items()

    def __len__(self) -> int:
        """Number of candidates (0 for no columns)."""
        for value in self._stats.values():
            return len(value)
        return 0

    def filter(self, keep: torch.Tensor | np.ndarray) -> None:
        """Keep the candidates selected by `keep`: a bool mask (N,) or integer indices (kept in that order)."""
        keep = torch.as_tensor(keep)
        indices = torch.nonzero(keep.cpu()).flatten() if keep.dtype == torch.bool else keep.cpu().to(torch.int64)
        index_list = indices.tolist()
        for key, value in self._stats.items():
            if isinstance(value, torch.Tensor):
                self._stats[key] = value[indices.to(value.device)]
            elif isinstance(value, np.ndarray):
                self._stats[key] = value[indices.numpy()]
            else:
                self._stats[key] = [value[i] for i in index_list]

    def cat(self, new_stats: MaskData) -> None:
        """Append the candidates of `new_stats` (the first `cat` into an empty MaskData adopts its columns).

        Both must have the same columns of the same kinds (the official code would misalign them silently).
        """
        if not self._stats:
            self._stats = dict(new_stats.items())
            return
        if set(self._stats) != set(dict(new_stats.items())):
            raise ValueError(
                f"cannot concatenate MaskData with columns {sorted(self._stats)} and {sorted(dict(new_stats.items()))}"
            )
        for key, value in new_stats.items():
            mine = self._stats[key]
            if isinstance(mine, torch.Tensor):
                self._stats[key] = torch.cat([mine, torch.as_tensor(value, device=mine.device)], dim=0)
            elif isinstance(mine, np.ndarray):
                self._stats[key] = np.concatenate([mine, np.asarray(value)], axis=0)
            else:
                self._stats[key] = mine + list(value)

    def to_numpy(self) -> None:
        """Turn every tensor column into a numpy array (on the CPU)."""
        for key, value in self._stats.items():
            if isinstance(value, torch.Tensor):
                self._stats[key] = value.detach().cpu().numpy()
