"""Reading YAML that a hostile or careless hand wrote: safe types only, no duplicate keys, bounded size.

`yaml.safe_load` already refuses to build Python objects. Three more things go wrong with real files:

- a key written twice (a second `lr:`, a second `train:` that silently replaces the first) is accepted by
  YAML libraries, the last one winning: refused here, naming the key and both lines;
- anchors and aliases (`&a`, `*a`) let a few hundred bytes stand for billions of values (the "billion
  laughs"): the loaded value is measured, counting every alias expansion, and refused past MAX_VALUES;
- nesting hundreds of levels deep exhausts Python's recursion: refused with a message, not a traceback.
"""

from __future__ import annotations

import yaml

from ..errors import ConfigError

MAX_VALUES = 100_000  # a real config has a few dozen values; --set and tune spaces a few more
MAX_DEPTH = 50


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let the base class report it
                break
            line = key_node.start_mark.line + 1
            if first is not None:
                raise ConfigError(
                    f"line {line}: duplicate key {short(key)} (first at line {first}); "
                    "each key may appear once in a mapping"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def count_values(value, limit: int = MAX_VALUES) -> int:
    """How many values `value` holds with every alias expanded (a shared list counts each time it is
    used), stopping as soon as the count passes `limit` or the nesting passes MAX_DEPTH."""
    total, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        total += 1
        if total > limit:
            raise ConfigError(
                f"the YAML expands to more than {limit:,} values (anchors and aliases repeated "
                "inside each other?); a config needs a few dozen"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep; a config needs a handful")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in (*item.keys(), *item.values()))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return total


def load(text: str):
    """Parse YAML text safely: no duplicate keys, no explosive aliases, no absurd nesting. Errors are
    ConfigError (file-less: the caller adds the file) or yaml.YAMLError (with a mark)."""
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader subclass
    except RecursionError:
        raise ConfigError(f"nested more than {MAX_DEPTH} levels deep; a config needs a handful") from None
    except ValueError as exc:  # Python refuses to read a whole number of more than 4,300 digits
        if "integer string conversion" not in str(exc):
            raise
        raise ConfigError("a number with thousands of digits; no setting needs one") from None
    count_values(value)
    return value


def short(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: error messages must stay one readable line."""
    try:
        text = repr(value)
    except ValueError:  # a whole number too long for Python to write out
        return f"a whole number of about {value.bit_length() * 0.30103:,.0f} digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."
