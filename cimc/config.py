"""Typed configs: dataclasses that load from YAML, reject unknown keys, and save what was resolved.

Every stage's hyperparameters are a dataclass with safe defaults. ``load_config`` merges a YAML file
and ``key=value`` overrides into it, refusing a misspelt key (WeSpeaker and 3D-Speaker accept them
silently); ``save_config`` writes the resolved values beside a run's outputs.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cimc.utils import write_text_atomic

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass."""


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Turn a YAML/CLI value into ``hint``'s type where that is unambiguous (nested dataclasses, tuples)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; an unknown key raises :class:`ConfigError` naming it."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} for {cls.__name__}; valid fields: {sorted(names)}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()})


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value`` (value parsed as YAML, so ``lr=0.1`` is a float, ``losses=[imsat]`` a list)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by ``key=value`` overrides.

    Dotted keys reach into nested dataclasses: ``optim.lr=0.1``.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
        values.update(loaded)
    for text in overrides:
        key, value = parse_override(text)
        node = values
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(cls, values, where=str(path) if path else cls.__name__)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (tuples as lists) ready for YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved ``config`` as YAML (atomically), so a run can be repeated from its outputs."""
    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))
