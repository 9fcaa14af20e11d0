"""PNG timeline of one recording: reference speakers above, hypothesis speakers below.

Hypothesis speakers are renamed to the reference speaker they map to (the Hungarian mapping of the
DER), so one person has one colour in both panels and a wrong colour below is a confusion.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from cimc.diar.rttm import Turn, to_annotation
from cimc.plotting import pyplot, save_png


def map_hypothesis_speakers(reference: Sequence[Turn], hypothesis: Sequence[Turn]) -> dict[str, str]:
    """Hypothesis speaker -> reference speaker under the DER's optimal one-to-one mapping.

    Unmapped hypothesis speakers keep their own name.
    """
    from pyannote.metrics.diarization import DiarizationErrorRate

    rec = reference[0].recording_id if reference else "rec"
    mapping = DiarizationErrorRate().optimal_mapping(to_annotation(reference, rec), to_annotation(hypothesis, rec))
    return {t.speaker: mapping.get(t.speaker, t.speaker) for t in hypothesis}


def plot_timeline(reference: Sequence[Turn], hypothesis: Sequence[Turn], path: str | Path,
                  title: str = "") -> None:
    """Write a PNG with one row per speaker: reference panel on top, hypothesis panel below.

    :param reference: turns of one recording (the truth).
    :param hypothesis: turns of the same recording (the system's output).
    """
    plt = pyplot()
    renamed = map_hypothesis_speakers(reference, hypothesis)
    names = sorted({t.speaker for t in reference}) + sorted({renamed[t.speaker] for t in hypothesis}
                                                            - {t.speaker for t in reference})
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    end = max([t.end for t in reference] + [t.end for t in hypothesis] + [1.0])
    fig, axes = plt.subplots(2, 1, figsize=(12, 4), sharex=True)
    panels = [("reference", reference, lambda s: s), ("hypothesis", hypothesis, lambda s: renamed[s])]
    for ax, (label, turns, name_of) in zip(axes, panels):
        rows = sorted({name_of(t.speaker) for t in turns}, key=names.index)
        for turn in turns:
            name = name_of(turn.speaker)
            ax.broken_barh([(turn.start, turn.duration)], (rows.index(name) - 0.4, 0.8), color=colours[name])
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_ylabel(label)
        ax.set_xlim(0, end)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    save_png(fig, path)
