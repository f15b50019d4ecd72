"""The generators' settings by prompt mode: defaults read from their constructors (the one source of every
default) and the one rule of every knob (`KNOBS`), checked by `check_settings` wherever settings come in: the
command line, `GeneratorSpec`, the app and its API.

`GRID` is the official point-grid generator (`SamAutomaticMaskGenerator`, the official defaults); `OBJECTS` is
the object-aware generator (`ObjectAwareMaskGenerator`, MobileSAMv2's behaviour: no IoU, stability or NMS
filter). `DEFAULTS[mode]` maps each keyword of that generator's constructor to its default.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator
from mobile_sam.utils.mask_candidates import UPSAMPLING
from samkit.knobs import KnobError, Rule

from .objects import ObjectAwareMaskGenerator

GRID, OBJECTS = "grid", "objects"
PROMPT_MODES = (GRID, OBJECTS)
GENERATORS = {GRID: SamAutomaticMaskGenerator, OBJECTS: ObjectAwareMaskGenerator}
# The filters both modes have, whose defaults differ between them.
FILTERS = ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh")

FRACTION = Rule(low=0.0, high=1.0)
# The numeric knobs a user may set, by constructor keyword (the same name in both modes where both have it).
KNOBS: dict[str, Rule] = {
    # More points per side than the model's 1024-px input frame has pixels would only repeat prompts.
    "points_per_side": Rule(integer=True, low=1, high=1024),
    "points_per_batch": Rule(integer=True, low=1),
    "pred_iou_thresh": FRACTION,
    "stability_score_thresh": FRACTION,
    "stability_score_offset": Rule(low=0.0),
    "box_nms_thresh": FRACTION,
    # Layer i has 4**i crops; the crops of layer 5 are 1/32 of the image side (1,365 crops in all).
    "crop_n_layers": Rule(integer=True, low=0, high=5),
    "crop_nms_thresh": FRACTION,
    "crop_overlap_ratio": Rule(low=0.0, high=1.0, high_open=True),
    "crop_n_points_downscale_factor": Rule(integer=True, low=1),
    "min_mask_region_area": Rule(integer=True, low=0),
    "max_boxes": Rule(integer=True, low=1),
    "border_snap": Rule(low=0.0),
    "boxes_per_batch": Rule(integer=True, low=1),
    "chunk_megabytes": Rule(low=0.0, low_open=True),
}
# Mode-specific exceptions: the object-aware generator's NMS may be off.
MODE_RULES = {OBJECTS: {"box_nms_thresh": Rule(low=0.0, high=1.0, none_ok=True)}}


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Every keyword argument of `cls`'s constructor that has a default, with that default."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


DEFAULTS: dict[str, dict[str, Any]] = {mode: constructor_defaults(cls) for mode, cls in GENERATORS.items()}
# The settings of each mode a user may choose: its knobs and `upsampling`.
SETTINGS: dict[str, tuple[str, ...]] = {
    mode: tuple(name for name in defaults if name in KNOBS or name == "upsampling")
    for mode, defaults in DEFAULTS.items()
}


def rule(mode: str, name: str) -> Rule:
    """The rule of knob `name` in `mode`."""
    return MODE_RULES.get(mode, {}).get(name, KNOBS[name])


def check_settings(mode: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of `mode` (`SETTINGS[mode]`): the defaults with `values` over them, each checked.

    Raises:
      KnobError (a ValueError): an unknown mode, a setting the mode does not have, a value that breaks its rule
        (`KNOBS`), or points that crop layers would divide down to nothing.
    """
    if mode not in PROMPT_MODES:
        raise KnobError(f"prompts must be one of {', '.join(PROMPT_MODES)}, got {mode!r}")
    foreign = [name for name in values if name not in SETTINGS[mode]]
    if foreign:
        raise KnobError(f"{', '.join(foreign)}: not a setting of the {mode} generator ({', '.join(SETTINGS[mode])})")
    settings = {name: DEFAULTS[mode][name] for name in SETTINGS[mode]}
    settings.update(values)
    for name in settings:
        if name == "upsampling":
            if settings[name] not in UPSAMPLING:
                raise KnobError(f"upsampling must be one of {', '.join(UPSAMPLING)}, got {settings[name]!r}")
        else:
            settings[name] = rule(mode, name).check(name, settings[name])
    if mode == GRID:
        finest = settings["points_per_side"] // settings["crop_n_points_downscale_factor"] ** settings["crop_n_layers"]
        if finest < 1:
            raise KnobError(
                f"points_per_side {settings['points_per_side']} divided by crop_n_points_downscale_factor "
                f"{settings['crop_n_points_downscale_factor']} per crop layer leaves no point in layer "
                f"{settings['crop_n_layers']}"
            )
    return settings
