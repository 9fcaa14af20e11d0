"""Option parsing shared by the stage CLIs (kept apart from cimc/cli.py, which imports them)."""
from __future__ import annotations

from typing import Iterable

import click


def parse_named_paths(items: Iterable[str], param_hint: str, value_name: str = "PATH") -> dict[str, str]:
    """``["a=x.txt", "b=y.txt"]`` -> ``{"a": "x.txt", "b": "y.txt"}``, in the order given.

    An item without ``=`` is a usage error naming the item and the option (``param_hint``).
    """
    named = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not NAME={value_name}", param_hint=param_hint)
        name, path = item.split("=", 1)
        named[name] = path
    return named
