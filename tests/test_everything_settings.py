"""The one rule of every generator knob (`everything.settings.KNOBS`), and `samkit.knobs.Rule` itself.

The table below is the specification: each knob with values it must refuse and values it must take. The command
line, `GeneratorSpec` and the app's `EverythingSettings` all answer through these rules.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from everything.settings import DEFAULTS, GRID, KNOBS, OBJECTS, SETTINGS, check_settings
from samkit.knobs import KnobError, Rule

NAN, INF = math.nan, math.inf
# knob: (mode to check it in, values refused, values taken)
TABLE = {
    "points_per_side": (GRID, [NAN, INF, -INF, -1, 0, 1025, 2.5, "4", True, None], [1, 4, 4.0, np.int64(32), 1024]),
    "points_per_batch": (GRID, [NAN, INF, 0, -64, 1.5, "64"], [1, 64, 10_000]),
    "pred_iou_thresh": (GRID, [NAN, INF, -INF, -0.1, 1.01, "0.88", None], [0, 0.0, 0.88, 1]),
    "stability_score_thresh": (GRID, [NAN, INF, -0.5, 1.5, False], [0.0, 0.95, 1.0]),
    "stability_score_offset": (GRID, [NAN, INF, -1.0, "1"], [0.0, 1.0, 5.0]),
    "box_nms_thresh": (GRID, [NAN, -INF, -0.1, 1.1, None], [0.0, 0.7, 1.0]),
    "crop_n_layers": (GRID, [NAN, -1, 6, 1.5], [0, 1, 5]),
    "crop_nms_thresh": (GRID, [NAN, INF, -0.2, 2.0], [0.0, 0.7, 1.0]),
    "crop_overlap_ratio": (GRID, [NAN, -1.0, 1.0, INF], [0.0, 512 / 1500, 0.99]),
    "crop_n_points_downscale_factor": (GRID, [NAN, 0, -2, 1.5], [1, 2]),
    "min_mask_region_area": (GRID, [NAN, INF, -5, 2.5, "100"], [0, 100, 10**9]),
    "chunk_megabytes": (GRID, [NAN, INF, 0.0, -1.0], [0.5, 24.0]),
    "max_boxes": (OBJECTS, [NAN, 0, -1, 2.5], [1, 300, 100_000]),
    "border_snap": (OBJECTS, [NAN, INF, -1.0, "20"], [0.0, 20.0, 500.0]),
    "boxes_per_batch": (OBJECTS, [NAN, 0, -4, 1.5], [1, 64]),
}


def test_the_table_covers_every_knob_and_every_knob_is_a_constructor_keyword() -> None:
    assert set(TABLE) == set(KNOBS)
    for mode, defaults in DEFAULTS.items():
        assert {name for name in defaults if name in KNOBS} <= set(SETTINGS[mode])
    numeric = {
        name
        for mode in (GRID, OBJECTS)
        for name, default in DEFAULTS[mode].items()
        if isinstance(default, (int, float)) and not isinstance(default, bool)
    }
    assert numeric <= set(KNOBS), numeric - set(KNOBS)  # no numeric keyword escapes the rules


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_bad_value_is_refused_with_a_one_line_message(name: str) -> None:
    mode, refused, _ = TABLE[name]
    for value in refused:
        with pytest.raises(KnobError, match=f"^{name} must be ") as error:
            check_settings(mode, {name: value})
        assert "\n" not in str(error.value) and repr(value) in str(error.value)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_good_values_are_taken_with_their_type(name: str) -> None:
    mode, _, taken = TABLE[name]
    for value in taken:
        checked = check_settings(mode, {name: value})[name]
        assert checked == value and type(checked) is (int if KNOBS[name].integer else float)


def test_the_defaults_keep_their_own_rules() -> None:
    for mode in (GRID, OBJECTS):
        assert check_settings(mode, {}) == {name: DEFAULTS[mode][name] for name in SETTINGS[mode]}


def test_the_object_aware_nms_may_be_off_and_knobs_of_the_other_mode_are_refused() -> None:
    assert check_settings(OBJECTS, {"box_nms_thresh": None})["box_nms_thresh"] is None
    with pytest.raises(KnobError, match="crop_n_layers: not a setting of the objects generator"):
        check_settings(OBJECTS, {"crop_n_layers": 1})
    with pytest.raises(KnobError, match="max_boxes: not a setting of the grid generator"):
        check_settings(GRID, {"max_boxes": 3})
    with pytest.raises(KnobError, match="upsampling must be one of"):
        check_settings(GRID, {"upsampling": "nearest"})
    with pytest.raises(KnobError, match="prompts must be one of"):
        check_settings("everything", {})


def test_crop_layers_that_divide_the_points_down_to_none_are_refused() -> None:
    settings = {"points_per_side": 4, "crop_n_layers": 2, "crop_n_points_downscale_factor": 2}
    assert check_settings(GRID, settings)["crop_n_layers"] == 2  # 4, 2, 1 points per side
    with pytest.raises(KnobError, match="leaves no point in layer 2"):
        check_settings(GRID, {**settings, "points_per_side": 3})


def test_the_generator_spec_and_the_app_answer_through_the_same_rules() -> None:
    from everything.spec import GeneratorSpec
    from webapp.everything_jobs import EverythingSettings

    for name in ("points_per_side", "pred_iou_thresh", "min_mask_region_area", "crop_n_layers"):
        for value in TABLE[name][1]:
            if value is None:
                continue  # the app's None keeps the default
            with pytest.raises(KnobError) as spec_error:
                GeneratorSpec(random_weights=True, settings={name: value})
            with pytest.raises(KnobError) as app_error:
                EverythingSettings.checked(**{name: value})
            assert str(app_error.value) == str(spec_error.value)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Rule(integer=True, low=1), "an integer >= 1"),
        (Rule(low=0.0, high=1.0), "a number in [0, 1]"),
        (Rule(low=0.0, high=1.0, high_open=True), "a number in [0, 1)"),
        (Rule(low=0.0, low_open=True, none_ok=True), "a number > 0 or None"),
        (Rule(high=5.0), "a number <= 5"),
        (Rule(), "a finite number"),
    ],
)
def test_rules_say_what_they_take(rule: Rule, text: str) -> None:
    assert rule.describe() == text


def test_a_rule_parses_command_line_text_with_the_same_check() -> None:
    import argparse

    rule = Rule(integer=True, low=0, high=5)
    assert rule.parse("3") == 3
    for text in ("nan", "6", "-1", "2.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be an integer in \[0, 5\], got"):
            rule.parse(text)


def test_the_constructors_still_have_the_keywords_the_rules_name() -> None:
    from everything.settings import GENERATORS

    for mode, cls in GENERATORS.items():
        keywords = set(inspect.signature(cls.__init__).parameters)
        assert set(SETTINGS[mode]) <= keywords
