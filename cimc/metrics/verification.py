"""Speaker-verification metrics: EER, minDCF and the DET curve (shared by stages 3 and 7).

Scores are "higher means same speaker". Every threshold between distinct scores is considered, so
ties are handled exactly: trials with equal scores are accepted or rejected together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ErrorRates:
    """Miss and false-alarm rates, (K,) each, at K thresholds in increasing order.

    ``p_miss[k]`` and ``p_fa[k]`` are the rates when trials with score >= ``thresholds[k]`` are
    accepted; the last entry (threshold +inf) accepts nothing.
    """

    thresholds: np.ndarray
    p_miss: np.ndarray
    p_fa: np.ndarray


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not labels.any() or labels.all():
        raise ValueError("EER/minDCF need both target and non-target trials")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return scores, labels


def error_rates(scores, labels) -> ErrorRates:
    """Miss / false-alarm rates at every distinct score used as threshold, and at +inf.

    :param scores: (N,) trial scores.
    :param labels: (N,) True for target trials.
    """
    scores, labels = _as_arrays(scores, labels)
    order = np.argsort(scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    n_tgt, n_non = labels.sum(), (~labels).sum()
    # Rejecting everything below threshold t = unique score u_k: misses are the targets below u_k.
    unique, first = np.unique(scores, return_index=True)
    tgt_below = np.concatenate([[0], np.cumsum(labels)])[first]
    non_below = np.concatenate([[0], np.cumsum(~labels)])[first]
    p_miss = np.append(tgt_below / n_tgt, 1.0)
    p_fa = np.append((n_non - non_below) / n_non, 0.0)
    return ErrorRates(np.append(unique, np.inf), p_miss, p_fa)


def compute_eer(scores, labels) -> tuple[float, float]:
    """Equal error rate and its threshold.

    The EER is read where the miss and false-alarm curves cross, interpolating linearly between the
    two neighbouring thresholds (the ROC convex-hull-free convention of Kaldi's compute-eer and
    scikit-learn's roc_curve users).

    :return: (eer as a fraction in [0, 1], threshold).
    """
    rates = error_rates(scores, labels)
    diff = rates.p_miss - rates.p_fa  # increases from -1 (accept all) ... to +1 (reject all)
    k = int(np.argmax(diff >= 0))
    if diff[k] == 0 or k == 0:
        return float(rates.p_miss[k]), float(rates.thresholds[k])
    # Crossing between k-1 (miss < fa) and k (miss >= fa): intersect the two straight segments.
    d0, d1 = diff[k - 1], diff[k]
    w = d0 / (d0 - d1)
    eer = rates.p_miss[k - 1] + w * (rates.p_miss[k] - rates.p_miss[k - 1])
    return float(eer), float(rates.thresholds[k - 1])


def compute_min_dcf(scores, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """Normalised minimum detection cost (NIST SRE definition) and its threshold.

    DCF(t) = c_miss * p_target * P_miss(t) + c_fa * (1 - p_target) * P_fa(t), divided by the cost of
    the best trivial system, min(c_miss * p_target, c_fa * (1 - p_target)).

    :return: (minDCF, threshold).
    """
    if not 0 < p_target < 1:
        raise ValueError(f"p_target must lie in (0, 1), got {p_target}")
    rates = error_rates(scores, labels)
    dcf = c_miss * p_target * rates.p_miss + c_fa * (1 - p_target) * rates.p_fa
    k = int(np.argmin(dcf))
    return float(dcf[k] / min(c_miss * p_target, c_fa * (1 - p_target))), float(rates.thresholds[k])


def verification_results(scores, labels, p_targets=(0.01, 0.05)) -> dict[str, float]:
    """EER (%) and minDCF at each ``p_target``, plus trial counts, as one flat dict.

    Keys: ``eer`` (percent), ``eer_threshold``, ``mindcf_<p>`` (e.g. ``mindcf_0.01``), ``targets``,
    ``nontargets``. Stages 3 and 7 both report with it, so their tables line up.
    """
    scores, labels = _as_arrays(scores, labels)
    eer, threshold = compute_eer(scores, labels)
    results = {"eer": 100.0 * eer, "eer_threshold": threshold}
    for p in p_targets:
        results[f"mindcf_{p:g}"] = compute_min_dcf(scores, labels, p_target=p)[0]
    results.update(targets=int(labels.sum()), nontargets=int((~labels).sum()))
    return results


def format_results_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table of :func:`verification_results` dicts, one row per system.

    Columns are the union of the rows' metric keys (thresholds left out); a missing value prints ``-``.
    """
    columns: list[str] = []
    for result in rows.values():
        columns += [k for k in result if k not in columns and k != "eer_threshold"]
    header = {"eer": "EER(%)", "targets": "#target", "nontargets": "#nontarget"}
    titles = ["system"] + [header.get(c, c.replace("mindcf_", "minDCF(p=") + (")" if c.startswith("mindcf_") else "")) for c in columns]
    table = [titles]
    for name, result in rows.items():
        cells = [name]
        for c in columns:
            value = result.get(c)
            cells.append("-" if value is None else (f"{value:d}" if isinstance(value, int) else f"{value:.4f}"))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(titles))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, title: str = "DET curve") -> None:
    """Save a DET plot (probit axes) of ``{name: (scores, labels)}`` as PNG at ``path``."""
    from scipy.stats import norm

    from cimc.plotting import pyplot, save_png

    plt = pyplot()

    ticks = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (scores, labels) in curves.items():
        rates = error_rates(scores, labels)
        eer, _ = compute_eer(scores, labels)
        clip = lambda p: np.clip(p, 1e-4, 1 - 1e-4)  # noqa: E731 - probit of 0 or 1 is infinite
        ax.plot(norm.ppf(clip(rates.p_fa)), norm.ppf(clip(rates.p_miss)), label=f"{name} (EER {100 * eer:.2f}%)")
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([0.0005, 0.5])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=120)
