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
