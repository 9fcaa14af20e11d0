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
statistics alone (:func:`frozen_batchnorm_stats`), as IMSAT's code does. For mixup this is what makes it a brake
on early commitment: a mixed batch has ~2/3 of the clean batch's variance, its own statistics scale it back up,
and the mixed logits spread ~1.2 x past their target whatever the network, so mixup penalises the logits' scale
and holds the predictions near uniform. Normalised with the clean pass's statistics instead (one function for
both passes), mixup wrecked CIMC: docs/cimc_tuning.md, "Why mixup brakes". VAT's adversarial batch has more
variance than the clean one, and its own statistics damp the perturbation; with the clean pass's, IMSAT collapsed
on the i-vector sets (same section).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Callable, Iterator

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
    :param cond_weight: weight of H(Y|X) inside the MI term at this step (below 1 during its warm-up).
    :param confident_only: whether SupCon's confidence threshold applies at this step (see :class:`SupConLoss`).
    """

    model: nn.Module
    x: Tensor
    logits: Tensor
    eps: Tensor
    cond_weight: float = 1.0
    confident_only: bool = True


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


def log_softmax_floored(logits: Tensor) -> Tensor:
    """log softmax (B, C) in fp32, -inf raised to the lowest finite float: then p log p is 0 * finite = 0 where p = 0,
    value and gradient, not 0 * -inf = NaN (a logit of -inf, or a marginal class no row predicts)."""
    return F.log_softmax(_fp32(logits), dim=1).clamp_min(torch.finfo(torch.float32).min)


def kl_from_logits(target_logits: Tensor, logits: Tensor) -> Tensor:
    """Batch mean of KL(softmax(target_logits) || softmax(logits)); (B, C), (B, C) -> scalar. No log(0)."""
    log_p = log_softmax_floored(target_logits)
    log_q = log_softmax_floored(logits)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean()


def entropy_terms(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(H(Y|X), H(Y)) in nats for a batch of logits (B, C).

    H(Y|X) is the batch mean of each row's entropy; H(Y) the entropy of the batch-mean prediction.
    log p(y) = logsumexp_i log p(y|x_i) - log B, computed without ever taking log(0).
    """
    log_p = log_softmax_floored(logits)
    cond = -(log_p.exp() * log_p).sum(1).mean()
    log_marginal = torch.logsumexp(log_p, dim=0) - math.log(logits.shape[0])
    marginal = -(log_marginal.exp() * log_marginal).sum()
    return cond, marginal


def supcon_softmax(sim: Tensor, temperature: float, out_dtype: torch.dtype,
                   kept: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Row log-normalisers (N,) and softmax A (N, N) in ``out_dtype`` of s = sim / t, self-pairs excluded.

    :param sim: (N, N) dot products of the l2-normalised features (any float dtype).
    :param kept: (N,) bool, the columns that take part (None: all); the others get A = 0.
    """
    s = _fp32(sim) / temperature
    idx = torch.arange(s.shape[0], device=s.device)
    s = torch.where(idx[:, None] == idx[None, :], float("-inf"), s)
    if kept is not None:
        s = torch.where(kept[None, :], s, float("-inf"))
    lse = torch.logsumexp(s, dim=1)
    return lse, torch.exp(s - lse[:, None]).to(out_dtype)


def supcon_symmetric(probs: Tensor, has_pos: Tensor) -> Tensor:
    """G + G^T for G = ``probs`` (N, N) with the rows of anchors without a positive (``has_pos`` (N, 1) False) zeroed."""
    g = torch.where(has_pos, probs, torch.zeros((), dtype=probs.dtype, device=probs.device))
    return g + g.T


@dataclasses.dataclass(frozen=True)
class LossKernels:
    """The memory-bound math of the loss terms, eager or fused by ``torch.compile``.

    At the paper's size it is these passes over (B, C) and (B, B) tensors, not the matmuls, that fill
    a GPU step: on one H100 (bf16, B 10,240, C 5,000) IMSAT took 11.5 ms a step eagerly against about
    2 ms of matmul work. Fused, each function reads its inputs about once.
    """

    kl: Callable[[Tensor, Tensor], Tensor] = kl_from_logits
    entropy: Callable[[Tensor], tuple[Tensor, Tensor]] = entropy_terms
    supcon_softmax: Callable[[Tensor, float, torch.dtype, Tensor | None], tuple[Tensor, Tensor]] = supcon_softmax
    supcon_symmetric: Callable[[Tensor, Tensor], Tensor] = supcon_symmetric


EAGER = LossKernels()


@functools.cache
def compiled_kernels(backend: str = "inductor") -> LossKernels:
    """:class:`LossKernels` compiled by ``torch.compile`` (fixed shapes); one set per process, so that every
    trainer reuses the compiled code."""
    return LossKernels(*(torch.compile(getattr(EAGER, f.name), backend=backend, dynamic=False)
                         for f in dataclasses.fields(LossKernels)))


class MutualInformationLoss:
    """IMSAT's ``lambda * (H(Y|X) - mu * H(Y))``: confident but balanced assignments.

    H(Y|X) is multiplied by ``ctx.cond_weight`` (1 but during an entropy warm-up, see CimcConfig); with
    ``marginal_warmup`` H(Y) is too, so the whole term ramps at the paper's 1 : mu.
    """

    name = "mi"

    def __init__(self, lam: float = 0.5, mu: float = 3.5, kernels: LossKernels = EAGER,
                 marginal_momentum: float = 0.0, marginal_warmup: bool = False) -> None:
        self.lam, self.mu, self.kernels = lam, mu, kernels
        self.marginal_warmup = marginal_warmup
        self.marginal_momentum = marginal_momentum
        self.running_marginal: Tensor | None = None  # (C,) p(y) averaged over batches (marginal_momentum > 0)

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        if self.marginal_momentum > 0:
            cond, marginal, shown = self._smoothed_entropy_terms(ctx.logits)
        else:
            cond, marginal = self.kernels.entropy(ctx.logits)
            shown = marginal
        marginal_weight = ctx.cond_weight if self.marginal_warmup else 1.0
        loss = self.lam * (ctx.cond_weight * cond - self.mu * marginal_weight * marginal)
        return loss, {"H(Y|X)": cond.detach(), "H(Y)": shown.detach()}

    def _smoothed_entropy_terms(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(H(Y|X), an H(Y) surrogate, H of the smoothed marginal) with p(y) averaged over batches.

        With few points a cluster in a batch (the paper's 10,240 for C 5,000: 2) the batch-mean prediction
        is a noisy estimate of p(y), and H's gradient, -log p(y) - 1, takes the log of that noise. Here
        p(y) is an exponential average over batches, m * running + (1 - m) * batch mean, and the term is the
        cross-entropy -sum_k b_k log p_k of the batch mean b against it (p detached): its gradient in b is
        -log p_k, H's own at p (the -1 adds nothing, as the b_k sum to 1), and it equals H(b) when p = b.
        """
        log_p = log_softmax_floored(logits)
        probs = log_p.exp()
        cond = -(probs * log_p).sum(1).mean()
        batch = probs.mean(0)
        if self.running_marginal is None:
            self.running_marginal = torch.full_like(batch, 1.0 / batch.numel()).detach()
        m = self.marginal_momentum
        smoothed = m * self.running_marginal + (1.0 - m) * batch.detach()
        self.running_marginal = smoothed
        log_smoothed = torch.log(smoothed.clamp_min(torch.finfo(smoothed.dtype).tiny))
        return cond, -(batch * log_smoothed).sum(), -(smoothed * log_smoothed).sum()

    def state(self) -> dict:
        """What a checkpoint keeps of this term (the running marginal)."""
        return {"running_marginal": self.running_marginal}

    def load_state(self, state: dict) -> None:
        self.running_marginal = state["running_marginal"]


def _unit_rows(t: Tensor) -> Tensor:
    return t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def vat_direction(model: nn.Module, x: Tensor, logits: Tensor, xi: float, iterations: int = 1,
                  kl: Callable[[Tensor, Tensor], Tensor] = kl_from_logits) -> Tensor:
    """Unit-norm adversarial directions (B, d) by ``iterations`` power iterations of VAT.

    The gradient of KL(p(x) || p(x + xi d)) at a random unit ``d`` points along the dominant
    eigenvector of the KL's Hessian: the direction where predictions change fastest.
    """
    target = logits.detach()
    direction = _unit_rows(torch.randn_like(x))
    for _ in range(iterations):
        direction = direction.detach().requires_grad_(True)
        with frozen_batchnorm_stats(model):
            distance = kl(target, model(x + xi * direction))
        grad, = torch.autograd.grad(distance, direction)
        direction = _unit_rows(grad)
    return direction.detach()


class VatLoss:
    """R_SAT with VAT: KL(p(x) || p(x + eps_i * r_i)), r_i the unit adversarial direction, p(x) fixed.

    The paper writes R_SAT as a cross-entropy; it differs from this KL by H(p(x)), a constant in
    the parameters, so the gradients are the same and the logged value is 0 at a perfect fit.
    """

    name = "vat"

    def __init__(self, xi: float, iterations: int = 1, kernels: LossKernels = EAGER) -> None:
        self.xi, self.iterations, self.kernels = xi, iterations, kernels

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        direction = vat_direction(ctx.model, ctx.x, ctx.logits, self.xi, self.iterations, self.kernels.kl)
        with frozen_batchnorm_stats(ctx.model):
            adv_logits = ctx.model(ctx.x + ctx.eps[:, None] * direction)
        loss = self.kernels.kl(ctx.logits.detach(), adv_logits)
        return loss, {}


class _ChunkedSupCon(torch.autograd.Function):
    """Exact SupCon over all pairs, never holding more than (chunk, N) similarities at a time.

    The positive pairs need no (N, N) mask: with S_c the sum of the features labelled c,
    sum_{p in P(i)} s_ip = f_i . (S_{y_i} - f_i) / t, and the positives' share of the gradient is
    -2 (S_{y_k} - f_k) / (|P(k)| N t) (every anchor of a class has the same |P|). Only the
    log-normaliser needs all N^2 similarities. When the batch fits in one chunk, forward keeps
    A = softmax(sim) (in the matmul dtype) and backward is one matmul, (A + A^T) F; otherwise
    backward recomputes A chunk by chunk. Rows outside ``kept`` (N,) bool, when given, take no part:
    not anchors, positives or negatives (fixed shapes, so no host sync and no recompile).
    """

    @staticmethod
    def forward(ctx, feats: Tensor, labels: Tensor, temperature: float, chunk: int, matmul_dtype: torch.dtype,
                num_classes: int, kernels: LossKernels, kept: Tensor | None):
        n = feats.shape[0]
        mm_feats = feats.to(matmul_dtype)
        probs = None
        if chunk >= n:  # one chunk: keep the softmax for backward
            lse, probs = kernels.supcon_softmax(mm_feats @ mm_feats.T, temperature, matmul_dtype, kept)
            lse = lse.to(feats.dtype)
        else:
            lse = torch.empty(n, device=feats.device, dtype=feats.dtype)
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                sim = _similarity_chunk(mm_feats, start, stop, temperature, feats.dtype, kept)
                lse[start:stop] = torch.logsumexp(sim, 1)
        member = feats if kept is None else feats * kept[:, None]  # rows left out join no class sum
        class_sum = feats.new_zeros(num_classes, feats.shape[1]).index_add_(0, labels, member)
        others = class_sum[labels] - member  # (N, D): sum of each anchor's positives
        pos_count = (class_counts(labels, num_classes, kept)[labels] - 1).to(feats.dtype)
        has_pos = pos_count > 0
        if kept is not None:
            has_pos &= kept
        pos_mean = (feats * others).sum(1) / temperature / pos_count.clamp_min(1)
        per_anchor = torch.where(has_pos, lse - pos_mean, torch.zeros_like(lse))
        ctx.save_for_backward(feats, lse, pos_count, has_pos, others, probs, kept)
        ctx.temperature, ctx.chunk, ctx.matmul_dtype, ctx.kernels = temperature, chunk, matmul_dtype, kernels
        no_positive = (~has_pos).sum() if kept is None else (kept & ~has_pos).sum()
        ctx.mark_non_differentiable(no_positive)
        return per_anchor.sum() / n, no_positive

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_count):
        feats, lse, pos_count, has_pos, others, probs, kept = ctx.saved_tensors
        n, t = feats.shape[0], ctx.temperature
        has_pos = has_pos[:, None]
        scale = grad_loss.to(feats.dtype) / (n * t)
        # dL/ds_ij = (A_ij - [j in P(i)] / |P(i)|) / N for anchors i with a positive; s_ij = f_i . f_j / t.
        grad = -2.0 * torch.where(has_pos, others / pos_count.clamp_min(1)[:, None], 0.0)
        mm_feats = feats.to(ctx.matmul_dtype)
        if probs is not None:
            grad += (ctx.kernels.supcon_symmetric(probs, has_pos) @ mm_feats).to(feats.dtype)
        else:
            for start in range(0, n, ctx.chunk):
                stop = min(start + ctx.chunk, n)
                sim = _similarity_chunk(mm_feats, start, stop, t, feats.dtype, kept)
                a = torch.where(has_pos[start:stop], torch.exp(sim.sub_(lse[start:stop, None])), 0.0)
                a = a.to(ctx.matmul_dtype)
                grad[start:stop] += (a @ mm_feats).to(feats.dtype)
                grad += (a.T @ mm_feats[start:stop]).to(feats.dtype)
        return grad * scale, None, None, None, None, None, None, None


def class_counts(labels: Tensor, num_classes: int, kept: Tensor | None = None) -> Tensor:
    """(num_classes,) counts of ``labels`` (N,), of the rows in ``kept`` (N,) bool if given. Unlike
    torch.bincount on CUDA, never waits for the GPU."""
    ones = torch.ones_like(labels) if kept is None else kept.to(labels.dtype)
    return labels.new_zeros(num_classes).scatter_add_(0, labels, ones)


def _similarity_chunk(feats: Tensor, start: int, stop: int, temperature: float, dtype: torch.dtype,
                      kept: Tensor | None = None) -> Tensor:
    """Rows ``start:stop`` of sim = F F^T / t in ``dtype``, the self-pairs (and columns not ``kept``) at -inf;
    (stop - start, N)."""
    sim = (feats[start:stop] @ feats.T).to(dtype) / temperature
    sim.diagonal(offset=start).fill_(float("-inf"))
    if kept is not None:
        sim.masked_fill_(~kept[None, :], float("-inf"))
    return sim


def supcon_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, chunk_size: int = 1024,
                matmul_dtype: torch.dtype | None = None, num_classes: int | None = None,
                kernels: LossKernels = EAGER, kept: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Supervised contrastive loss (Khosla et al., L_out) over a batch, exact, in row chunks.

    loss_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a != i} exp(s_ia) ), s = z z^T / t,
    P(i) = other samples with the label of i. Anchors with no positive contribute 0 and are counted.
    With ``kept``, the same over the kept rows alone (the others add 0 and are not counted), still divided by N.

    :param features: (N, D) features, l2-normalised here.
    :param labels: (N,) integer labels in [0, num_classes).
    :param temperature: t.
    :param chunk_size: anchors per chunk; memory O(N * chunk_size). A batch of at most this many is
        one chunk and skips recomputing the similarities in backward (memory ~6 N^2 bytes in bf16).
    :param matmul_dtype: dtype of the similarity matmuls (bf16 on GPU for speed); default features'.
    :param num_classes: labels' range (default max + 1, which waits for the GPU once).
    :param kernels: eager or compiled elementwise math (:class:`LossKernels`).
    :param kept: (N,) bool, the rows that take part (None: all).
    :return: (mean loss over all N anchors, number of anchors without a positive).
    """
    feats = F.normalize(_fp32(features), dim=1)
    labels = labels.to(torch.long)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if len(labels) else 1
    return _ChunkedSupCon.apply(feats, labels, temperature, chunk_size, matmul_dtype or feats.dtype, num_classes,
                                kernels, kept)


class SupConLoss:
    """SupCon on l2-normalised logits (or softmax outputs), labelled by the model's own online argmax predictions.

    With ``min_confidence`` > 0 only the points whose top softmax probability reaches it take part (as anchors,
    positives and negatives); the loss stays a mean over the whole batch, the others adding 0. The threshold
    applies at the steps where ``ctx.confident_only`` (the trainer ends it at ``supcon_min_confidence_until``).
    """

    name = "supcon"
    FEATURES = ("logits", "probs")

    def __init__(self, temperature: float = 0.1, chunk_size: int = 1024, matmul_dtype: torch.dtype | None = None,
                 kernels: LossKernels = EAGER, features: str = "logits", min_confidence: float = 0.0):
        if features not in self.FEATURES:
            raise ValueError(f"supcon_features {features!r}: use one of {', '.join(self.FEATURES)}")
        self.temperature, self.chunk_size, self.matmul_dtype, self.kernels = temperature, chunk_size, matmul_dtype, kernels
        self.features, self.min_confidence = features, min_confidence

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        labels = ctx.logits.detach().argmax(1)
        feats = ctx.logits if self.features == "logits" else torch.softmax(_fp32(ctx.logits), dim=1)
        kept, logged = None, {}
        if self.min_confidence > 0 and ctx.confident_only:
            kept = torch.softmax(_fp32(ctx.logits.detach()), dim=1).amax(1) >= self.min_confidence
            logged["kept"] = kept.float().mean()
        loss, no_positive = supcon_loss(feats, labels, self.temperature, self.chunk_size, self.matmul_dtype,
                                        num_classes=ctx.logits.shape[1], kernels=self.kernels, kept=kept)
        return loss, {"no_pos": no_positive / len(labels), **logged}


class MixupLoss:
    """Virtual mixup on logits (VMT): the mix of two samples' logits is the (fixed) target for their mixed input.

    The mixed pass normalises with the mixed batch's own BatchNorm statistics: a penalty on the logits' scale
    besides the check for linearity between points (module docstring)."""

    name = "mixup"

    def __init__(self, alpha: float = 1.0, kernels: LossKernels = EAGER) -> None:
        self.alpha, self.kernels = alpha, kernels
        self.beta: torch.distributions.Beta | None = None

    def __call__(self, ctx: LossContext) -> tuple[Tensor, dict[str, Tensor]]:
        n = ctx.x.shape[0]
        if self.beta is None or self.beta.concentration1.device != ctx.x.device:
            # Sampled on the batch's device: a per-step copy from host memory would make the CPU wait for the GPU.
            alpha = torch.tensor(float(self.alpha), device=ctx.x.device)
            self.beta = torch.distributions.Beta(alpha, alpha)
        mix = self.beta.sample((n, 1))
        partner = torch.randperm(n, device=ctx.x.device)
        logits = ctx.logits.detach()
        target = mix * logits + (1 - mix) * logits[partner]
        with frozen_batchnorm_stats(ctx.model):
            mixed_logits = ctx.model(mix * ctx.x + (1 - mix) * ctx.x[partner])
        return self.kernels.kl(target, mixed_logits), {}


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
