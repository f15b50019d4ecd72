"""MaskData keeps its columns aligned through filter and cat, with the official API (numpy columns, items,
to_numpy)."""

import numpy as np
import pytest
import torch

from mobile_sam.utils.mask_data import MaskData


def test_filter_by_bool_mask_and_by_indices_keeps_columns_aligned() -> None:
    data = MaskData(scores=torch.tensor([0.1, 0.9, 0.5]), names=["a", "b", "c"])
    data.filter(torch.tensor([True, False, True]))
    assert data["scores"].tolist() == pytest.approx([0.1, 0.5]) and data["names"] == ["a", "c"]
    data.filter(torch.tensor([1, 0]))
    assert data["scores"].tolist() == pytest.approx([0.5, 0.1]) and data["names"] == ["c", "a"]


def test_cat_appends_rows_and_rejects_different_columns() -> None:
    data = MaskData()
    data.cat(MaskData(boxes=torch.zeros(2, 4), names=["a", "b"]))
    data.cat(MaskData(boxes=torch.ones(1, 4), names=["c"]))
    assert len(data) == 3 and data["boxes"][2].tolist() == [1, 1, 1, 1] and data["names"] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="columns"):
        data.cat(MaskData(boxes=torch.zeros(1, 4)))


def test_columns_must_be_tensors_arrays_or_lists() -> None:
    with pytest.raises(TypeError, match="tensors, numpy arrays or lists"):
        MaskData(boxes=(1, 2))


def test_numpy_columns_filter_and_cat_like_tensor_columns() -> None:
    data = MaskData(scores=np.array([0.1, 0.9, 0.5]), ids=torch.tensor([7, 8, 9]))
    data.filter(torch.tensor([False, True, True]))
    data.cat(MaskData(scores=np.array([0.3]), ids=torch.tensor([10])))
    assert data["scores"].tolist() == [0.9, 0.5, 0.3] and data["ids"].tolist() == [8, 9, 10]


def test_items_setitem_delitem_and_to_numpy_follow_the_official_api() -> None:
    data = MaskData(boxes=torch.zeros(2, 4), names=["a", "b"])
    data["iou"] = torch.tensor([0.5, 0.25])
    del data["boxes"]
    data.to_numpy()
    columns = dict(data.items())
    assert sorted(columns) == ["iou", "names"]
    assert isinstance(columns["iou"], np.ndarray) and columns["iou"].tolist() == [0.5, 0.25]
    assert columns["names"] == ["a", "b"]
