"""One generic registry keyed by name (localisers, operators, probes), and typed configs.

`Registry.register(name)` refuses a second entry under the same name; `Registry.get(name)`
names what is accepted when the name is unknown. `config_from_dict` builds a frozen config
dataclass from user input (CLI `-o key=value`, a TOML table), converting strings to the
field's type and naming the key and the accepted keys/values when something is wrong.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, Generic, TypeVar

from .errors import WorkbenchInputError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise RuntimeError(f"{self.what} {name!r} is already registered")
            self._items[name] = obj
            return obj
        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise WorkbenchInputError(f"unknown {self.what} {name!r}; expected one of: {', '.join(self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


def _convert(key: str, value: Any, hint: Any, accepted: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise WorkbenchInputError(f"option {key}={value!r}: expected one of {', '.join(map(str, choices))}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return _convert(key, value, args[0], accepted)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(hint) or (str,)
        if not isinstance(value, (str, list, tuple)):
            raise WorkbenchInputError(f"option {key}={value!r}: expected a comma-separated list or a list")
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_convert(key, v.strip() if isinstance(v, str) else v, inner, accepted) for v in items)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            number = float(value)
            if math.isfinite(number):
                return number
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise WorkbenchInputError(f"option {key}={value!r}: expected {getattr(hint, '__name__', hint)}") from None
    if hint is float:  # nan or inf would change an option's meaning silently
        raise WorkbenchInputError(f"option {key}={value!r}: expected a finite number")
    return value


def config_from_dict(cls: type[T], values: dict[str, Any] | None) -> T:
    """A frozen dataclass `cls` from `values` (unknown keys and bad values are errors)."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    accepted = ", ".join(sorted(fields))
    unknown = sorted(set(values) - fields)
    if unknown:
        renamed = getattr(cls, "RENAMED", {}).get(unknown[0])  # an option's former name
        hint = f" (it is now called {renamed!r})" if renamed else ""
        raise WorkbenchInputError(f"unknown option {unknown[0]!r} for {cls.__name__}{hint}; accepted: {accepted}")
    obj = cls(**{k: _convert(k, v, hints[k], accepted) for k, v in values.items()})
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def check_positive(config, *keys: str) -> None:
    """Each named option of `config` must be a positive integer (for a config's `check`); an
    unset option (None) passes."""
    for key in keys:
        if getattr(config, key) is not None and getattr(config, key) < 1:
            raise WorkbenchInputError(f"option {key}={getattr(config, key)}: expected a positive integer")


def check_range(config, key: str, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> None:
    """Option `key` of `config` (for a config's `check`) lies in [low, high] (`low_open`: above
    `low`); an unset option (None) passes. The error names the option, its value and the range."""
    v = getattr(config, key)
    if v is None:
        return
    ok = (low is None or (v > low if low_open else v >= low)) and (high is None or v <= high)
    if not ok:
        parts = ([f"{'>' if low_open else '>='} {low:g}"] if low is not None else []) + \
                ([f"<= {high:g}"] if high is not None else [])
        raise WorkbenchInputError(f"option {key}={v!r}: expected a number {' and '.join(parts)}")


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """CLI `-o key=value` pairs into a dict (value conversion happens in config_from_dict)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise WorkbenchInputError(f"option {pair!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out
