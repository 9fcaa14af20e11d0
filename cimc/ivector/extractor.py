"""Total-variability model: Baum-Welch statistics, batched i-vector posteriors, EM with minimum
divergence and Kaldi's prior offset.

Model (Kaldi's ``IvectorExtractor``; diagonal or full UBM covariances): the supervector of an utterance is
M w, with M_c (D, R) per Gaussian, prior w ~ N(prior_offset * e_1, I). Column 0 of M_c absorbs the
UBM mean, so first-order statistics are *uncentred*. Everything is kept in the space whitened by
each Gaussian's covariance, T_c = Sigma_c^{-1/2} M_c, where the per-utterance posterior is

    L = I + sum_c N_c U_c,   U_c = T_c^T T_c          (precision, (R, R))
    b = prior_offset e_1 + sum_c T_c^T Sigma_c^{-1/2} F_c   (linear term, (R,))
    E[w] = L^{-1} b,  Cov[w] = L^{-1}.

Extraction precomputes U_c once (packed upper triangles, (C, R(R+1)/2)) so that a batch of B
utterances needs one (B, C) x (C, R(R+1)/2) product, one (B, CD) x (CD, R) product and a batched
Cholesky solve: matrix-multiply bound on CPU and GPU.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cimc.ivector.ubm import DiagGmm, frame_posteriors
from cimc.utils import atomic_path

logger = logging.getLogger(__name__)


def baum_welch_stats(
    gmm, utterances: Sequence[np.ndarray], num_gselect: int, min_post: float, posterior_scale: float = 1.0,
    device: str = "cpu", dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeroth and first order statistics of a batch of utterances.

    :param gmm: the UBM (diagonal or full), already on ``device``/``dtype``.
    :param utterances: B arrays (T_b, D) of front-end frames (T_b may be 0).
    :return: N (B, C) = sum_t gamma_tc and F (B, C, D) = sum_t gamma_tc x_t (uncentred).
    """
    lengths = torch.tensor([len(u) for u in utterances])
    batch, num_components, dim = len(utterances), gmm.num_components, gmm.dim
    counts = torch.zeros(batch * num_components, device=device, dtype=dtype)
    first = torch.zeros(batch * num_components, dim, device=device, dtype=dtype)
    if int(lengths.sum()) > 0:
        frames = torch.as_tensor(np.concatenate([np.asarray(u).reshape(-1, dim) for u in utterances]), dtype=dtype).to(device)
        post, gaussian = frame_posteriors(gmm, frames, num_gselect, min_post)
        # Scatter the surviving (frame, Gaussian) pairs into row b * C + c of the batch's statistics.
        utt = torch.repeat_interleave(torch.arange(batch), lengths).to(device)
        kept = torch.nonzero(post > 0, as_tuple=True)
        rows = utt[kept[0]] * num_components + gaussian[kept]
        values = post[kept] * posterior_scale
        counts.index_add_(0, rows, values)
        first.index_add_(0, rows, values[:, None] * frames[kept[0]])
    return counts.view(batch, num_components), first.view(batch, num_components, dim)


def _packed_index(dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.triu_indices(dim, dim, device=device))  # type: ignore[return-value]


def unpack_symmetric(packed: torch.Tensor, dim: int) -> torch.Tensor:
    """(..., R(R+1)/2) upper-triangle entries -> (..., R, R) symmetric matrices."""
    rows, cols = _packed_index(dim, packed.device)
    full = packed.new_zeros(*packed.shape[:-1], dim, dim)
    full[..., rows, cols] = packed
    full[..., cols, rows] = packed
    return full


def pack_symmetric(full: torch.Tensor) -> torch.Tensor:
    """(..., R, R) -> (..., R(R+1)/2) upper-triangle entries."""
    rows, cols = _packed_index(full.shape[-1], full.device)
    return full[..., rows, cols]


@dataclass
class IvectorPosterior:
    """Posterior of a batch: mean (B, R) (prior offset NOT removed), covariance (B, R, R), and the
    per-utterance log marginal likelihood of the statistics up to a T-independent constant (B,)."""

    mean: torch.Tensor
    covariance: torch.Tensor | None
    log_likelihood: torch.Tensor | None


class IvectorExtractor:
    """Whitened total-variability matrix T (C, D, R), the prior offset, and the whitening of each
    Gaussian: (C, D) 1/sigma for a diagonal UBM or (C, D, D) W_c = chol(Sigma_c)^{-1} for a full one."""

    def __init__(self, projection: torch.Tensor, whiten: torch.Tensor, prior_offset: float) -> None:
        self.projection = projection
        self.whiten = whiten
        self.prior_offset = float(prior_offset)
        self._packed_u: torch.Tensor | None = None

    @property
    def num_components(self) -> int:
        return self.projection.shape[0]

    @property
    def feat_dim(self) -> int:
        return self.projection.shape[1]

    @property
    def ivector_dim(self) -> int:
        return self.projection.shape[2]

    @classmethod
    def initialize(cls, gmm, ivector_dim: int, prior_offset: float = 100.0, seed: int = 0) -> "IvectorExtractor":
        """Kaldi's start: column 0 = UBM mean / prior_offset, other columns random (unit scale in whitened space).

        :param gmm: a :class:`DiagGmm` or a full-covariance ``FullGmm``.
        """
        if ivector_dim < 2:
            raise ValueError(f"ivector_dim must be at least 2, got {ivector_dim}")
        whiten = gmm.variances.double().rsqrt() if isinstance(gmm, DiagGmm) else gmm.whitening().double()
        generator = torch.Generator().manual_seed(seed)
        model = cls(torch.randn(gmm.num_components, gmm.dim, ivector_dim, generator=generator, dtype=torch.float64), whiten, prior_offset)
        model.projection[:, :, 0] = model.whitened(gmm.means.double().unsqueeze(0))[0] / prior_offset
        return model

    def to(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> "IvectorExtractor":
        return IvectorExtractor(self.projection.to(device, dtype), self.whiten.to(device, dtype), self.prior_offset)

    def whitened(self, first: torch.Tensor) -> torch.Tensor:
        """W_c F_c for statistics (B, C, D)."""
        if self.whiten.ndim == 2:
            return first * self.whiten
        return torch.einsum("ced,bcd->bce", self.whiten, first)

    def packed_u(self, chunk: int = 64) -> torch.Tensor:
        """U_c = T_c^T T_c as packed upper triangles (C, R(R+1)/2), computed once, in component chunks."""
        if self._packed_u is None:
            self._packed_u = torch.cat([pack_symmetric(t.transpose(1, 2) @ t) for t in self.projection.split(chunk)])
        return self._packed_u

    def posterior(self, counts: torch.Tensor, first: torch.Tensor, want_covariance: bool = False) -> IvectorPosterior:
        """Posterior of w for a batch of statistics N (B, C), F (B, C, D) (same device/dtype as T)."""
        batch, dim = counts.shape[0], self.ivector_dim
        linear = self.whitened(first).reshape(batch, -1) @ self.projection.reshape(-1, dim)
        linear[:, 0] += self.prior_offset
        # The (R, R) solves run in float64, as Kaldi's: cheap next to the products, and a long
        # utterance's precision can be too ill-conditioned for a float32 Cholesky.
        precision = unpack_symmetric(counts @ self.packed_u(), dim).double()
        precision.diagonal(dim1=1, dim2=2).add_(1.0)
        chol = torch.linalg.cholesky(precision)
        linear = linear.double()
        mean = torch.cholesky_solve(linear.unsqueeze(-1), chol).squeeze(-1)
        covariance = log_likelihood = None
        if want_covariance:
            covariance = torch.cholesky_inverse(chol).to(counts.dtype)
            log_det = 2 * torch.log(chol.diagonal(dim1=1, dim2=2)).sum(1)
            log_likelihood = 0.5 * (linear * mean).sum(1) - 0.5 * log_det - 0.5 * self.prior_offset**2
        return IvectorPosterior(mean.to(counts.dtype), covariance, log_likelihood)

    def extract(self, counts: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Posterior-mean i-vectors (B, R) with the prior offset removed (Kaldi's ``ivector-extract``)."""
        mean = self.posterior(counts, first).mean
        mean[:, 0] -= self.prior_offset
        return mean

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(
                {"projection": self.projection.detach().cpu().double(), "whiten": self.whiten.detach().cpu().double(),
                 "prior_offset": self.prior_offset},
                tmp,
            )

    @classmethod
    def load(cls, path: str | Path) -> "IvectorExtractor":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"i-vector extractor {path} does not exist (run `cimc ivector train-extractor` first)")
        state = torch.load(path, map_location="cpu")
        return cls(state["projection"], state["whiten"], state["prior_offset"])


@dataclass
class ExtractorStats:
    """EM statistics of the total-variability model; jobs' statistics merge by addition (float64, CPU).

    y (C, D, R) = sum_u whitened F_uc E[w_u]^T; r (C, R(R+1)/2) = sum_u N_uc E[w_u w_u^T] (packed);
    w_sum (R,), ww_sum (R, R) = sums of E[w], E[w w^T] for the prior; log_likelihood = sum of the
    statistics' log marginal likelihoods (up to a constant); num_utterances.
    """

    y: torch.Tensor
    r: torch.Tensor
    w_sum: torch.Tensor
    ww_sum: torch.Tensor
    log_likelihood: float = 0.0
    num_utterances: int = 0

    @classmethod
    def zeros(cls, num_components: int, feat_dim: int, ivector_dim: int) -> "ExtractorStats":
        z = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
        packed = ivector_dim * (ivector_dim + 1) // 2
        return cls(z(num_components, feat_dim, ivector_dim), z(num_components, packed), z(ivector_dim), z(ivector_dim, ivector_dim))

    def __add__(self, other: "ExtractorStats") -> "ExtractorStats":
        return ExtractorStats(
            self.y + other.y, self.r + other.r, self.w_sum + other.w_sum, self.ww_sum + other.ww_sum,
            self.log_likelihood + other.log_likelihood, self.num_utterances + other.num_utterances,
        )

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(vars(self), tmp)

    @classmethod
    def load(cls, path: str | Path) -> "ExtractorStats":
        return cls(**torch.load(path, map_location="cpu"))


def accumulate(extractor: IvectorExtractor, counts: torch.Tensor, first: torch.Tensor, stats: ExtractorStats) -> None:
    """E-step for one batch: add its contribution to ``stats`` (``extractor`` on the batch's device)."""
    post = extractor.posterior(counts, first, want_covariance=True)
    second = post.covariance + post.mean.unsqueeze(2) * post.mean.unsqueeze(1)  # E[w w^T], (B, R, R)
    whitened = extractor.whitened(first)
    batch = counts.shape[0]
    stats.y += (whitened.reshape(batch, -1).T @ post.mean).reshape(stats.y.shape).double().cpu()
    stats.r += (counts.T @ pack_symmetric(second)).double().cpu()
    stats.w_sum += post.mean.sum(0).double().cpu()
    stats.ww_sum += second.sum(0).double().cpu()
    stats.log_likelihood += float(post.log_likelihood.double().sum())
    stats.num_utterances += batch


def auxiliary(projection: torch.Tensor, stats: ExtractorStats) -> float:
    """EM auxiliary function of T given the E-step statistics (up to a constant):
    sum_c tr(T_c^T Y_c) - 1/2 tr(T_c R_c T_c^T)."""
    projection = projection.double()
    r_full = unpack_symmetric(stats.r, projection.shape[2])
    linear = (projection * stats.y).sum()
    quadratic = torch.einsum("cdr,crs,cds->", projection, r_full, projection)
    return float(linear - 0.5 * quadratic)


def estimate(extractor: IvectorExtractor, stats: ExtractorStats, min_divergence: bool = True, chunk: int = 64) -> IvectorExtractor:
    """M-step T_c = Y_c R_c^{-1} (float64), then optionally the minimum-divergence re-parametrisation.

    A Gaussian with (near) singular R_c, i.e. almost no data, keeps its old T_c.
    """
    old = extractor.projection.double().cpu()
    dim = old.shape[2]
    new_parts, kept = [], 0
    for part, y, r in zip(old.split(chunk), stats.y.split(chunk), stats.r.split(chunk)):
        r_full = unpack_symmetric(r, dim)
        chol, info = torch.linalg.cholesky_ex(r_full)
        solved = torch.cholesky_solve(y.transpose(1, 2), chol).transpose(1, 2)  # Y R^{-1}
        ok = (info == 0) & torch.isfinite(solved).flatten(1).all(1)
        new_parts.append(torch.where(ok[:, None, None], solved, part))
        kept += int((~ok).sum())
    projection = torch.cat(new_parts)
    if kept:
        logger.warning("T-matrix update: %d Gaussian(s) with singular statistics kept their old projection", kept)
    prior_offset = extractor.prior_offset
    if min_divergence:
        projection, prior_offset = _min_divergence(projection, stats)
    return IvectorExtractor(projection, extractor.whiten.double().cpu(), prior_offset)


def _min_divergence(projection: torch.Tensor, stats: ExtractorStats) -> tuple[torch.Tensor, float]:
    """Fold the ML prior N(m, S) of the i-vectors back into T so the prior is N(|A m| e_1, I) again.

    With S = L L^T and a Householder reflection H taking L^{-1} m onto the first axis, w' = H L^{-1} w
    has the required prior; T' = T L H keeps every supervector T w unchanged (Kaldi's UpdatePrior).
    """
    count = stats.num_utterances
    mean = stats.w_sum / count
    covariance = stats.ww_sum / count - torch.outer(mean, mean)
    chol = torch.linalg.cholesky(covariance)
    direction = torch.linalg.solve_triangular(chol, mean.unsqueeze(1), upper=False).squeeze(1)
    norm = float(direction.norm())
    reflector = direction.clone()
    reflector[0] -= norm
    householder = torch.eye(len(mean), dtype=torch.float64)
    if float(reflector.norm()) > 1e-12 * max(norm, 1.0):
        householder -= 2 * torch.outer(reflector, reflector) / (reflector @ reflector)
    logger.info("minimum divergence: prior offset %.3f, i-vector covariance trace %.3f", norm, float(covariance.trace()))
    return projection @ (chol @ householder), norm


def ivector_log_likelihood_per_utt(stats: ExtractorStats) -> float:
    """Average log marginal likelihood per utterance (monotone under EM)."""
    return stats.log_likelihood / max(stats.num_utterances, 1)

