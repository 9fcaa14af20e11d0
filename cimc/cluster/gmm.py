"""Diagonal-covariance GMM clustering in torch for GPUs and large N: EM in row chunks, no N x K matrix.

scikit-learn's ``GaussianMixture`` holds several (N, K) float64 arrays (log-probabilities, responsibilities):
at VoxCeleb2's 1.09M i-vectors and K 5,000 each is 44 GB. Here the E-step runs ``chunk_size`` rows at a time
and keeps only the sufficient statistics (K, D), so memory is O(chunk_size * K + K * D). The model and its
statistics are those of the UBM (:mod:`cimc.ivector.ubm`, one diagonal GMM in the package); the steps follow
scikit-learn's: k-means initialisation, M-step with ``reg_covar`` added to the variances, stop when the mean
log-likelihood changes by less than ``tol``, labels the most likely component.

Cost per iteration: two (N, 2D) x (2D, K) products, about 4 N K D flops (1.09M x 400 x 5,000: 9 TFLOP).
"""
from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def _m_step(stats, reg_covar: float):
    """The maximum-likelihood DiagGmm of ``stats`` (:class:`cimc.ivector.ubm.UbmStats`), as scikit-learn's M-step:
    counts padded by 10 machine epsilons (an empty component keeps finite parameters), ``reg_covar`` added."""
    import torch

    from cimc.ivector.ubm import DiagGmm

    count = stats.count + 10 * torch.finfo(torch.float64).eps
    means = stats.first / count[:, None]
    variances = stats.second / count[:, None] - means ** 2 + reg_covar
    return DiagGmm(count / count.sum(), means, variances.clamp_min(reg_covar))


def _hard_stats(X, labels, n_clusters: int, chunk_size: int = 65536):
    """UbmStats of one-hot responsibilities (what the M-step needs to start from a k-means partition), summed in
    float64 ``chunk_size`` rows at a time (a float64 copy of all of X would be 3.5 GB at 1.09M x 400)."""
    import torch

    from cimc.ivector.ubm import UbmStats

    stats = UbmStats.zeros(n_clusters, X.shape[1])
    first = torch.zeros(n_clusters, X.shape[1], dtype=torch.float64, device=X.device)
    second = torch.zeros_like(first)
    for start in range(0, len(X), chunk_size):
        rows, rows_labels = X[start:start + chunk_size].double(), labels[start:start + chunk_size]
        first.index_add_(0, rows_labels, rows)
        second.index_add_(0, rows_labels, rows * rows)
    stats.count += torch.bincount(labels, minlength=n_clusters).double().cpu()
    stats.first += first.cpu()
    stats.second += second.cpu()
    return stats


def _most_likely(gmm, X, chunk_size: int):
    """(N,) index of the most likely component of each row of X."""
    import torch

    return torch.cat([gmm.log_likelihoods(X[s:s + chunk_size]).argmax(dim=1) for s in range(0, len(X), chunk_size)])


def diag_gmm_em(X: np.ndarray, n_clusters: int, max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6,
                seed: int = 0, device: str = "auto", chunk_size: int = 0, init_sample: int | None = None,
                init_labels: np.ndarray | None = None, progress: bool | None = None) -> tuple[np.ndarray, dict]:
    """Fit a diagonal GMM by EM and return each point's most likely component.

    :param X: (N, D) float array. :param n_clusters: K <= N.
    :param tol: stop when the mean log-likelihood per point changes by less than this (scikit-learn's rule).
    :param init_labels: (N,) labels 0..K-1 to start from (default: :func:`cimc.cluster.lloyd.lloyd_kmeans`, one
        k-means++ start, as scikit-learn's ``init_params="kmeans"``; its seeding on ``init_sample`` random points
        when given: K sequential passes over all 1.09M points are slow).
    :param chunk_size: rows per E-step block, memory O(chunk_size * K); 0: the device's default.
    :param progress: tqdm bars over the EM iterations and the k-means start (None: above 100,000 points).
    :return: labels (N,) int64 and {"iterations", "converged", "mean_log_likelihood"}.
    """
    import torch
    from tqdm import tqdm

    from cimc.cluster.base import show_progress
    from cimc.cluster.lloyd import default_chunk_size, lloyd_kmeans
    from cimc.ivector.ubm import UbmStats, accumulate
    from cimc.utils import resolve_device

    dev = torch.device(resolve_device(device))
    chunk_size = chunk_size or default_chunk_size(dev)
    X = np.asarray(X, dtype=np.float32)
    if not 1 <= n_clusters <= len(X):
        raise ValueError(f"diag_gmm_em: n_clusters={n_clusters} must be between 1 and N={len(X)}")
    progress = show_progress(len(X)) if progress is None else progress
    if init_labels is None:
        init_labels, _ = lloyd_kmeans(X, n_clusters, seed=seed, device=str(dev), chunk_size=chunk_size,
                                      init_sample=init_sample, progress=progress)
    init_labels = np.asarray(init_labels)
    if init_labels.shape != (len(X),) or init_labels.min() < 0 or init_labels.max() >= n_clusters:
        raise ValueError(f"diag_gmm_em: init_labels must be (N,) = ({len(X)},) values in 0..{n_clusters - 1}")
    Xt = torch.as_tensor(X, device=dev)
    gmm = _m_step(_hard_stats(Xt, torch.as_tensor(init_labels, dtype=torch.long, device=dev), n_clusters, chunk_size),
                  reg_covar)
    mean_log_likelihood, change, iteration = -np.inf, np.inf, 0
    bar = tqdm(range(1, max_iter + 1), desc="gmm EM", disable=not progress)
    for iteration in bar:
        stats = UbmStats.zeros(n_clusters, X.shape[1])
        accumulate(gmm.to(dev), Xt, stats, chunk_frames=chunk_size)  # E-step under the current model
        gmm = _m_step(stats, reg_covar)
        change = abs(stats.log_likelihood / len(X) - mean_log_likelihood)
        mean_log_likelihood = stats.log_likelihood / len(X)
        bar.set_postfix_str(f"mean log-likelihood {mean_log_likelihood:.4f}", refresh=False)
        if change < tol:
            break
    bar.close()
    converged = change < tol
    if not converged and tol > 0:  # tol 0 asks for max_iter iterations (fixed work, as the benchmark)
        logger.warning("gmm: EM did not converge in %d iterations (mean log-likelihood change %.3g >= tol %g)",
                       max_iter, change, tol)
    labels = _most_likely(gmm.to(dev), Xt, chunk_size).cpu().numpy().astype(np.int64)
    return labels, {"iterations": iteration, "converged": converged, "mean_log_likelihood": mean_log_likelihood}
