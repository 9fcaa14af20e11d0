"""The classical baselines behind the registry: recovery of separated blobs, estimation of K, torch Lloyd."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import cimc.cluster  # noqa: F401  (registers the methods)
from cimc.cluster.base import CLUSTERERS, config_class, make_clusterer
from cimc.cluster.baselines import prepare_input
from cimc.cluster.lloyd import lloyd_kmeans
from cimc.config import from_dict

BASELINES = ["kmeans", "minibatch-kmeans", "ahc", "spectral", "gmm", "birch"]


def blobs(n=300, k=5, dim=8, seed=0, std=1.0):
    """Blobs whose centres point in different directions (what l2-normalised embeddings look like)."""
    X, y = make_blobs(n, centers=k, n_features=dim, cluster_std=std, center_box=(-10, 10), random_state=seed)
    return X.astype(np.float32), y


def method(name, **fields):
    return make_clusterer(name, from_dict(config_class(name), fields))


def test_registry_has_every_baseline():
    assert set(BASELINES) <= set(CLUSTERERS)


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_recovers_separated_blobs(name):
    X, y = blobs()
    labels = make_clusterer(name).fit_predict(X, 5)
    assert labels.dtype == np.int64 and labels.shape == (300,)
    assert set(np.unique(labels)) == set(range(5))  # contiguous 0..K-1
    assert adjusted_rand_score(y, labels) > 0.95


def test_torch_backend_of_kmeans_recovers_blobs():
    X, y = blobs(seed=1)
    labels = method("kmeans", backend="torch", device="cpu").fit_predict(X, 5)
    assert adjusted_rand_score(y, labels) > 0.95


def test_lloyd_hand_worked_and_inertia_like_sklearn():
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    labels, inertia = lloyd_kmeans(X, 2, device="cpu", chunk_size=3)  # chunks smaller than N
    assert labels[0] == labels[1] != labels[2] == labels[3]
    assert inertia == pytest.approx(4 * 0.25)
    X, _ = blobs(n=1000, k=20, dim=6, seed=2, std=2.5)
    _, ours = lloyd_kmeans(X, 20, device="cpu", n_init=3, seed=0, chunk_size=256)
    ref = KMeans(20, n_init=3, random_state=0).fit(X).inertia_
    assert ours <= 1.05 * ref


def test_lloyd_from_given_centres_matches_sklearn_iteration_for_iteration():
    X, _ = blobs(n=600, k=8, dim=5, seed=4, std=3.0)  # overlapping: several iterations before convergence
    init = X[:8]
    for iters in (1, 3, 50):
        labels, inertia = lloyd_kmeans(X, 8, max_iter=iters, tol=0.0, device="cpu", chunk_size=128, init=init)
        ref = KMeans(8, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(X)
        # sklearn's labels_ come from the last E-step before its final update; ours from after it. Compare
        # the same thing: sklearn's final centres' assignment and inertia.
        assert adjusted_rand_score(ref.predict(X), labels) == 1.0
        assert inertia == pytest.approx(((X - ref.cluster_centers_[ref.predict(X)]) ** 2).sum(), rel=1e-4)
    with pytest.raises(ValueError, match=r"init has shape \(7, 5\), expected \(8, 5\)"):
        lloyd_kmeans(X, 8, device="cpu", init=X[:7])


def test_lloyd_keeps_every_cluster_nonempty_with_duplicates_and_subsampled_init():
    X = np.repeat(np.eye(3, dtype=np.float32), [50, 5, 1], axis=0)  # 3 distinct points
    labels, inertia = lloyd_kmeans(X, 3, device="cpu", init_sample=10, seed=3)
    assert len(np.unique(labels)) == 3 and inertia == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_spectral_eigengap_estimates_the_number_of_blobs(k):
    X, y = blobs(n=400, k=k, dim=16, seed=k)
    labels = make_clusterer("spectral").fit_predict(X, None)
    assert len(np.unique(labels)) == k
    assert adjusted_rand_score(y, labels) > 0.95 or k == 1


def test_spectral_nearest_neighbour_affinity_and_large_n_switch(caplog):
    X, y = blobs(n=300, k=4, dim=16, seed=4)
    with caplog.at_level(logging.INFO, logger="cimc.cluster.baselines"):
        labels = method("spectral", max_dense_points=100).fit_predict(X, 4)
    assert "nearest-NN" not in caplog.text and "affinity graph instead of dense cosine" in caplog.text
    assert adjusted_rand_score(y, labels) > 0.95


@pytest.mark.parametrize("k", [2, 4, 6])
def test_ahc_distance_threshold_estimates_the_number_of_blobs(k):
    X, y = blobs(n=240, k=k, dim=16, seed=10 + k, std=0.5)
    labels = method("ahc", linkage="average", metric="cosine", distance_threshold=0.3).fit_predict(X, None)
    assert adjusted_rand_score(y, labels) > 0.95


def test_ahc_above_max_exact_points_uses_knn_connectivity_and_says_so(caplog):
    X, y = blobs(n=300, k=5, seed=5)
    with caplog.at_level(logging.INFO, logger="cimc.cluster.baselines"):
        labels = method("ahc", max_exact_points=100, n_neighbors=10).fit_predict(X, 5)
    assert "connectivity graph" in caplog.text
    assert adjusted_rand_score(y, labels) > 0.95


def test_birch_without_n_clusters_keeps_subclusters():
    X, y = blobs(n=300, k=3, dim=8, seed=6, std=0.3)
    labels = method("birch", threshold=0.3).fit_predict(X, None)
    assert adjusted_rand_score(y, labels) > 0.95


@pytest.mark.parametrize("name", ["kmeans", "minibatch-kmeans", "gmm"])
def test_methods_that_cannot_estimate_say_so(name):
    X, _ = blobs(n=50)
    with pytest.raises(ValueError, match="cannot estimate"):
        make_clusterer(name).fit_predict(X, None)


def test_ahc_without_threshold_cannot_estimate():
    with pytest.raises(ValueError, match="distance_threshold"):
        make_clusterer("ahc").fit_predict(blobs(n=50)[0], None)


def test_bad_input_is_named():
    X = np.ones((10, 3), dtype=np.float32)
    X[7, 1] = np.nan
    with pytest.raises(ValueError, match="first at row 7"):
        prepare_input(X, 2, True, "kmeans")
    with pytest.raises(ValueError, match="n_clusters=11"):
        make_clusterer("kmeans").fit_predict(np.ones((10, 3)), 11)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        make_clusterer("gmm").fit_predict(np.ones(10), 2)
    with pytest.raises(ValueError, match="backend"):
        method("kmeans", backend="cuda-magic").fit_predict(np.eye(4), 2)


@pytest.mark.parametrize("name, field, value", [
    ("kmeans", "n_init", 0), ("kmeans", "max_iter", 0), ("kmeans", "chunk_size", -5),  # torch backend: obscure
    ("kmeans", "init_sample", 0), ("spectral", "pruning", 0.0), ("spectral", "pruning", 2.0),
    ("spectral", "max_clusters", 1),
])
def test_baseline_configs_reject_values_by_name(name, field, value):
    from cimc.config import ConfigError, load_config
    from cimc.cluster.base import config_class

    with pytest.raises(ConfigError, match=rf"{field} must be .*, got {value}"):
        load_config(config_class(name), None, [f"{field}={value}"])
