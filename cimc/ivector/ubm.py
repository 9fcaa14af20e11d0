"""Diagonal-covariance UBM: log-likelihoods, EM statistics (mergeable across jobs), re-estimation,
k-means initialisation, and top-k / floored frame posteriors for Baum-Welch statistics.

Cost: scoring N frames against C Gaussians of dimension D is two (N, D) x (D, C) matrix products,
so a 2048-Gaussian UBM runs at matrix-multiply speed on CPU or GPU; ``chunk_frames`` bounds memory.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from cimc.utils import atomic_path

logger = logging.getLogger(__name__)


@dataclass
class DiagGmm:
    """A diagonal-covariance GMM: weights (C,), means (C, D), variances (C, D)."""

    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> "DiagGmm":
        return DiagGmm(*(t.to(device=device, dtype=dtype) for t in (self.weights, self.means, self.variances)))

    def log_likelihoods(self, frames: torch.Tensor) -> torch.Tensor:
        """log(w_c N(x_t; mu_c, diag(var_c))) for every frame and Gaussian.

        :param frames: (N, D).
        :return: (N, C).
        """
        precision = 1.0 / self.variances
        const = (
            torch.log(self.weights)
            - 0.5 * (self.dim * math.log(2 * math.pi) + torch.log(self.variances).sum(1) + (self.means**2 * precision).sum(1))
        )
        # One (N, 2D) x (2D, C) product: [x, x^2] against [mu / var, -1 / (2 var)].
        weights = torch.cat([self.means * precision, -0.5 * precision], dim=1)
        return torch.addmm(const, torch.cat([frames, frames * frames], dim=1), weights.T)

    def save(self, path: str | Path) -> None:
        """Write the model atomically as a torch file (float64 on CPU)."""
        with atomic_path(path) as tmp:
            torch.save({k: v.detach().cpu().double() for k, v in vars(self).items()}, tmp)


@dataclass
class UbmStats:
    """EM sufficient statistics of a UBM; jobs' statistics merge by addition.

    count (C,), first (C, D) = sum_t gamma_tc x_t, second (C, D) = sum_t gamma_tc x_t^2 (float64),
    log_likelihood = sum_t log p(x_t), num_frames.
    """

    count: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    log_likelihood: float = 0.0
    num_frames: int = 0

    @classmethod
    def zeros(cls, num_components: int, dim: int) -> "UbmStats":
        z = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
        return cls(z(num_components), z(num_components, dim), z(num_components, dim))

    def __add__(self, other: "UbmStats") -> "UbmStats":
        return type(self)(
            self.count + other.count, self.first + other.first, self.second + other.second,
            self.log_likelihood + other.log_likelihood, self.num_frames + other.num_frames,
        )

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(vars(self), tmp)

    @classmethod
    def load(cls, path: str | Path) -> "UbmStats":
        return cls(**torch.load(path, map_location="cpu"))


def accumulate(gmm: DiagGmm, frames: torch.Tensor, stats: UbmStats, chunk_frames: int = 50_000) -> None:
    """Add the EM statistics of ``frames`` (N, D) under ``gmm`` (same device/dtype) to ``stats``."""
    for start in range(0, len(frames), chunk_frames):
        x = frames[start : start + chunk_frames]
        loglik = gmm.log_likelihoods(x)
        total = torch.logsumexp(loglik, dim=1, keepdim=True)
        post = torch.exp(loglik - total)
        stats.count += post.sum(0).double().cpu()
        stats.first += (post.T @ x).double().cpu()
        stats.second += (post.T @ (x * x)).double().cpu()
        stats.log_likelihood += float(total.double().sum())
        stats.num_frames += len(x)


def estimate(stats: UbmStats, var_floor: float = 0.001, weight_floor: float = 1e-5) -> DiagGmm:
    """Maximum-likelihood update from merged statistics (float64).

    Variances are floored at ``var_floor`` times the global variance; a Gaussian whose weight falls
    below ``weight_floor`` is replaced by half of the heaviest one, split along its largest variance.
    """
    total = stats.count.sum()
    if total <= 0:
        raise ValueError("UBM statistics hold no frames; are all utterances unvoiced?")
    count = stats.count.clamp_min(1e-20)
    means = stats.first / count[:, None]
    variances = stats.second / count[:, None] - means**2
    global_mean = stats.first.sum(0) / total
    global_var = stats.second.sum(0) / total - global_mean**2
    variances = torch.maximum(variances, var_floor * global_var)
    weights = stats.count / total
    gmm = DiagGmm(weights, means, variances)
    dead = torch.nonzero(weights < weight_floor).flatten().tolist()
    for c in dead:
        _split_heaviest(gmm, c)
    if dead:
        logger.warning("UBM: %d Gaussian(s) fell below weight %g and were re-seeded by splitting", len(dead), weight_floor)
    return gmm


def _split_heaviest(gmm: DiagGmm, target: int) -> None:
    """Overwrite Gaussian ``target`` with half of the heaviest one, the two means moved apart by 0.2 sigma."""
    heavy = int(torch.argmax(gmm.weights))
    shift = 0.2 * gmm.variances[heavy].sqrt()
    gmm.weights[heavy] /= 2
    gmm.weights[target] = gmm.weights[heavy]
    gmm.means[target] = gmm.means[heavy] + shift
    gmm.means[heavy] = gmm.means[heavy] - shift
    gmm.variances[target] = gmm.variances[heavy]


def kmeans_init(frames: torch.Tensor, num_components: int, num_iters: int = 10, seed: int = 0, chunk_frames: int = 50_000) -> DiagGmm:
    """A GMM from Lloyd's k-means on ``frames`` (N, D): centroids, cluster shares and variances.

    Starts from distinct random frames; an empty cluster is re-seeded with a random frame.
    """
    if len(frames) < num_components:
        raise ValueError(f"{len(frames)} frames cannot initialise {num_components} Gaussians; lower ubm.num_components")
    generator = torch.Generator().manual_seed(seed)
    centers = frames[torch.randperm(len(frames), generator=generator)[:num_components].to(frames.device)].clone()
    for _ in range(max(num_iters, 1)):
        assign = _nearest(frames, centers, chunk_frames)
        counts = torch.bincount(assign, minlength=num_components).to(frames.dtype)
        sums = torch.zeros_like(centers).index_add_(0, assign, frames)
        empty = counts == 0
        centers = torch.where(empty[:, None], centers, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            refill = torch.randint(len(frames), (int(empty.sum()),), generator=generator).to(frames.device)
            centers[empty] = frames[refill]
    assign = _nearest(frames, centers, chunk_frames)
    counts = torch.bincount(assign, minlength=num_components).to(frames.dtype).clamp_min(1)
    sq = torch.zeros_like(centers).index_add_(0, assign, (frames - centers[assign]) ** 2)
    global_var = frames.var(0)
    variances = torch.where(counts[:, None] > 1, sq / counts[:, None], global_var).clamp_min(1e-3 * float(global_var.min()))
    return DiagGmm(counts / counts.sum(), centers, variances)


def _nearest(frames: torch.Tensor, centers: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    """Index (N,) of each frame's nearest center (squared Euclidean), chunked over frames."""
    half_sq = 0.5 * (centers**2).sum(1)
    return torch.cat([(half_sq - x @ centers.T).argmin(1) for x in frames.split(chunk_frames)])


def frame_posteriors(gmm: DiagGmm, frames: torch.Tensor, num_gselect: int, min_post: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse frame posteriors for Baum-Welch statistics (Kaldi's gselect + min-post).

    Keeps each frame's ``num_gselect`` most likely Gaussians, renormalises, zeroes posteriors below
    ``min_post`` and renormalises again (the top one always survives).

    :param frames: (N, D).
    :return: posteriors (N, k) summing to 1 per row (pruned ones 0) and their Gaussians (N, k),
        k = min(num_gselect, C).
    """
    loglik = gmm.log_likelihoods(frames)
    k = min(num_gselect, gmm.num_components)
    top_ll, top_idx = loglik.topk(k, dim=1)
    post = torch.softmax(top_ll, dim=1)
    if min_post > 0:
        keep = post >= min_post
        keep[:, 0] = True  # topk is sorted, so column 0 is the best Gaussian
        post = post * keep
        post = post / post.sum(1, keepdim=True)
    return post, top_idx
