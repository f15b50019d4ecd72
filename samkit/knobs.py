"""What values a numeric setting takes, checked in one way wherever a value comes in (CLIs, the API, the app).

A `Rule` says the type (an integer or a number: bools and strings are refused, NaN and infinities too) and the
range; `Rule.check(name, value)` returns the value (an integral float becomes an int where an integer is asked:
JSON and sliders send 4.0) or raises `KnobError`, a ValueError whose one-line message names the setting, the
rule and the value. `Rule.parse` is the same check as an argparse `type=` for the command lines. The rules of
each product's settings live beside those settings (`everything.settings.KNOBS`, ...).
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass
from typing import Any


class KnobError(ValueError):
    """A setting's value breaks its rule (the message names the setting, the rule and the value)."""


@dataclass(frozen=True)
class Rule:
    """An integer (`integer=True`) or a finite number, within `low`..`high` (None: unbounded; `low_open` /
    `high_open` exclude the bound), or None where `none_ok`."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none_ok: bool = False

    def describe(self) -> str:
        """The rule in words: "an integer >= 1", "a number in [0, 1]", "a number > 0 or None", ..."""
        kind = "an integer" if self.integer else "a number"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            text = f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {low}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {high}"
        else:
            text = "an integer" if self.integer else "a finite number"
        return text + (" or None" if self.none_ok else "")

    def check(self, name: str, value: Any) -> Any:
        """`value` if it keeps the rule (integral floats as int for integers), else a KnobError naming `name`."""
        if value is None and self.none_ok:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise KnobError(f"{name} must be {self.describe()}, got {value!r}")
        if self.integer:
            if float(value) != int(value):
                raise KnobError(f"{name} must be {self.describe()}, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise KnobError(f"{name} must be {self.describe()}, got {value!r}")
        return value

    def parse(self, text: str) -> Any:
        """argparse `type=`: the text as an int or float, checked (an ArgumentTypeError says what is wrong)."""
        try:
            value = int(text) if self.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None
        try:
            return self.check("value", value)
        except KnobError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None


def check_all(rules: dict[str, Rule], values: dict[str, Any]) -> dict[str, Any]:
    """`values` with each one that has a rule checked (see `Rule.check`); the others as they are."""
    return {name: rules[name].check(name, value) if name in rules else value for name, value in values.items()}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
