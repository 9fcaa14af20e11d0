"""Cosine scoring of trials from per-utterance vectors (stage 3 i-vectors, stage 7 embeddings)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cimc.data.trials import Trial, check_trials_known


def length_normalize(x: np.ndarray) -> np.ndarray:
    """Scale each row of (N, D) ``x`` to unit l2 norm (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def cosine_scores(
    ids: Sequence[str], vectors: np.ndarray, trials: Sequence[Trial], mean: np.ndarray | None = None, source: str = "vectors"
) -> np.ndarray:
    """Cosine similarity for each trial.

    :param ids: (N,) utterance ids of ``vectors``' rows.
    :param vectors: (N, D) embeddings.
    :param trials: the trials to score; an utterance without a vector raises ``KeyError`` naming it.
    :param mean: (D,) subtracted before length normalisation (the training-set mean, as WeSpeaker does).
    :param source: where the vectors came from, for the error message.
    :return: (T,) scores in trial order.
    """
    check_trials_known(trials, ids, source)
    row = {u: i for i, u in enumerate(ids)}
    x = np.asarray(vectors, dtype=np.float64)
    if mean is not None:
        x = x - mean
    x = length_normalize(x)
    enroll = np.fromiter((row[t.enroll] for t in trials), dtype=np.int64, count=len(trials))
    test = np.fromiter((row[t.test] for t in trials), dtype=np.int64, count=len(trials))
    return np.einsum("td,td->t", x[enroll], x[test])


def _top_k_stats(x: np.ndarray, cohort: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each row's ``top_k`` highest cosine scores against ``cohort``; (U,) each."""
    scores = x @ cohort.T
    k = min(top_k, cohort.shape[0])
    top = np.partition(scores, scores.shape[1] - k, axis=1)[:, -k:]
    return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-8)


def adaptive_snorm(
    ids: Sequence[str],
    vectors: np.ndarray,
    trials: Sequence[Trial],
    cohort: np.ndarray,
    top_k: int = 300,
    mean: np.ndarray | None = None,
    source: str = "vectors",
) -> np.ndarray:
    """Cosine scores normalised by adaptive symmetric normalisation (AS-norm, Matejka et al. 2017).

    For a trial (e, t) with cosine s: score = ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t) / 2, where
    mu_e, sigma_e are the mean and std of the ``top_k`` highest cosines of e against the cohort (the
    cohort impostors most similar to e), and likewise for t.

    :param cohort: (M, D) cohort vectors (training-set utterances or speaker means), never test data.
    :param mean: (D,) subtracted from every vector, cohort included, before length normalisation.
    :return: (T,) normalised scores in trial order.
    """
    check_trials_known(trials, ids, source)
    cohort = np.asarray(cohort, dtype=np.float64)
    if cohort.ndim != 2 or cohort.shape[0] == 0:
        raise ValueError(f"s-norm cohort must be a non-empty (M, D) matrix, got shape {cohort.shape}")
    x = np.asarray(vectors, dtype=np.float64)
    if mean is not None:
        x, cohort = x - mean, cohort - mean
    x, cohort = length_normalize(x), length_normalize(cohort)
    used = sorted({u for t in trials for u in (t.enroll, t.test)})
    row = {u: i for i, u in enumerate(ids)}
    used_rows = {u: i for i, u in enumerate(used)}
    mu, sigma = _top_k_stats(x[[row[u] for u in used]], cohort, top_k)
    raw = cosine_scores(ids, vectors, trials, mean, source)
    e = np.fromiter((used_rows[t.enroll] for t in trials), dtype=np.int64, count=len(trials))
    t_ = np.fromiter((used_rows[t.test] for t in trials), dtype=np.int64, count=len(trials))
    return 0.5 * ((raw - mu[e]) / sigma[e] + (raw - mu[t_]) / sigma[t_])
