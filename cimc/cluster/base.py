"""One interface for every clustering method, and a registry that drives `cimc cluster --method`.

A method is a class registered by name::

    @register_clusterer("kmeans", config=KMeansConfig)
    class KMeansClusterer(Clusterer):
        def fit_predict(self, X, n_clusters=None): ...

and built with ``make_clusterer("kmeans", config)``. ``fit_predict`` takes an (N, D) float array and
returns (N,) int64 labels in ``0 .. K-1``. ``n_clusters=None`` means "estimate it" (diarization);
methods that cannot estimate raise ``ValueError`` saying so.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np


PROGRESS_MIN_POINTS = 100_000  # loops over more points show a progress bar: minutes a pass on a CPU there


def show_progress(n_points: int) -> bool:
    """Whether a baseline's loop over ``n_points`` points shows a tqdm bar (above :data:`PROGRESS_MIN_POINTS`)."""
    return n_points > PROGRESS_MIN_POINTS


class Clusterer:
    """Base class: subclasses set ``self.config`` in ``__init__`` and implement ``fit_predict``."""

    name: str = ""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        """Cluster the rows of ``X`` (N, D); return (N,) int64 labels."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _Entry:
    cls: type[Clusterer]
    config: type | None


CLUSTERERS: dict[str, _Entry] = {}


def register_clusterer(name: str, config: type | None = None) -> Callable[[type[Clusterer]], type[Clusterer]]:
    """Class decorator adding a method to :data:`CLUSTERERS` under ``name`` with its config dataclass."""

    def wrap(cls: type[Clusterer]) -> type[Clusterer]:
        if name in CLUSTERERS:
            raise ValueError(f"clustering method {name!r} is registered twice")
        cls.name = name
        CLUSTERERS[name] = _Entry(cls, config)
        return cls

    return wrap


def config_class(name: str) -> type | None:
    """The config dataclass of method ``name`` (None if it takes none)."""
    return _entry(name).config


def make_clusterer(name: str, config: Any = None) -> Clusterer:
    """Build method ``name``; ``config`` defaults to its config dataclass's defaults."""
    entry = _entry(name)
    if config is None and entry.config is not None:
        config = entry.config()
    return entry.cls(config)


def _entry(name: str) -> _Entry:
    if name not in CLUSTERERS:
        raise ValueError(f"unknown clustering method {name!r}; known: {', '.join(sorted(CLUSTERERS))}")
    return CLUSTERERS[name]
