"""Stage 3b: the i-vector baseline on the trials: cosine, and LDA + PLDA trained on training i-vectors.

Cosine uses :func:`cimc.scoring.cosine_scores` with the training mean subtracted. PLDA follows
Kaldi v1: subtract the training mean, LDA, length-normalise to sqrt(dim), two-covariance PLDA
trained with the training set's speaker labels. Writes ``results.txt`` (a Markdown table),
``scores_SYSTEM.txt`` (``enroll test score``), ``det.png`` and ``score_config.yaml`` to ``output_dir``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from cimc.config import save_config
from cimc.data.layout import iter_cuts
from cimc.data.trials import Trial, check_trials_known, read_trials
from cimc.ivector.backend import length_norm, train_lda, train_plda
from cimc.ivector.config import BackendConfig
from cimc.metrics.verification import compute_eer, compute_min_dcf, plot_det
from cimc.scoring import cosine_scores
from cimc.utils import name_some, write_text_atomic
from cimc.vectors import load_vectors

logger = logging.getLogger(__name__)


def speaker_labels(cuts_path: str | Path, ids: Sequence[str]) -> list[str]:
    """Speaker of each id, from the first supervision of its cut; a cut without one raises naming it."""
    speaker = {}
    for cut in iter_cuts(cuts_path):
        if cut.supervisions and cut.supervisions[0].speaker is not None:
            speaker[cut.id] = cut.supervisions[0].speaker
    missing = [u for u in ids if u not in speaker]
    if missing:
        raise KeyError(f"{cuts_path}: no speaker for {len(missing)} i-vector(s): {name_some(missing)}")
    return [speaker[u] for u in ids]


def plda_scores(
    train: np.ndarray, labels: Sequence[str], ids: Sequence[str], vectors: np.ndarray, trials: Sequence[Trial],
    config: BackendConfig,
) -> np.ndarray:
    """LDA + length norm + PLDA log-likelihood ratios (T,) of ``trials`` over (``ids``, ``vectors``)."""
    mean = train.mean(0)
    lda = train_lda(train - mean, labels, config.lda_dim)
    plda = train_plda(length_norm(lda(train - mean)), labels, config.plda_iters)
    projected = length_norm(lda(np.asarray(vectors, dtype=np.float64) - mean))
    row = {u: i for i, u in enumerate(ids)}
    enroll = np.array([row[t.enroll] for t in trials])
    test = np.array([row[t.test] for t in trials])
    return plda.score(projected[enroll], projected[test])


def results_table(results: dict[str, dict[str, float]], title: str) -> str:
    """Markdown table of EER (%) and minDCF per system."""
    lines = [f"# {title}", "", "| system | EER (%) | minDCF (p=0.01) | minDCF (p=0.05) |", "| --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | {100 * r['eer']:.3f} | {r['min_dcf_0.01']:.4f} | {r['min_dcf_0.05']:.4f} |")
    return "\n".join(lines) + "\n"


def score_ivectors(
    train_vectors: str | Path, test_vectors: str | Path, trials_path: str | Path, train_cuts: str | Path,
    config: BackendConfig, output_dir: str | Path, exclude: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """Score the trials with cosine and LDA + PLDA and write the results table.

    :param train_vectors: ``ivectors_train.npy`` (its mean, and LDA/PLDA training data).
    :param test_vectors: ``ivectors_test.npy`` holding every utterance the trials name.
    :param train_cuts: cuts giving the training speakers (``supervision.speaker``).
    :param exclude: training utterances left out of the backend (e.g. those with too few frames).
    :return: ``{system: {"eer", "min_dcf_0.01", "min_dcf_0.05"}}`` (EER as a fraction).
    """
    output_dir = Path(output_dir)
    train_ids, train = load_vectors(train_vectors)
    test_ids, test = load_vectors(test_vectors)
    trials = read_trials(trials_path)
    check_trials_known(trials, test_ids, str(test_vectors))
    skip = set(exclude)
    keep = np.array([u not in skip for u in train_ids])
    train_ids, train = [u for u, k in zip(train_ids, keep) if k], train[keep].astype(np.float64)
    labels = speaker_labels(train_cuts, train_ids)
    target = np.array([t.target for t in trials])
    lda_dim = min(config.lda_dim, len(set(labels)) - 1, train.shape[1])
    # {file slug: (table name, (T,) scores)}
    systems = {
        "cosine": ("cosine", cosine_scores(test_ids, test, trials, mean=train.mean(0), source=str(test_vectors))),
        "plda": (f"LDA{lda_dim} + PLDA", plda_scores(train, labels, test_ids, test, trials, config)),
    }
    results = {}
    for slug, (name, scores) in systems.items():
        eer, _ = compute_eer(scores, target)
        results[name] = {
            "eer": eer, "min_dcf_0.01": compute_min_dcf(scores, target, 0.01)[0], "min_dcf_0.05": compute_min_dcf(scores, target, 0.05)[0],
        }
        write_text_atomic(output_dir / f"scores_{slug}.txt", "".join(f"{t.enroll} {t.test} {s:.6f}\n" for t, s in zip(trials, scores)))
    table = results_table(results, f"i-vector baseline: {len(trials)} trials, {len(train_ids)} training i-vectors")
    write_text_atomic(output_dir / "results.txt", table)
    plot_det({n: (s, target) for n, s in systems.values()}, output_dir / "det.png", title="i-vector baseline")
    save_config(config, output_dir / "score_config.yaml")
    logger.info("results table -> %s", output_dir / "results.txt")
    return results
