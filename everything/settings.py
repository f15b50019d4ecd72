"""The generators' settings by prompt mode, read from their constructors (the one source of every default).

`GRID` is the official point-grid generator (`SamAutomaticMaskGenerator`, the official defaults); `OBJECTS` is
the object-aware generator (`ObjectAwareMaskGenerator`, MobileSAMv2's behaviour: no IoU, stability or NMS
filter). `DEFAULTS[mode]` maps each keyword of that generator's constructor to its default.
"""

from __future__ import annotations

import inspect
from typing import Any

from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator

from .objects import ObjectAwareMaskGenerator

GRID, OBJECTS = "grid", "objects"
PROMPT_MODES = (GRID, OBJECTS)
GENERATORS = {GRID: SamAutomaticMaskGenerator, OBJECTS: ObjectAwareMaskGenerator}
# The filters both modes have, whose defaults differ between them.
FILTERS = ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh")


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Every keyword argument of `cls`'s constructor that has a default, with that default."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


DEFAULTS: dict[str, dict[str, Any]] = {mode: constructor_defaults(cls) for mode, cls in GENERATORS.items()}
