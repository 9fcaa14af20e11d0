"""cimc.metrics.clustering against scikit-learn, scipy's dense Hungarian and hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm
from sklearn.metrics.cluster import contingency_matrix
from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information

from cimc.metrics.clustering import (
    METRIC_NAMES, calinski_harabasz, cluster_accuracy, clustering_metrics, contingency_table, davies_bouldin,
    expected_mutual_info, feature_metrics, information_scores, metrics_table, purity, silhouette_cosine,
)

TOL = 1e-6


def sklearn_label_metrics(true, pred) -> dict[str, float]:
    """The label-only metrics from scikit-learn (ACC and purity from its dense contingency matrix)."""
    table = contingency_matrix(true, pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {
        "acc": table[rows, cols].sum() / len(true),
        "nmi": skm.normalized_mutual_info_score(true, pred),
        "ami": skm.adjusted_mutual_info_score(true, pred),
        "homogeneity": skm.homogeneity_score(true, pred),
        "completeness": skm.completeness_score(true, pred),
        "fmi": skm.fowlkes_mallows_score(true, pred),
        "purity": table.max(axis=0).sum() / len(true),
        "num_clusters": len(np.unique(pred)),
    }


def assert_close(ours: dict, ref: dict) -> None:
    for name, value in ref.items():
        assert ours[name] == pytest.approx(value, abs=TOL, rel=TOL), name


labelings = st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 6), min_size=n, max_size=n), st.lists(st.integers(0, 9), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(labelings)
def test_label_metrics_match_sklearn_on_random_labelings(pair):
    true, pred = map(np.array, pair)
    assert_close(clustering_metrics(true, pred), sklearn_label_metrics(true, pred))


@pytest.mark.parametrize("seed", range(6))
def test_label_metrics_match_sklearn_on_correlated_labelings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 2000))
    true = rng.integers(0, int(rng.integers(2, 60)), n)
    pred = np.where(rng.random(n) < 0.7, true * 3 % 41, rng.integers(0, 41, n))
    assert_close(clustering_metrics(true, pred), sklearn_label_metrics(true, pred))


def test_string_labels_and_permutation_invariance():
    true = ["spk_b", "spk_a", "spk_a", "spk_c", "spk_b", "spk_c"]
    pred = [7, 3, 3, 3, 7, 9]
    ours = clustering_metrics(true, pred)
    assert_close(ours, sklearn_label_metrics(np.array(true), np.array(pred)))
    relabelled = clustering_metrics(true, [{7: 0, 3: 5, 9: 2}[p] for p in pred])
    assert relabelled == pytest.approx(ours)


def test_hand_worked_accuracy_and_purity():
    # classes a a a b b c; clusters 0 0 1 1 1 1 -> best map a->0 (2), b->1 (2): ACC 4/6;
    # purity: cluster 0 majority a (2), cluster 1 majority b (2) -> 4/6.
    true, pred = list("aaabbc"), [0, 0, 1, 1, 1, 1]
    table = contingency_table(true, pred)
    assert cluster_accuracy(table) == pytest.approx(4 / 6)
    assert purity(table) == pytest.approx(4 / 6)
    # more clusters than classes: every cluster is its own point, ACC = 3 matched / 6
    assert cluster_accuracy(contingency_table(true, range(6))) == pytest.approx(3 / 6)


@pytest.mark.parametrize("shape", [(5, 40), (40, 5), (30, 30)])
def test_accuracy_matches_dense_hungarian_on_rectangular_tables(shape):
    rng = np.random.default_rng(sum(shape))
    true = rng.integers(0, shape[0], 3000)
    pred = np.where(rng.random(3000) < 0.5, true % shape[1], rng.integers(0, shape[1], 3000))
    dense = contingency_matrix(true, pred)
    rows, cols = linear_sum_assignment(dense, maximize=True)
    assert cluster_accuracy(contingency_table(true, pred)) == pytest.approx(dense[rows, cols].sum() / 3000)


@pytest.mark.parametrize("case", [
    "lognormal sizes", "few huge clusters", "sizes above N/2", "many singletons",
])
def test_expected_mutual_info_matches_sklearn(case):
    rng = np.random.default_rng(0)
    if case == "lognormal sizes":
        a = np.maximum(1, rng.lognormal(4, 0.8, 300).astype(int))
        b = rng.multinomial(a.sum(), np.full(200, 1 / 200))
    elif case == "few huge clusters":  # wide hypergeometric ranges: the walk goes far both ways
        a = np.array([30000, 25000, 5000])
        b = np.array([20000, 20000, 20000])
    elif case == "sizes above N/2":  # n_ij starts at a + b - N > 1
        a = np.array([9000, 1000])
        b = np.array([8000, 1500, 500])
    else:
        a = np.concatenate([np.ones(400, int), [600]])
        b = np.concatenate([np.ones(300, int), [350, 350]])
    b = b[b > 0]
    n = int(a.sum())
    table = _table_with_margins(a, b)  # sklearn's EMI reads only the margins
    assert expected_mutual_info(a, b) == pytest.approx(expected_mutual_information(table, n), rel=1e-9, abs=1e-12)


def _table_with_margins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Some non-negative integer table with row sums a and column sums b (north-west corner rule)."""
    a, b = a.copy(), b.copy()
    table = np.zeros((a.size, b.size), dtype=np.int64)
    i = j = 0
    while i < a.size and j < b.size:
        take = min(a[i], b[j])
        table[i, j] = take
        a[i] -= take
        b[j] -= take
        i += a[i] == 0
        j += b[j] == 0
    return table


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=25), st.integers(1, 30), st.integers(0, 2**31))
def test_expected_mutual_info_matches_sklearn_on_random_sizes(a, k, seed):
    a = np.array(a)
    b = np.random.default_rng(seed).multinomial(a.sum(), np.full(k, 1 / k))
    b = b[b > 0]
    expected = expected_mutual_information(_table_with_margins(a, b), int(a.sum()))
    assert expected_mutual_info(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_expected_mutual_info_is_zero_for_one_cluster_and_checks_totals():
    assert expected_mutual_info(np.array([5, 5]), np.array([10])) == 0.0
    with pytest.raises(ValueError, match="sum"):
        expected_mutual_info(np.array([5, 5]), np.array([9]))


def test_degenerate_labelings_follow_sklearn():
    for true, pred in [([0, 0, 0], [1, 1, 1]), ([0, 0, 1], [0, 0, 0]), ([0, 0, 0], [0, 1, 2]), ([1], [2])]:
        assert_close(clustering_metrics(true, pred), sklearn_label_metrics(np.array(true), np.array(pred)))
    assert "ami" not in information_scores(contingency_table([0, 1], [0, 1]), adjusted=False)


@pytest.mark.parametrize("average_method", ["arithmetic", "geometric", "min", "max"])
def test_information_scores_every_average_and_unadjusted_match_sklearn(average_method):
    rng = np.random.default_rng(7)
    true = rng.integers(0, 12, 2_000)
    pred = np.where(rng.random(2_000) < 0.6, true, rng.integers(0, 9, 2_000))  # correlated, C != K
    table = contingency_table(true, pred)
    got = information_scores(table, average_method=average_method)
    assert got["nmi"] == pytest.approx(skm.normalized_mutual_info_score(true, pred, average_method=average_method),
                                       abs=1e-9)
    assert got["ami"] == pytest.approx(skm.adjusted_mutual_info_score(true, pred, average_method=average_method),
                                       abs=1e-9)
    unadjusted = information_scores(table, average_method=average_method, adjusted=False)
    assert unadjusted == pytest.approx({"nmi": got["nmi"], "homogeneity": skm.homogeneity_score(true, pred),
                                        "completeness": skm.completeness_score(true, pred)}, abs=1e-9)


def test_feature_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6)) + np.repeat(rng.normal(scale=3, size=(5, 6)), 60, axis=0)
    labels = np.repeat(np.arange(5), 60)
    noisy = rng.random(300) < 0.2
    labels[noisy] = rng.integers(0, 5, int(noisy.sum()))
    ours = feature_metrics(X, labels, silhouette_sample=None)
    assert ours["silhouette"] == pytest.approx(skm.silhouette_score(X, labels, metric="cosine"), abs=TOL)
    assert ours["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(X, labels), rel=TOL)
    assert ours["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(X, labels), rel=TOL)
    assert calinski_harabasz(X, labels) == pytest.approx(ours["calinski_harabasz"])
    assert davies_bouldin(X, labels) == pytest.approx(ours["davies_bouldin"])
    # 0 means all points, as on the command line (it once meant "skip" here, and NaN came back silently)
    assert feature_metrics(X, labels, silhouette_sample=0)["silhouette"] == ours["silhouette"]
    assert np.isnan(feature_metrics(X, labels, silhouette=False)["silhouette"])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 80), st.integers(2, 8))
def test_feature_metrics_match_sklearn_on_random_data(seed, n, k):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    labels = rng.integers(0, k, n)
    if not 2 <= len(np.unique(labels)) <= n - 1:
        assert np.isnan(silhouette_cosine(X, labels))
        return
    ours = feature_metrics(X, labels, silhouette_sample=None)
    assert ours["silhouette"] == pytest.approx(skm.silhouette_score(X, labels, metric="cosine"), abs=1e-5)
    assert ours["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(X, labels), rel=1e-5)
    assert ours["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(X, labels), rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silhouette_of_copies_split_across_clusters_is_sklearns_zero(dtype):
    """Three copies of one vector, two in one cluster, one in another: the copies' own and nearest distances
    are both 0 (scikit-learn scores them 0), not rounding noise of either sign."""
    for seed in range(20):
        X = np.random.default_rng(seed).normal(size=(6, 20)).astype(dtype)
        X[1] = X[2] = X[0]
        labels = np.array([0, 0, 1, 2, 2, 2])
        want = skm.silhouette_score(X, labels, metric="cosine")
        assert silhouette_cosine(X, labels, sample_size=None) == pytest.approx(want, abs=1e-6)


def test_sampled_silhouette_is_exact_per_sampled_point():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5))
    labels = rng.integers(0, 7, 500)
    per_point = skm.silhouette_samples(X, labels, metric="cosine")
    sample = np.sort(np.random.default_rng(11).choice(500, 50, replace=False))
    assert silhouette_cosine(X, labels, sample_size=50, seed=11) == pytest.approx(per_point[sample].mean(), abs=TOL)


def test_clustering_metrics_with_features_and_table():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.8, true, 4)
    X = rng.normal(size=(200, 3)) + true[:, None]
    result = clustering_metrics(true, pred, X)
    assert list(result) == list(METRIC_NAMES)
    with pytest.raises(ValueError, match="feature rows"):
        clustering_metrics(true, pred, X[:10])
    table = metrics_table({"cimc": result, "kmeans": clustering_metrics(true, true)})
    header, _, first, second = table.strip().splitlines()
    assert header.split("|")[1:3] == [" system ", " acc "]
    assert first.startswith("| cimc | ") and f"{result['acc']:.3f}" in first
    assert second.split("|")[-2].strip() == ""  # no features: no Davies-Bouldin for that row
