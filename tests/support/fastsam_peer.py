"""ultralytics' own FastSAM prompt rule (`FastSAMPredictor.prompt`) on given instance masks: the live peer of
`compare.fastsam_rules` under rules="ultralytics"."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch


def ultralytics_selection(
    instances: np.ndarray,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
) -> np.ndarray:
    """The union of the KxHxW instances that `FastSAMPredictor.prompt` keeps for the points and/or the box."""
    from ultralytics.engine.results import Results
    from ultralytics.models.fastsam import FastSAMPredictor

    k, h, w = instances.shape
    boxes = torch.zeros(k, 6)
    boxes[:, 2:4] = torch.tensor([w, h], dtype=torch.float32)
    boxes[:, 4] = torch.linspace(0.9, 0.5, k)
    result = Results(
        np.zeros((h, w, 3), np.uint8),
        path="",
        names={0: "object"},
        boxes=boxes,
        masks=torch.from_numpy(instances).float(),
    )
    prompt = {"points": points, "labels": labels} if points is not None else {}
    if box is not None:
        prompt["bboxes"] = np.asarray(box, dtype=np.float64)
    kept = FastSAMPredictor.prompt(SimpleNamespace(device=torch.device("cpu")), [result], **prompt)[0]
    if len(kept) == 0:
        return np.zeros((h, w), dtype=bool)
    return kept.masks.data.bool().any(dim=0).numpy()
