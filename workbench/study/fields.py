"""Validators of a study file's fields: each names the key that is wrong and what it accepts
(through `fail(key, message)`, which raises the study's error)."""
from __future__ import annotations

from ..errors import WorkbenchInputError
from ..registry import config_from_dict


def budgets_of(value, where: str, fail) -> tuple[float, ...]:
    budgets = list_of(value, (int, float), where, fail)
    for b in budgets:
        if not 0 < b <= 1:
            fail(where, f"{b!r} is not a fraction in (0, 1]")
    return tuple(float(b) for b in budgets)


def tables(data, key, fail, required=False) -> list[dict]:
    value = data.get(key, [])
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        fail(key, f"expected one or more [[{key}]] tables")
    if required and not value:
        fail(key, f"at least one [[{key}]] table is required")
    return value


def keys(table: dict, accepted: set, where: str, fail) -> None:
    unknown = sorted(set(table) - accepted)
    if unknown:
        fail(f"{where}.{unknown[0]}", f"unknown key; accepted: {', '.join(sorted(accepted))}")


def list_of(value, typ, key, fail) -> list:
    if not isinstance(value, list) or not value:
        fail(key, f"expected a non-empty list, got {value!r}")
    for v in value:
        if not isinstance(v, typ) or isinstance(v, bool):
            name = typ.__name__ if isinstance(typ, type) else "number"
            fail(key, f"{v!r} is not a {name}")
    if len(set(value)) != len(value):
        fail(key, f"{value!r} lists a value twice (the same cells would run twice)")
    return value


def options_of(entry: dict, where: str, config_cls, fail) -> dict:
    options = entry.get("options", {})
    if not isinstance(options, dict):
        fail(f"{where}.options", "expected a table, e.g. options = { key = value }")
    try:
        config_from_dict(config_cls, options)
    except WorkbenchInputError as exc:
        fail(f"{where}.options", str(exc))
    return dict(options)


def models_of(entry: dict, where: str, specs: set, fail) -> tuple[str, ...] | None:
    if "models" not in entry:
        return None
    models = tuple(list_of(entry["models"], str, f"{where}.models", fail))
    for m in models:
        if m not in specs:
            fail(f"{where}.models", f"{m!r} is not one of the study's models ({', '.join(sorted(specs))})")
    return models


def check_model_spec(spec: str, key: str, fail) -> None:
    """Parse the spec without loading anything (testbed options are checked here)."""
    from ..models import parse_kind

    try:
        kind = parse_kind(spec)
        if kind == "testbed":
            from ..models.testbed import TestbedSpec
            TestbedSpec.parse(spec)
    except WorkbenchInputError as exc:
        fail(key, str(exc))
