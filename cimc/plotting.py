"""What every PNG of the toolkit shares: matplotlib without a display, and an atomic write.

Used by the DET curve (stage 3 and 7), CIMC's training curves (stage 4), ECAPA's (stage 6) and the
diarization timelines.
"""
from __future__ import annotations

from pathlib import Path

from cimc.utils import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed: recipes run on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` as a PNG (atomically: a reader never sees half a file) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
