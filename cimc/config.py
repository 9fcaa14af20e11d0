"""Typed configs: dataclasses that load from YAML, reject unknown keys, and save what was resolved.

Every stage's hyperparameters are a dataclass with safe defaults. ``load_config`` merges a YAML file
and ``key=value`` overrides into it, refusing a misspelt key (WeSpeaker and 3D-Speaker accept them
silently); ``save_config`` writes the resolved values beside a run's outputs.
"""
from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cimc.utils import write_text_atomic

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass."""


def _type_name(hint: Any) -> str:
    """``tuple[float, float]`` as written, a plain class by its name."""
    return str(hint).replace("typing.", "") if typing.get_args(hint) else getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against ``hint`` and convert where that is unambiguous; a mismatch raises
    :class:`ConfigError` naming the field (``lr=abc`` fails here, not deep inside a trainer).

    Converted: an int for a float, a float written in exponent form without a dot (YAML 1.1, which PyYAML
    follows, reads ``2e-3`` as a string), a list for a tuple, one item for a variable-length tuple, a
    mapping for a nested dataclass.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _coerce(value, options[0], where) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {hint.__name__} fields, got {value!r}")
        return from_dict(hint, value, where)
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            empty = " (an empty value is null in YAML; write '' for an empty string)" if value is None else ""
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}{empty}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected float, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{where}: expected float, got {value!r}")
        return float(value)
    if hint in (tuple, list) or origin in (tuple, list):
        variadic = len(args) == 2 and args[1] is Ellipsis
        if variadic and isinstance(args[0], type) and isinstance(value, args[0]) and not isinstance(value, bool):
            value = [value]  # losses=imsat means [imsat]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list ({_type_name(hint)}), got {value!r}")
        if variadic:
            items = [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values ({_type_name(hint)}), got {value!r}")
            items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        elif origin is list and args:
            items = [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            items = list(value)
        return tuple(items) if (hint is tuple or origin is tuple) else items
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
    coerced = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**coerced)
    except ConfigError:
        raise
    except ValueError as e:  # a dataclass's own check (__post_init__): add the file, or the class
        raise ConfigError(f"{where}: {e}") from e


def require(config: Any, name: str, ok: bool, must_be: str) -> None:
    """For a dataclass's ``__post_init__``: unless ``ok``, raise ``ValueError("NAME must be MUST_BE, got VALUE")``
    (``from_dict`` prefixes the file or class)."""
    if not ok:
        raise ValueError(f"{name} must be {must_be}, got {getattr(config, name)!r}")


def require_choice(config: Any, name: str, choices: typing.Sequence[str]) -> None:
    """For a dataclass's ``__post_init__``: the string field ``name`` must be one of ``choices``."""
    if getattr(config, name) not in choices:
        raise ValueError(f"{name} {getattr(config, name)!r}: use one of {', '.join(choices)}")


def parse_yaml(text: str, where: str, position: bool = True) -> Any:
    """``yaml.safe_load(text)``; a syntax error raises :class:`ConfigError` naming ``where`` (a file, or an
    override) and, if ``position``, the line and column, where PyYAML names only ``<unicode string>``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None and position else ""
        context = getattr(e, "context", None)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}{at}: invalid YAML{f' ({context})' if context else ''}: {problem}") from e


def read_yaml(path: str | Path) -> Any:
    """The YAML document in file ``path``; a binary file or a syntax error raises :class:`ConfigError` naming it."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file (a YAML config expected; not UTF-8 text)") from e
    return parse_yaml(text, str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value`` (value parsed as YAML, so ``lr=0.1`` is a float, ``losses=[imsat]`` a list)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    return key.strip(), parse_yaml(raw, f"override {text!r}", position=False)


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by ``key=value`` overrides.

    Dotted keys reach into nested dataclasses: ``optim.lr=0.1``.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = read_yaml(path) or {}
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


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: {"train": {"lr": 1}} -> {"train.lr": 1}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _covered(key: str, names: typing.Collection[str]) -> bool:
    """Whether dotted ``key`` is one of ``names`` or lies below one of them (``train`` covers ``train.lr``)."""
    return any(key == n or key.startswith(f"{n}.") for n in names)


def result_settings(config: Any) -> dict[str, Any]:
    """:func:`to_dict` of ``config`` with dotted keys for nested fields, less those its class lists in
    ``RUN_ONLY_FIELDS`` (a name there also covers the fields below it): where a run saves, what it shows and
    how it computes the same math (device, chunk sizes, workers), not what it computes."""
    run_only = getattr(type(config), "RUN_ONLY_FIELDS", frozenset())
    return {k: v for k, v in _flatten(to_dict(config)).items() if not _covered(k, run_only)}


def changed_settings(saved: dict[str, Any], config: Any) -> dict[str, tuple[Any, Any]]:
    """{field: (saved value, asked value)} for each field of ``config`` whose result setting differs from
    ``saved`` (the :func:`to_dict` of an earlier run's config, as in its config.yaml or checkpoint; nested
    fields dotted).

    A field missing from ``saved`` was added to the class since, so that run had its default, or the value its
    class lists in ``BEFORE_FIELD_EXISTED`` (what runs did before the field existed, where a later default differs);
    a field of ``saved`` the class no longer has is ignored.
    """
    asked = result_settings(config)
    before = getattr(type(config), "BEFORE_FIELD_EXISTED", {})
    saved = {**result_settings(type(config)()), **before, **_flatten(saved)}
    return {k: (saved[k], v) for k, v in asked.items() if saved[k] != v}


def saved_config_changes(saved_path: str | Path, config: Any, may_change: typing.Collection[str] = ()) -> list[str]:
    """``field saved -> asked``, by field name, for each result field in which ``config`` differs from the config
    an earlier run saved at ``saved_path`` (none when there is no such file). Fields named in ``may_change``, or
    below one named there, are not compared (e.g. the sections a stage does not read)."""
    saved_path = Path(saved_path)
    if not saved_path.is_file():
        return []
    changed = changed_settings(read_yaml(saved_path) or {}, config)
    return [f"{k} {saved!r} -> {asked!r}" for k, (saved, asked) in sorted(changed.items())
            if not _covered(k, may_change)]


def check_saved_config(saved_path: str | Path, config: Any, remedy: str,
                       may_change: typing.Collection[str] = ()) -> None:
    """Raise :class:`ConfigError` naming the :func:`saved_config_changes` of ``config`` against ``saved_path``;
    ``remedy`` ends the message."""
    changes = saved_config_changes(saved_path, config, may_change)
    if changes:
        raise ConfigError(f"{Path(saved_path).parent} was trained with another config than this run asks for "
                          f"({'; '.join(changes)}, against {saved_path}); {remedy}")
