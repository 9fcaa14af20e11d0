"""AAM-softmax and OC-softmax against their formulas on hand-made inputs; ECAPA-TDNN shapes and pooling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cimc.sv.heads import AamSoftmax, OcSoftmax, build_head
from cimc.sv.model import AttentiveStatsPooling, EcapaTdnn


def head_with_axes(cls, **options):
    """A 3-class head in 2-D whose class directions are at 0, 90 and 180 degrees (norms 2, 1, 3)."""
    head = cls(2, 3, **options)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [-3.0, 0.0]]))
    return head


def at_angles(degrees, norm=5.0):
    rad = np.radians(degrees)
    return torch.tensor(np.stack([np.cos(rad), np.sin(rad)], 1) * norm, dtype=torch.float32)


def reference_aam(degrees, labels, s, m):
    """Logits and mean cross-entropy from theta directly (numpy), ArcFace's fallback where theta + m > pi."""
    class_angles = np.radians([0.0, 90.0, 180.0])
    theta = np.abs(np.radians(degrees)[:, None] - class_angles[None, :])
    theta = np.minimum(theta, 2 * np.pi - theta)
    logits = s * np.cos(theta)
    for i, y in enumerate(labels):
        t = theta[i, y]
        logits[i, y] = s * (math.cos(t + m) if t + m <= math.pi else math.cos(t) - m * math.sin(m))
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return logits, -log_probs[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("margin_scale", [1.0, 0.5, 0.0])
def test_aam_softmax_matches_formula(margin_scale):
    degrees = [10.0, 80.0, 100.0, 178.0, 30.0]
    labels = [0, 1, 2, 0, 2]  # the 4th sits near 180 deg from its class: theta + m > pi, the fallback
    head = head_with_axes(AamSoftmax, scale=30.0, margin=0.1)
    head.set_margin_scale(margin_scale)
    y = torch.tensor(labels)
    logits = head.logits(at_angles(degrees), y)
    ref_logits, ref_loss = reference_aam(degrees, labels, 30.0, 0.1 * margin_scale)
    np.testing.assert_allclose(logits.detach().numpy(), ref_logits, atol=2e-4)
    loss, cos = head(at_angles(degrees), y)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-4)
    margin_free, _ = reference_aam(degrees, labels, 1.0, 0.0)
    np.testing.assert_allclose(cos.numpy(), margin_free, atol=1e-5)  # accuracy is read without the margin


def test_aam_gradient_is_finite_when_aligned():
    head = head_with_axes(AamSoftmax)
    x = at_angles([0.0, 90.0]).requires_grad_(True)
    loss, _ = head(x, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


def test_oc_softmax_matches_formula():
    degrees = [10.0, 80.0, 135.0]
    labels = [0, 1, 2]
    head = head_with_axes(OcSoftmax, alpha=20.0, margin_pos=0.9, margin_neg=0.2)
    loss, cos = head(at_angles(degrees), torch.tensor(labels))
    class_angles = np.radians([0.0, 90.0, 180.0])
    c = np.cos(np.radians(degrees)[:, None] - class_angles[None, :])
    softplus = lambda z: np.log1p(np.exp(z))  # noqa: E731
    per_utt = []
    for i, y in enumerate(labels):
        # Zhang et al.: log(1 + exp(alpha (m_y - cos) (-1)^y)), target "bona fide", each other class "spoof"
        terms = [softplus(20 * (0.9 - c[i, j])) if j == y else softplus(20 * (c[i, j] - 0.2)) for j in range(3)]
        per_utt.append(sum(terms))
    assert loss.item() == pytest.approx(np.mean(per_utt), rel=1e-5)
    np.testing.assert_allclose(cos.numpy(), c, atol=1e-6)


def test_oc_softmax_cost_is_small_once_margins_are_met():
    head = head_with_axes(OcSoftmax)
    # On its class axis: cos 1 > 0.9 with the target; cos 0 and -1 < 0.2 with the others.
    x = at_angles([0.0, 90.0, 180.0])
    met, _ = head(x, torch.tensor([0, 1, 2]))
    missed, _ = head(x, torch.tensor([1, 2, 0]))
    sp = lambda z: np.log1p(np.exp(z))  # noqa: E731
    # utterances 0 and 2 see the other classes at cos 0 and -1, utterance 1 at cos 0 twice
    assert met.item() == pytest.approx(sp(-2) + sp(-4) + (2 * sp(-24) + sp(-4)) / 3, rel=1e-5)
    assert missed.item() > 20 * met.item()


def test_unknown_head_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown head 'arcface'.*aam.*ocsoftmax"):
        build_head("arcface", 4, 2)


def test_ecapa_shapes_and_any_length():
    torch.manual_seed(0)
    model = EcapaTdnn(feat_dim=40, channels=32, embed_dim=192, se_bottleneck=8, attention_channels=8).eval()
    for frames in (7, 150):
        assert model(torch.randn(3, frames, 40)).shape == (3, 192)
    dilations = [block.body[1].convs[0].conv.dilation[0] for block in model.blocks]
    assert dilations == [2, 3, 4]
    with pytest.raises(ValueError, match=r"\(B, T, 40\)"):
        model(torch.randn(2, 100, 80))
    with pytest.raises(ValueError, match="divisible"):
        EcapaTdnn(channels=30)


def test_attentive_pooling_with_flat_attention_is_mean_and_std():
    torch.manual_seed(0)
    pool = AttentiveStatsPooling(6, attention_channels=4).eval()
    with torch.no_grad():
        pool.attention[-1].weight.zero_()
        pool.attention[-1].bias.zero_()  # equal logits -> uniform weights over time
    x = torch.randn(2, 6, 50)
    out = pool(x)
    torch.testing.assert_close(out[:, :6], x.mean(dim=2))
    torch.testing.assert_close(out[:, 6:], x.std(dim=2, unbiased=False), atol=1e-4, rtol=1e-4)



def test_head_cosines_stay_float32_under_autocast():
    head = head_with_axes(AamSoftmax)
    x = at_angles([3.0, 88.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head.cosine(x)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, head.cosine(x), rtol=0, atol=0)
