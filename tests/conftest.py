"""Fixtures shared by the test files."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="session")
def bench_module() -> Callable[[str], ModuleType]:
    """Loader of a bench script as a module: ``bench_module("cluster_quality")`` -> bench/cluster_quality.py.

    Bench scripts are files, not a package. The module is registered in sys.modules under its name, since
    dataclasses look their module up while a class is built.
    """
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load
