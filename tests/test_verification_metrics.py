"""EER / minDCF of cimc.metrics.verification against brute force, scikit-learn and hand-worked answers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_curve

from cimc.metrics.verification import (
    compute_eer,
    compute_min_dcf,
    format_results_table,
    plot_det,
    verification_results,
)


def brute_force_rates(scores, labels):
    """(p_miss, p_fa) when accepting score >= t, for t in every score, -inf and +inf."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    rates = []
    for t in np.concatenate([[-np.inf], np.unique(scores), [np.inf]]):
        accept = scores >= t
        rates.append(((~accept & labels).sum() / labels.sum(), (accept & ~labels).sum() / (~labels).sum()))
    return np.array(rates)


def brute_force_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0):
    rates = brute_force_rates(scores, labels)
    dcf = c_miss * p_target * rates[:, 0] + c_fa * (1 - p_target) * rates[:, 1]
    return dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target))


def sklearn_eer(scores, labels):
    """Where the ROC's miss and false-alarm rates cross, interpolating between adjacent ROC points."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr  # from "reject all" (fnr 1, fpr 0) towards "accept all"
    i = int(np.argmax(fnr <= fpr))
    if i == 0 or fnr[i] == fpr[i]:
        return fnr[i]
    d0, d1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
    w = d0 / (d0 - d1)
    return fnr[i - 1] + w * (fnr[i] - fnr[i - 1])


def test_hand_worked_example():
    # thresholds: 0.4 -> miss 0, fa 1/4; 0.5 -> miss 1/3, fa 1/4; the curves cross at fa = 1/4.
    scores = [0.9, 0.6, 0.4, 0.5, 0.3, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0, 0, 0]
    assert compute_eer(scores, labels)[0] == pytest.approx(0.25)
    # p_target 0.5: normalised DCF = miss + fa, smallest at threshold 0.4 (0 + 1/4).
    dcf, threshold = compute_min_dcf(scores, labels, p_target=0.5)
    assert dcf == pytest.approx(0.25)
    assert threshold == pytest.approx(0.4)


@pytest.mark.parametrize(
    "targets, nontargets, eer, min_dcf",
    [
        ([2.0, 3.0], [0.0, 1.0], 0.0, 0.0),  # perfectly separated
        ([0.0, 1.0], [2.0, 3.0], 1.0, 1.0),  # perfectly wrong: no threshold beats the trivial system
        ([1.0, 1.0], [1.0, 1.0, 1.0], 0.5, 1.0),  # all tied: accept or reject all
    ],
)
def test_known_answers(targets, nontargets, eer, min_dcf):
    scores = np.array(targets + nontargets)
    labels = np.array([1] * len(targets) + [0] * len(nontargets))
    assert compute_eer(scores, labels)[0] == pytest.approx(eer)
    assert compute_min_dcf(scores, labels, 0.01)[0] == pytest.approx(min_dcf)


def test_ties_are_accepted_together():
    # A target tied with a non-target cannot be accepted without it.
    scores = [1.0, 0.5, 0.5, 0.0]
    labels = [1, 1, 0, 0]
    assert compute_min_dcf(scores, labels, 0.5)[0] == pytest.approx(brute_force_min_dcf(scores, labels, 0.5))
    assert compute_min_dcf(scores, labels, 0.5)[0] == pytest.approx(0.5)  # best: miss 1/2 fa 0, or miss 0 fa 1/2


def test_unbalanced_counts_match_brute_force():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(2, 1, 3), rng.normal(0, 1, 2000)])
    labels = np.array([1] * 3 + [0] * 2000)
    for p in (0.01, 0.05):
        assert compute_min_dcf(scores, labels, p)[0] == pytest.approx(brute_force_min_dcf(scores, labels, p))
    assert compute_eer(scores, labels)[0] == pytest.approx(sklearn_eer(scores, labels))
    # unequal costs (SRE's c_miss 10): swapped weights would give another value
    for c_miss, c_fa in [(10.0, 1.0), (1.0, 10.0)]:
        got = compute_min_dcf(scores, labels, 0.05, c_miss=c_miss, c_fa=c_fa)[0]
        assert got == pytest.approx(brute_force_min_dcf(scores, labels, 0.05, c_miss, c_fa))
    assert brute_force_min_dcf(scores, labels, 0.05, 10.0, 1.0) != pytest.approx(
        brute_force_min_dcf(scores, labels, 0.05, 1.0, 10.0))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=25),
    st.lists(st.integers(0, 6), min_size=1, max_size=25),
    st.sampled_from([0.01, 0.05, 0.5]),
)
def test_random_scores_with_ties_match_references(targets, nontargets, p_target):
    scores = np.array(targets + nontargets, dtype=float)
    labels = np.array([1] * len(targets) + [0] * len(nontargets))
    assert compute_min_dcf(scores, labels, p_target)[0] == pytest.approx(brute_force_min_dcf(scores, labels, p_target))
    eer, threshold = compute_eer(scores, labels)
    assert eer == pytest.approx(sklearn_eer(scores, labels))
    # its threshold is an operating point (accept score >= t) whose miss and false-alarm rates bracket the EER
    accept = scores >= threshold
    miss, fa = (~accept & (labels == 1)).sum() / len(targets), (accept & (labels == 0)).sum() / len(nontargets)
    assert min(miss, fa) - 1e-12 <= eer <= max(miss, fa) + 1e-12
    rates = brute_force_rates(scores, labels)
    # The crossing lies between the best "both below" and the best "both above" operating points.
    assert rates.min(axis=1).max() - 1e-12 <= eer <= rates.max(axis=1).min() + 1e-12


def test_monotone_transform_keeps_metrics():
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(1, 1, 50), rng.normal(0, 1, 300)])
    labels = np.array([1] * 50 + [0] * 300)
    assert compute_eer(np.exp(scores), labels)[0] == pytest.approx(compute_eer(scores, labels)[0])
    assert compute_min_dcf(3 * scores + 1, labels)[0] == pytest.approx(compute_min_dcf(scores, labels)[0])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="both target and non-target"):
        compute_eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        compute_eer([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([0.1, 0.2], [1, 0], p_target=1.0)


def test_results_table_and_det_plot(tmp_path):
    scores = [0.9, 0.6, 0.4, 0.5, 0.3, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0, 0, 0]
    results = verification_results(scores, labels, (0.01, 0.05))
    assert results["eer"] == pytest.approx(25.0)
    assert (results["targets"], results["nontargets"]) == (3, 4)
    table = format_results_table({"sys": results, "other": {"eer": 5.0}}).splitlines()
    assert table[0].split() == ["system", "EER(%)", "minDCF(p=0.01)", "minDCF(p=0.05)", "#target", "#nontarget"]
    assert table[2].split()[:2] == ["sys", "25.0000"] and table[3].split() == ["other", "5.0000", "-", "-", "-", "-"]
    plot_det({"sys": (scores, labels)}, tmp_path / "det.png")
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
