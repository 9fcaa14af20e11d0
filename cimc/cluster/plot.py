"""PNG of a CIMC / IMSAT run's per-epoch history (``OUT/training.png`` beside the labels).

Four panels against the training step: the loss terms; H(Y|X) and H(Y) against log C, their bounds (the
predictions leave the uniform start when H(Y|X) falls, and H(Y) below log C means unequal clusters);
the clusters a batch uses; ACC / NMI per epoch when the run had reference labels (``--ref``), else the
learning rate. It shows at a glance what docs/cimc_tuning.md reads from the logs: when the predictions
commit, whether clusters die, and whether the partition still moves after that.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from cimc.metrics.clustering import METRIC_NAMES
from cimc.plotting import pyplot, save_png

# History fields that are not loss terms (the trainer's bookkeeping, the entropies, the metrics).
NOT_LOSS_TERMS = frozenset({"epoch", "step", "lr", "used", "no_pos", "H(Y|X)", "H(Y)", *METRIC_NAMES})


def loss_term_names(history: Sequence[dict]) -> list[str]:
    """The loss-term fields of ``history`` in first-seen order (SupCon appears only once its gate opens)."""
    names: dict[str, None] = {}
    for record in history:
        names.update((k, None) for k in record if k not in NOT_LOSS_TERMS)
    return list(names)


def clusters_filled_by_equal_sizes(n_clusters: int, batch_size: int) -> float:
    """Expected clusters a batch of ``batch_size`` random points touches when all ``n_clusters`` are equal.

    C (1 - (1 - 1/C)^B): below C when B is not much larger than C (at the paper's B 10,240 and C 5,000 about
    4,355), so "used" at that level means every cluster is alive, not that some died.
    """
    return n_clusters * (1.0 - (1.0 - 1.0 / n_clusters) ** batch_size)


def batch_entropy_of_equal_sizes(n_clusters: int, batch_size: int) -> float:
    """Expected entropy (nats) of the cluster histogram of a batch of random points from equal clusters.

    What a batch's H(Y) reaches once predictions are confident and every cluster is equal:
    log B - (C / B) E[n log n], n ~ Binomial(B, 1/C). Below log C when B is not much larger than C
    (200 x 20 at batch 500: 5.08 against 5.30; the paper's B 10,240, C 5,000: 8.24 against 8.52).
    """
    import numpy as np
    from scipy.stats import binom

    counts = np.arange(1, batch_size + 1)
    mean_n_log_n = float(np.sum(binom.pmf(counts, batch_size, 1.0 / n_clusters) * counts * np.log(counts)))
    return math.log(batch_size) - n_clusters / batch_size * mean_n_log_n


def training_figure(history: Sequence[dict], n_clusters: int, title: str = "", batch_size: int | None = None):
    """The matplotlib Figure of ``history`` (one dict per epoch, as ``OUT/checkpoint/history.json``).

    ``batch_size`` adds what a batch shows when all clusters are equal: its H(Y) and the clusters it touches.
    """
    if not history:
        raise ValueError("no training history to plot")

    def series(key: str) -> tuple[list[float], list[float]]:
        kept = [r for r in history if key in r]
        return [r["step"] for r in kept], [r[key] for r in kept]

    fig, axes = pyplot().subplots(2, 2, figsize=(11, 7), sharex=True)
    (terms, entropies), (clusters, quality) = axes
    for name in loss_term_names(history):
        terms.plot(*series(name), label=name, linewidth=2.0 if name == "loss" else 1.2)
    terms.set_title("loss terms (epoch means)")
    terms.legend(fontsize=8)
    for name in ("H(Y|X)", "H(Y)"):
        entropies.plot(*series(name), label=name)
    entropies.axhline(math.log(n_clusters), color="grey", linestyle="--", linewidth=1, label=f"log C (C = {n_clusters})")
    if batch_size:
        entropies.axhline(batch_entropy_of_equal_sizes(n_clusters, batch_size), color="grey", linestyle=":",
                          linewidth=1, label=f"a batch of {batch_size} from equal clusters")
    entropies.set_title("entropies (nats)")
    entropies.legend(fontsize=8)
    clusters.plot(*series("used"), label="argmax clusters in a batch")
    if batch_size:
        clusters.axhline(clusters_filled_by_equal_sizes(n_clusters, batch_size), color="grey", linestyle="--",
                         linewidth=1, label=f"if all {n_clusters} were equal (batch {batch_size})")
        clusters.legend(fontsize=8)
    clusters.set_title("clusters used in a batch (epoch mean)")
    clusters.set_ylim(bottom=0)
    metrics = [m for m in ("acc", "nmi") if any(m in r for r in history)]
    for name in metrics:
        quality.plot(*series(name), label=name.upper())
    if metrics:
        quality.set_title("against the reference labels (--ref)")
        quality.set_ylim(0, 1)
        quality.legend(fontsize=8)
    else:
        quality.plot(*series("lr"))
        quality.set_title("learning rate")
    for ax in (clusters, quality):
        ax.set_xlabel("step")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_training(history: Sequence[dict], n_clusters: int, path: str | Path, title: str = "",
                  batch_size: int | None = None) -> None:
    """Write :func:`training_figure` as a PNG at ``path`` (atomically)."""
    save_png(training_figure(history, n_clusters, title, batch_size), path)
