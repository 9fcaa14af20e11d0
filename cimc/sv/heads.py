"""Classification heads over speaker embeddings: AAM-softmax and OC-softmax, picked by name.

Both keep one weight vector per (pseudo-)speaker and score an embedding by the cosine to each:
cos_ij = <x_i / |x_i|, w_j / |w_j|>, an (N, C) matrix. They differ in how margins enter the loss.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

HEADS: dict[str, Callable[..., "MarginHead"]] = {}


def register_head(name: str) -> Callable[[type], type]:
    """Class decorator adding a head to :data:`HEADS` under ``name``."""

    def wrap(cls: type) -> type:
        HEADS[name] = cls
        return cls

    return wrap


def build_head(name: str, embed_dim: int, num_classes: int, **options) -> "MarginHead":
    """Instantiate the head registered as ``name``; an unknown name lists the valid ones."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; valid heads: {sorted(HEADS)}")
    return HEADS[name](embed_dim, num_classes, **options)


class MarginHead(nn.Module):
    """Cosine classifier with a margin that can be warmed up (``set_margin_scale``)."""

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)
        self.margin_scale = 1.0

    def set_margin_scale(self, fraction: float) -> None:
        """Scale every margin by ``fraction`` in [0, 1] (margin warm-up: 0 at the start, 1 after)."""
        self.margin_scale = float(min(max(fraction, 0.0), 1.0))

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings -> (N, C) cosines to the class weights, in float32.

        Autocast is switched off here: margins of 0.1 rad need cosines more precise than bf16's 3 digits.
        """
        with torch.autocast(embeddings.device.type, enabled=False):
            return F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:return: (mean loss, (N, C) margin-free cosine scores for accuracy)."""
        raise NotImplementedError


@register_head("aam")
class AamSoftmax(MarginHead):
    """Additive angular margin softmax (ArcFace; Deng et al.): logits s * cos(theta_y + m) for the target.

    Non-target logits are s * cos(theta_j). Where theta_y + m would pass pi, cos(theta + m) stops being
    monotone; there the target logit becomes s * (cos(theta_y) - m * sin(m)) (ArcFace's fallback), which
    keeps penalising the target without a gradient sign flip.

    :param scale: s (30 in the paper).
    :param margin: m in radians (0.1 in the paper).
    """

    def __init__(self, embed_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.1) -> None:
        super().__init__(embed_dim, num_classes)
        self.scale = scale
        self.margin = margin

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, C) logits with the margin applied to each row's target column."""
        return self._with_margin(self.cosine(embeddings), labels)

    def _with_margin(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        m = self.margin * self.margin_scale
        target = cos.gather(1, labels[:, None]).clamp(-1.0, 1.0)
        sin = (1.0 - target * target).clamp(min=1e-7).sqrt()  # min > 0: d sqrt(x)/dx is infinite at 0
        with_margin = target * math.cos(m) - sin * math.sin(m)
        with_margin = torch.where(target > math.cos(math.pi - m), with_margin, target - m * math.sin(m))
        return self.scale * cos.scatter(1, labels[:, None], with_margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(embeddings)
        return F.cross_entropy(self._with_margin(cos, labels), labels), cos.detach()


@register_head("ocsoftmax")
class OcSoftmax(MarginHead):
    """One-class softmax (Zhang et al., IEEE SPL 2021), one-vs-rest over the (pseudo-)speakers.

    Zhang et al.'s binary loss is log(1 + exp(alpha * (m_y - cos) * (-1)^y)): the target class must reach
    cosine m_pos (0.9), the others stay below m_neg (0.2). With C speakers each class is one such
    one-class problem, so per utterance

        loss_i = softplus(alpha * (m_pos - cos_iy)) + sum_{j != y} softplus(alpha * (cos_ij - m_neg))

    and the batch loss is the mean over i. Summing (not averaging) the non-targets is what adding the C
    binary losses gives; a non-target already below m_neg costs almost nothing.

    :param alpha: scale (20 in Zhang et al.).
    :param margin_pos: m_pos; :param margin_neg: m_neg.
    """

    def __init__(
        self, embed_dim: int, num_classes: int, alpha: float = 20.0, margin_pos: float = 0.9, margin_neg: float = 0.2
    ) -> None:
        super().__init__(embed_dim, num_classes)
        self.alpha = alpha
        self.margin_pos = margin_pos
        self.margin_neg = margin_neg

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(embeddings)
        # Warm-up moves both margins from the neutral 0 towards their targets.
        m_pos, m_neg = self.margin_pos * self.margin_scale, self.margin_neg * self.margin_scale
        is_target = F.one_hot(labels, cos.shape[1]).bool()
        per_entry = torch.where(is_target, F.softplus(self.alpha * (m_pos - cos)), F.softplus(self.alpha * (cos - m_neg)))
        return per_entry.sum(dim=1).mean(), cos.detach()
