"""Value checkers for configs: each takes (value, key) and returns the checked value or raises a
ConfigError naming the key, the value and what is allowed. `spec` attaches one to a dataclass field."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable
from dataclasses import field
from typing import Any

from ..errors import ConfigError
from .safeyaml import short


def _fail(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"'{key}' is {short(value)}; expected {expected}")


# No whole number a config holds -- a layer size, a batch, an epoch count -- comes near this; a bound for
# all of them keeps an absurd one (10^400) from reaching arithmetic that overflows far from its key.
MAX_WHOLE = 2**31 - 1


def integer(low: int | None = None, high: int | None = None) -> Callable[[Any, str], int]:
    def check(value, key):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, "a whole number")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise _fail(key, value, f"a whole number {bounds}")
        if abs(value) > MAX_WHOLE:
            raise _fail(key, value, f"a whole number of at most {MAX_WHOLE:,}")
        return value

    return check


def number(
    low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> Callable[[Any, str], float]:
    def check(value, key):
        if isinstance(value, str):
            value = _yaml_float(value)  # YAML reads 1e-3 (no dot) as text; users mean the number
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e300:
            raise _fail(key, value, "a finite number (this one is too large for a float)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(key, value, "a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            left = f"{'>' if low_open else '>='} {low}" if low is not None else ""
            right = f"{'<' if high_open else '<='} {high}" if high is not None else ""
            raise _fail(key, value, "a number " + " and ".join(s for s in (left, right) if s))
        return float(value)

    return check


def _yaml_float(text: str):
    """'1e-3' -> 0.001; anything that is not plainly a finite number stays text (and is refused)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value, key):
        if value not in options:
            hint = _nearest(str(value)[:100], options)
            raise _fail(key, value, "one of " + ", ".join(options) + hint)
        return value

    return check


def text(value, key):
    if not isinstance(value, str) or not value:
        raise _fail(key, value, "a non-empty string")
    return value


# A run name becomes a folder under runs/: one plain path component, nothing that climbs out of it.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def run_name(value, key):
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        raise _fail(
            key,
            value,
            "a plain name (letters, digits, '.', '_', '-', starting with a letter or digit, "
            "at most 100 characters): it names the run's folder under runs/",
        )
    return value


def optional_text(value, key):
    return None if value is None else text(value, key)


def boolean(value, key):
    if not isinstance(value, bool):
        raise _fail(key, value, "true or false")
    return value


def _nearest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def spec(check, default, **kw):
    """A dataclass field carrying its checker, so the loader knows how to validate it."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: _copy(default), metadata={"check": check}, **kw)
    return field(default=default, metadata={"check": check}, **kw)


def _copy(value):
    return dataclasses.replace(value) if dataclasses.is_dataclass(value) else type(value)(value)
