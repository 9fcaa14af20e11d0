"""Scoring backend for i-vectors: LDA and two-covariance PLDA (numpy, float64).

Kaldi's v1 recipe: subtract the training mean, LDA to 200 dims, length-normalise, PLDA. Here PLDA is
the two-covariance model (Brummer & de Villiers 2010; Sizov et al. 2014):

    x = y + e,   y ~ N(mu, Phi_b) (speaker),   e ~ N(0, Phi_w) (session),

trained by EM, and scored in the basis that diagonalises both covariances (Phi_w -> I,
Phi_b -> diag(psi)), where the log-likelihood ratio of a trial is a sum over dimensions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.linalg import eigh

logger = logging.getLogger(__name__)


def _class_index(labels: Sequence) -> tuple[np.ndarray, int]:
    _, index = np.unique(np.asarray(labels), return_inverse=True)
    return index, int(index.max()) + 1


def class_scatter(x: np.ndarray, labels: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global mean (D,), within-class (D, D) and between-class (D, D) covariances (per sample).

    :param x: (N, D) vectors; ``labels``: (N,) class labels.
    """
    x = np.asarray(x, dtype=np.float64)
    index, num_classes = _class_index(labels)
    counts = np.bincount(index, minlength=num_classes).astype(np.float64)
    means = np.zeros((num_classes, x.shape[1]))
    np.add.at(means, index, x)
    means /= counts[:, None]
    mean = x.mean(0)
    centred = x - means[index]
    within = centred.T @ centred / len(x)
    offsets = (means - mean) * np.sqrt(counts)[:, None]
    between = offsets.T @ offsets / len(x)
    return mean, within, between


@dataclass
class Lda:
    """y = transform @ (x - mean); rows are the discriminant directions, best first, scaled so that
    the within-class covariance of y is the identity."""

    mean: np.ndarray
    transform: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, dim)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.transform.T


def train_lda(x: np.ndarray, labels: Sequence, dim: int, ridge: float = 1e-6) -> Lda:
    """Fisher LDA: the generalised eigenvectors of (between, within) with the ``dim`` largest eigenvalues.

    ``dim`` is capped at #classes - 1 and D (with a warning). ``ridge`` (relative to the mean
    within-class variance) keeps a rank-deficient within-class covariance invertible.
    """
    mean, within, between = class_scatter(x, labels)
    num_classes = len(np.unique(np.asarray(labels)))
    cap = min(num_classes - 1, x.shape[1])
    if dim > cap:
        logger.warning("LDA: %d dims requested but %d classes in %d dims allow %d; using %d", dim, num_classes, x.shape[1], cap, cap)
        dim = cap
    if dim < 1:
        raise ValueError(f"LDA needs at least 2 classes, got {num_classes}")
    within = within + ridge * np.trace(within) / len(within) * np.eye(len(within))
    _, vectors = eigh(between, within)  # ascending; vectors^T within vectors = I
    return Lda(mean, vectors[:, ::-1][:, :dim].T.copy())


def length_norm(x: np.ndarray, scale_to_sqrt_dim: bool = True) -> np.ndarray:
    """Rows scaled to norm sqrt(D) (Kaldi's ``ivector-normalize-length``) or 1; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    target = np.sqrt(x.shape[1]) if scale_to_sqrt_dim else 1.0
    return x * (target / np.maximum(norm, 1e-12))


@dataclass
class Plda:
    """Two-covariance PLDA: mean (D,), between (D, D) = Phi_b, within (D, D) = Phi_w."""

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray

    def _diagonal_basis(self) -> tuple[np.ndarray, np.ndarray]:
        psi, basis = eigh(self.between, self.within)  # basis^T within basis = I, basis^T between basis = diag(psi)
        return np.maximum(psi, 0.0), basis

    def score(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        """Log-likelihood ratio (same speaker vs different) of paired rows of (T, D) ``enroll``, ``test``.

        Per diagonalised dimension with between variance psi (within 1):
        llr = 1/2 q (u^2 + v^2) + p u v + c, q = 1/(psi+1) - (psi+1)/(2 psi+1),
        p = psi/(2 psi+1), c = log(psi+1) - 1/2 log(2 psi+1).
        """
        psi, basis = self._diagonal_basis()
        u = (np.asarray(enroll, dtype=np.float64) - self.mean) @ basis
        v = (np.asarray(test, dtype=np.float64) - self.mean) @ basis
        q = 1 / (psi + 1) - (psi + 1) / (2 * psi + 1)
        p = psi / (2 * psi + 1)
        c = np.log(psi + 1) - 0.5 * np.log(2 * psi + 1)
        return 0.5 * (u**2 + v**2) @ q + (u * v) @ p + c.sum()


def train_plda(x: np.ndarray, labels: Sequence, num_iters: int = 10) -> Plda:
    """EM for the two-covariance model, from the within/between scatter as the starting point.

    Speakers with the same number of samples share one posterior covariance, so each iteration costs
    O(#distinct counts * D^3 + N D^2).

    :param x: (N, D) vectors; ``labels``: (N,) speaker labels.
    """
    x = np.asarray(x, dtype=np.float64)
    index, num_spk = _class_index(labels)
    counts = np.bincount(index, minlength=num_spk)
    sums = np.zeros((num_spk, x.shape[1]))
    np.add.at(sums, index, x)
    mean, within, between = class_scatter(x, labels)
    second_moment = x.T @ x
    dim = x.shape[1]
    for iteration in range(num_iters):
        w_prec, b_prec = np.linalg.inv(within), np.linalg.inv(between)
        post_mean = np.zeros_like(sums)
        post_cov_sum = np.zeros((dim, dim))  # sum_i Cov[y_i]
        weighted_cov_sum = np.zeros((dim, dim))  # sum_i n_i Cov[y_i]
        for n in np.unique(counts):
            members = counts == n
            cov = np.linalg.inv(b_prec + n * w_prec)
            post_mean[members] = (b_prec @ mean + sums[members] @ w_prec) @ cov
            post_cov_sum += members.sum() * cov
            weighted_cov_sum += members.sum() * n * cov
        mean = post_mean.mean(0)
        between = (post_cov_sum + post_mean.T @ post_mean) / num_spk - np.outer(mean, mean)
        cross = sums.T @ post_mean
        within = (second_moment - cross - cross.T + (post_mean * counts[:, None]).T @ post_mean + weighted_cov_sum) / len(x)
        between, within = (between + between.T) / 2, (within + within.T) / 2
        logger.debug("PLDA iteration %d: trace between %.4f, within %.4f", iteration, np.trace(between), np.trace(within))
    return Plda(mean, between, within)
