"""The loss terms of IMSAT and CIMC, each a separate module chosen by name from a config list.

Every row of the paper's Table I is a list of these names::

    vat      R_SAT: KL(p(x) || p(x + r_adv)), r_adv from one VAT power iteration, per-sample radius
    mi       lambda * (H(Y|X) - mu * H(Y))             (IMSAT's information-maximisation term)
    imsat    shorthand for [vat, mi]
    supcon   supervised contrastive loss on l2-normalised logits with the online argmax labels
    mixup    virtual mixup (VMT): KL(softmax(a z_i + (1-a) z_r) || f(a x_i + (1-a) x_r)), a ~ Beta
    vicreg_var, vicreg_cov   VICReg variance and covariance terms on the logits (ablation rows)

A term is called with a :class:`LossContext` (model, batch, clean logits, VAT radii) and returns the
unweighted scalar loss and a dict of detached 0-dim tensors to log (no GPU sync per step); the
trainer weights and sums them.
Perturbed forward passes (VAT, mixup) use BatchNorm batch statistics but leave the running
statistics alone (:func:`frozen_batchnorm_stats`), as IMSAT's code does.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclasses.dataclass
class LossContext:
    """What a loss term may look at for one mini-batch.

    :param model: the clustering network, (B, d) -> (B, C) logits, in train mode.
    :param x: (B, d) input batch.
    :param logits: (B, C) clean logits of ``x`` (with grad).
    :param eps: (B,) VAT radius per sample, in input units.
    """

    model: nn.Module
    x: Tensor
    logits: Tensor
    eps: Tensor


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorm layers normalise with batch statistics but do not update running ones.

    momentum = 0 makes the running-average update a no-op: running = 1 * running + 0 * batch.
    """
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            saved.append((module, module.momentum, module.num_batches_tracked.clone()))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum, tracked in saved:
            module.momentum = momentum
            module.num_batches_tracked.copy_(tracked)


def _fp32(t: Tensor) -> Tensor:
    """``t`` in float32 at least (bf16/fp16 logits from autocast are upcast; float64 stays)."""
    return t if t.dtype == torch.float64 else t.float()


def kl_from_logits(target_logits: Tensor, logits: Tensor) -> Tensor:
    """Batch mean of KL(softmax(target_logits) || softmax(logits)); (B, C), (B, C) -> scalar. No log(0)."""
    log_p = F.log_softmax(_fp32(target_logits), dim=1)
    log_q = F.log_softmax(_fp32(logits), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean()


def entropy_terms(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(H(Y|X), H(Y)) in nats for a batch of logits (B, C).

    H(Y|X) is the batch mean of each row's entropy; H(Y) the entropy of the batch-mean prediction.
    log p(y) = logsumexp_i log p(y|x_i) - log B, computed without ever taking log(0).
    """
    log_p = F.log_softmax(_fp32(logits), dim=1)
    cond = -(log_p.exp() * log_p).sum(1).mean()
    log_marginal = torch.logsumexp(log_p, dim=0) - math.log(logits.shape[0])
    marginal = -(log_marginal.exp() * log_marginal).sum()
    return cond, marginal


class MutualInformationLoss:
    """IMSAT's ``lambda * (H(Y|X) - mu * H(Y))``: confident but balanced assignments."""

    name = "mi"

    def __init__(self, lam: float = 0.5, mu: float = 3.5) -> None:
        self.lam, self.mu = lam, mu

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        cond, marginal = entropy_terms(ctx.logits)
        loss = self.lam * (cond - self.mu * marginal)
        return loss, {"H(Y|X)": cond.detach(), "H(Y)": marginal.detach()}


def _unit_rows(t: Tensor) -> Tensor:
    return t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def vat_direction(model: nn.Module, x: Tensor, logits: Tensor, xi: float, iterations: int = 1) -> Tensor:
    """Unit-norm adversarial directions (B, d) by ``iterations`` power iterations of VAT.

    The gradient of KL(p(x) || p(x + xi d)) at a random unit ``d`` points along the dominant
    eigenvector of the KL's Hessian: the direction where predictions change fastest.
    """
    target = logits.detach()
    direction = _unit_rows(torch.randn_like(x))
    for _ in range(iterations):
        direction = direction.detach().requires_grad_(True)
        with frozen_batchnorm_stats(model):
            distance = kl_from_logits(target, model(x + xi * direction))
        grad, = torch.autograd.grad(distance, direction)
        direction = _unit_rows(grad)
    return direction.detach()


class VatLoss:
    """R_SAT with VAT: KL(p(x) || p(x + eps_i * r_i)), r_i the unit adversarial direction, p(x) fixed.

    The paper writes R_SAT as a cross-entropy; it differs from this KL by H(p(x)), a constant in
    the parameters, so the gradients are the same and the logged value is 0 at a perfect fit.
    """

    name = "vat"

    def __init__(self, xi: float, iterations: int = 1) -> None:
        self.xi, self.iterations = xi, iterations

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        direction = vat_direction(ctx.model, ctx.x, ctx.logits, self.xi, self.iterations)
        with frozen_batchnorm_stats(ctx.model):
            adv_logits = ctx.model(ctx.x + ctx.eps[:, None] * direction)
        loss = kl_from_logits(ctx.logits.detach(), adv_logits)
        return loss, {}


class _ChunkedSupCon(torch.autograd.Function):
    """Exact SupCon over all pairs, never holding more than (chunk, N) similarities.

    Forward stores only the per-anchor log-normaliser; backward recomputes each chunk of the
    similarity matrix and uses dL/dsim_ij = (softmax_ij - [j in P(i)] / |P(i)|) / N.
    """

    @staticmethod
    def forward(ctx, feats: Tensor, labels: Tensor, temperature: float, chunk: int, matmul_dtype: torch.dtype):
        n = feats.shape[0]
        mm_feats = feats.to(matmul_dtype)
        lse = torch.empty(n, device=feats.device, dtype=feats.dtype)
        pos_count = torch.empty(n, device=feats.device, dtype=feats.dtype)
        pos_sum = torch.empty(n, device=feats.device, dtype=feats.dtype)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            sim, positive = _similarity_chunk(mm_feats, labels, start, stop, temperature, feats.dtype)
            lse[start:stop] = torch.logsumexp(sim, dim=1)
            pos_count[start:stop] = positive.sum(1)
            pos_sum[start:stop] = torch.where(positive, sim, torch.zeros((), device=sim.device)).sum(1)
        has_pos = pos_count > 0
        per_anchor = torch.where(has_pos, lse - pos_sum / pos_count.clamp_min(1), torch.zeros_like(lse))
        ctx.save_for_backward(feats, labels, lse, pos_count)
        ctx.temperature, ctx.chunk, ctx.matmul_dtype = temperature, chunk, matmul_dtype
        no_positive = (~has_pos).sum()
        ctx.mark_non_differentiable(no_positive)
        return per_anchor.sum() / n, no_positive

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_count):
        feats, labels, lse, pos_count = ctx.saved_tensors
        n, t = feats.shape[0], ctx.temperature
        mm_feats = feats.to(ctx.matmul_dtype)
        grad = torch.zeros_like(feats)
        scale = grad_loss.to(feats.dtype) / n
        inv_count = torch.where(pos_count > 0, 1.0 / pos_count.clamp_min(1), torch.zeros_like(pos_count))
        for start in range(0, n, ctx.chunk):
            stop = min(start + ctx.chunk, n)
            sim, positive = _similarity_chunk(mm_feats, labels, start, stop, t, feats.dtype)
            g = torch.exp(sim - lse[start:stop, None]) - positive * inv_count[start:stop, None]
            g = g * (inv_count[start:stop, None] > 0) * scale  # anchors without positives: no gradient
            g = g.to(ctx.matmul_dtype)
            # sim_ij = f_i . f_j / t: anchor rows get g @ f, the other side gets g^T @ f_chunk.
            grad[start:stop] += (g @ mm_feats).to(feats.dtype) / t
            grad += (g.T @ mm_feats[start:stop]).to(feats.dtype) / t
        return grad, None, None, None, None


def _similarity_chunk(feats: Tensor, labels: Tensor, start: int, stop: int, temperature: float, dtype: torch.dtype):
    """Rows ``start:stop`` of sim = F F^T / t in ``dtype`` with the self-pair at -inf, and the positive mask."""
    sim = (feats[start:stop] @ feats.T).to(dtype) / temperature
    rows = torch.arange(stop - start, device=feats.device)
    sim[rows, rows + start] = float("-inf")
    positive = labels[start:stop, None] == labels[None, :]
    positive[rows, rows + start] = False
    return sim, positive


def supcon_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, chunk_size: int = 1024,
                matmul_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Supervised contrastive loss (Khosla et al., L_out) over a batch, exact, in row chunks.

    loss_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a != i} exp(s_ia) ), s = z z^T / t,
    P(i) = other samples with the label of i. Anchors with no positive contribute 0 and are counted.

    :param features: (N, D) features, l2-normalised here.
    :param labels: (N,) integer labels.
    :param temperature: t.
    :param chunk_size: anchors per chunk; memory O(N * chunk_size).
    :param matmul_dtype: dtype of the similarity matmuls (bf16 on GPU for speed); default features'.
    :return: (mean loss over all N anchors, number of anchors without a positive).
    """
    feats = F.normalize(_fp32(features), dim=1)
    return _ChunkedSupCon.apply(feats, labels, temperature, chunk_size, matmul_dtype or feats.dtype)


class SupConLoss:
    """SupCon on l2-normalised logits, labelled by the model's own online argmax predictions."""

    name = "supcon"

    def __init__(self, temperature: float = 0.1, chunk_size: int = 1024, matmul_dtype: torch.dtype | None = None):
        self.temperature, self.chunk_size, self.matmul_dtype = temperature, chunk_size, matmul_dtype

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        labels = ctx.logits.detach().argmax(1)
        loss, no_positive = supcon_loss(ctx.logits, labels, self.temperature, self.chunk_size, self.matmul_dtype)
        return loss, {"no_pos": no_positive / len(labels)}


class MixupLoss:
    """Virtual mixup on logits (VMT): the mix of two samples' logits is the (fixed) target for their mixed input."""

    name = "mixup"

    def __init__(self, alpha: float = 1.0) -> None:
        self.beta = torch.distributions.Beta(alpha, alpha)

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        n = ctx.x.shape[0]
        mix = self.beta.sample((n, 1)).to(ctx.x.device)
        partner = torch.randperm(n, device=ctx.x.device)
        logits = ctx.logits.detach()
        target = mix * logits + (1 - mix) * logits[partner]
        with frozen_batchnorm_stats(ctx.model):
            mixed_logits = ctx.model(mix * ctx.x + (1 - mix) * ctx.x[partner])
        return kl_from_logits(target, mixed_logits), {}


class VicRegVarianceLoss:
    """VICReg variance term on the logits: mean_d relu(gamma - std_d), std over the batch."""

    name = "vicreg_var"

    def __init__(self, gamma: float = 1.0) -> None:
        self.gamma = gamma

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        std = torch.sqrt(_fp32(ctx.logits).var(dim=0) + 1e-4)
        return F.relu(self.gamma - std).mean(), {}


class VicRegCovarianceLoss:
    """VICReg covariance term on the logits: sum of squared off-diagonal covariances / D."""

    name = "vicreg_cov"

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        z = _fp32(ctx.logits)
        z = z - z.mean(0)
        cov = z.T @ z / max(z.shape[0] - 1, 1)
        off_diagonal = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
        return off_diagonal / z.shape[1], {}


LOSS_NAMES = ("vat", "mi", "supcon", "mixup", "vicreg_var", "vicreg_cov")
ALIASES = {"imsat": ("vat", "mi")}


def expand_loss_names(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Expand aliases (``imsat`` -> ``vat, mi``), check names, keep order, drop repeats."""
    out: list[str] = []
    for name in names:
        for part in ALIASES.get(name, (name,)):
            if part not in LOSS_NAMES:
                raise ValueError(f"unknown loss term {part!r}; known: {', '.join(LOSS_NAMES + tuple(ALIASES))}")
            if part not in out:
                out.append(part)
    if not out:
        raise ValueError("the loss list is empty; give at least one of " + ", ".join(LOSS_NAMES))
    return tuple(out)
