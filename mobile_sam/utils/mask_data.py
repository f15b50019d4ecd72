"""`MaskData`: a batch of candidate masks as parallel columns that are filtered and concatenated together."""
from __future__ import annotations

from typing import Any

import torch


class MaskData:
    """Columns of equal length: torch tensors (indexed on dim 0) or Python lists.

    Every column must describe the same candidates in the same order; `filter` and `cat` keep them aligned.
    """

    def __init__(self, **columns: torch.Tensor | list[Any]) -> None:
        self._columns: dict[str, torch.Tensor | list[Any]] = {}
        for key, value in columns.items():
            self[key] = value

    def __setitem__(self, key: str, value: torch.Tensor | list[Any]) -> None:
        if not isinstance(value, (torch.Tensor, list)):
            raise TypeError(f"MaskData columns are torch tensors or lists, got {type(value).__name__} for {key!r}")
        self._columns[key] = value

    def __getitem__(self, key: str) -> torch.Tensor | list[Any]:
        return self._columns[key]

    def __delitem__(self, key: str) -> None:
        del self._columns[key]

    def __len__(self) -> int:
        """Number of candidates (0 for no columns)."""
        for value in self._columns.values():
            return len(value)
        return 0

    def filter(self, keep: torch.Tensor) -> None:
        """Keep the candidates selected by `keep`: a bool mask (N,) or int64 indices (in that order)."""
        if keep.dtype == torch.bool:
            indices = torch.nonzero(keep.cpu()).flatten()
        else:
            indices = keep.cpu().to(torch.int64)
        index_list = indices.tolist()
        for key, value in self._columns.items():
            if isinstance(value, torch.Tensor):
                self._columns[key] = value[indices.to(value.device)]
            else:
                self._columns[key] = [value[i] for i in index_list]

    def cat(self, other: "MaskData") -> None:
        """Append the candidates of `other` (the first `cat` into an empty MaskData adopts its columns)."""
        if not self._columns:
            self._columns = dict(other._columns)
            return
        if set(self._columns) != set(other._columns):
            raise ValueError(f"cannot concatenate MaskData with columns {sorted(self._columns)} and {sorted(other._columns)}")
        for key, value in other._columns.items():
            mine = self._columns[key]
            if isinstance(mine, torch.Tensor):
                self._columns[key] = torch.cat([mine, value], dim=0)
            else:
                self._columns[key] = mine + list(value)
