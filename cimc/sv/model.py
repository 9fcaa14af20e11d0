"""ECAPA-TDNN speaker-embedding network (Desplanques et al., Interspeech 2020).

Layout, for ``channels`` C (512 or 1024 in the paper; 128-256 for the toy recipe)::

    (B, T, F) features
      -> Conv1d(F, C, k=5) + ReLU + BN                                   layer 1
      -> SE-Res2Block(k=3, dilation 2) -> SE-Res2Block(d=3) -> SE-Res2Block(d=4)
      -> concat the three block outputs (3C) -> Conv1d(3C, A, k=1) + ReLU   multi-layer aggregation
      -> attentive statistics pooling, channel- and context-dependent   (B, 2A)
      -> BN -> Linear(2A, 192) -> BN                                    (B, 192) embedding

A = ``3 * channels`` (1536 at C = 512, as in the paper). Crops within a batch share one length, so
no padding mask is needed; extraction runs one whole utterance at a time.
"""
from __future__ import annotations

import torch
from torch import nn


class Conv1dReluBn(nn.Module):
    """Conv1d -> ReLU -> BatchNorm1d on (B, C, T), 'same' padding for odd kernels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, padding=padding)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.relu(self.conv(x)))


class Res2Conv1d(nn.Module):
    """Res2Net split of the channels into ``scale`` groups, each convolved after adding the previous one.

    The first group passes through unchanged; group i > 1 sees group i plus the output of group i - 1,
    so receptive fields grow within one layer.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8) -> None:
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels ({channels}) must be divisible by the Res2Net scale ({scale})")
        self.scale = scale
        width = channels // scale
        self.convs = nn.ModuleList(Conv1dReluBn(width, width, kernel_size, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.chunk(x, self.scale, dim=1)
        outputs = [groups[0]]
        previous = None
        for conv, group in zip(self.convs, groups[1:]):
            previous = conv(group if previous is None else group + previous)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


class SqueezeExcitation(nn.Module):
    """Channel gates from the time-averaged activations: (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, bottleneck: int = 128) -> None:
        super().__init__()
        self.down = nn.Conv1d(channels, bottleneck, 1)
        self.up = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.up(torch.relu(self.down(x.mean(dim=2, keepdim=True)))))
        return x * gate


class SERes2Block(nn.Module):
    """1x1 conv -> dilated Res2 conv -> 1x1 conv -> SE, with a residual connection."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8, se_bottleneck: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            Conv1dReluBn(channels, channels, 1),
            Res2Conv1d(channels, kernel_size, dilation, scale),
            Conv1dReluBn(channels, channels, 1),
            SqueezeExcitation(channels, se_bottleneck),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AttentiveStatsPooling(nn.Module):
    """Channel- and context-dependent attentive statistics pooling: (B, A, T) -> (B, 2A).

    The attention sees each frame together with the utterance's global mean and standard deviation
    (the "context"), and gives every channel its own weights over time.
    """

    def __init__(self, channels: int, attention_channels: int = 128) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            Conv1dReluBn(3 * channels, attention_channels, 1),
            nn.Tanh(),
            nn.Conv1d(attention_channels, channels, 1),
        )

    @staticmethod
    def _stats(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (weights * x).sum(dim=2)
        var = (weights * x * x).sum(dim=2) - mean * mean
        return mean, var.clamp(min=1e-5).sqrt()  # clamp: sqrt'(0) is infinite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        uniform = torch.full_like(x[:, :1, :], 1.0 / frames)
        mean, std = self._stats(x, uniform)
        context = torch.cat([x, mean.unsqueeze(2).expand(-1, -1, frames), std.unsqueeze(2).expand(-1, -1, frames)], 1)
        weights = torch.softmax(self.attention(context), dim=2)
        mean, std = self._stats(x, weights)
        return torch.cat([mean, std], dim=1)


class EcapaTdnn(nn.Module):
    """ECAPA-TDNN: (B, T, F) features -> (B, embed_dim) speaker embeddings.

    :param feat_dim: F, 40 for the paper's MFCC, 80 for fbank.
    :param channels: C of the TDNN/SE-Res2 layers (512 or 1024 in the paper).
    :param embed_dim: embedding size (192 in the paper).
    :param scale: Res2Net scale (groups per Res2 conv); ``channels`` must be a multiple of it.
    """

    def __init__(
        self,
        feat_dim: int = 40,
        channels: int = 512,
        embed_dim: int = 192,
        scale: int = 8,
        se_bottleneck: int = 128,
        attention_channels: int = 128,
    ) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.embed_dim = embed_dim
        self.layer1 = Conv1dReluBn(feat_dim, channels, kernel_size=5)
        self.blocks = nn.ModuleList(SERes2Block(channels, 3, d, scale, se_bottleneck) for d in (2, 3, 4))
        aggregated = 3 * channels
        self.aggregate = nn.Conv1d(aggregated, aggregated, 1)
        self.pooling = AttentiveStatsPooling(aggregated, attention_channels)
        self.pool_bn = nn.BatchNorm1d(2 * aggregated)
        self.embedding = nn.Linear(2 * aggregated, embed_dim)
        self.embed_bn = nn.BatchNorm1d(embed_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """:param feats: (B, T, F). :return: (B, embed_dim)."""
        if feats.ndim != 3 or feats.shape[2] != self.feat_dim:
            raise ValueError(f"expected features of shape (B, T, {self.feat_dim}), got {tuple(feats.shape)}")
        x = self.layer1(feats.transpose(1, 2))
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        x = torch.relu(self.aggregate(torch.cat(outputs, dim=1)))
        x = self.pool_bn(self.pooling(x))
        return self.embed_bn(self.embedding(x))
