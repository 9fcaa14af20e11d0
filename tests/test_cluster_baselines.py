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


def test_progress_bars_of_the_large_n_loops_change_no_result(capsys, monkeypatch):
    """Lloyd k-means and the torch GMM show tqdm bars above the size where a pass takes minutes on a CPU
    (the 1.09M k-means ran 48 min with no sign of life before), and the bars change nothing."""
    from cimc.cluster import base
    from cimc.cluster.gmm import diag_gmm_em

    X, _ = blobs(n=600, k=4, dim=5, seed=3)
    quiet = lloyd_kmeans(X, 4, device="cpu", chunk_size=128, return_n_iter=True)
    gmm_quiet = diag_gmm_em(X, 4, max_iter=3, tol=0.0, device="cpu", chunk_size=128)
    assert capsys.readouterr().err == ""  # 600 points: below the threshold
    monkeypatch.setattr(base, "PROGRESS_MIN_POINTS", 599)
    shown = lloyd_kmeans(X, 4, device="cpu", chunk_size=128, return_n_iter=True)
    gmm_shown = diag_gmm_em(X, 4, max_iter=3, tol=0.0, device="cpu", chunk_size=128)
    err = capsys.readouterr().err
    assert "k-means++" in err and "k-means start 1/1" in err and "centre shift" in err and "gmm EM" in err
    np.testing.assert_array_equal(shown[0], quiet[0])
    assert shown[1:] == quiet[1:]
    np.testing.assert_array_equal(gmm_shown[0], gmm_quiet[0])
    assert gmm_shown[1] == gmm_quiet[1]


def test_lloyd_hand_worked_and_inertia_like_sklearn():
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    labels, inertia = lloyd_kmeans(X, 2, device="cpu", chunk_size=3)  # chunks smaller than N
    assert labels[0] == labels[1] != labels[2] == labels[3]
    assert inertia == pytest.approx(4 * 0.25)
    X, _ = blobs(n=1000, k=20, dim=6, seed=2, std=2.5)
    _, ours = lloyd_kmeans(X, 20, device="cpu", n_init=3, seed=0, chunk_size=256)
    ref = KMeans(20, n_init=3, random_state=0).fit(X).inertia_
    assert ours <= 1.05 * ref


def test_lloyd_keeps_the_start_of_lowest_inertia():
    """n_init starts: the k-means++ seedings drawn one after another from the seeded generator, each run to
    convergence from its own centres; the result is the lowest of their inertias (here the 4th of 5, not the last)."""
    import torch

    from cimc.cluster.lloyd import kmeans_plus_plus

    X, _ = blobs(n=1000, k=20, dim=6, seed=2, std=2.5)
    X = X.astype(np.float32)
    labels, ours = lloyd_kmeans(X, 20, device="cpu", n_init=5, seed=0, chunk_size=256)
    generator = torch.Generator().manual_seed(0)
    starts = [kmeans_plus_plus(torch.as_tensor(X), 20, generator, 256).numpy() for _ in range(5)]
    each = [lloyd_kmeans(X, 20, device="cpu", chunk_size=256, init=start)[1] for start in starts]
    assert int(np.argmin(each)) not in (0, 4) and len(set(each)) == 5  # the best is neither the first nor the last
    assert ours == pytest.approx(min(each), rel=1e-6)
    centres = np.stack([X[labels == k].mean(0) for k in range(20)])  # the labels are that run's: same inertia
    assert ((X - centres[labels]) ** 2).sum() == pytest.approx(ours, rel=1e-4)


def test_lloyd_from_given_centres_matches_sklearn_iteration_for_iteration():
    X, _ = blobs(n=600, k=8, dim=5, seed=4, std=3.0)  # overlapping: several iterations before convergence
    init = X[:8]
    for iters in (1, 3, 50):
        labels, inertia, n_iter = lloyd_kmeans(X, 8, max_iter=iters, tol=0.0, device="cpu", chunk_size=128,
                                               init=init, return_n_iter=True)
        ref = KMeans(8, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(X)
        assert n_iter == ref.n_iter_  # 50: both stop at exact convergence, before max_iter
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


def test_torch_gmm_matches_sklearn_em_from_the_same_start():
    """Chunked torch EM (chunks smaller than N) against scikit-learn's GaussianMixture started from the same
    parameters (the M-step of the same k-means labels): same iterations, labels and parameters to float32."""
    from sklearn.mixture import GaussianMixture

    from cimc.cluster.gmm import diag_gmm_em

    X, _ = blobs(n=800, k=6, dim=5, seed=7, std=3.5)  # overlapping: EM moves for several iterations
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    init = KMeans(6, n_init=1, random_state=0).fit_predict(X)
    nk = np.bincount(init, minlength=6) + 10 * np.finfo(np.float64).eps
    X64 = X.astype(np.float64)
    means = np.stack([X64[init == c].sum(0) for c in range(6)]) / nk[:, None]
    variances = np.stack([(X64[init == c] ** 2).sum(0) for c in range(6)]) / nk[:, None] - means ** 2 + 1e-4
    for iters, tol in ((1, 0.0), (4, 0.0), (100, 1e-3)):
        labels, info = diag_gmm_em(X, 6, max_iter=iters, tol=tol, reg_covar=1e-4, device="cpu", chunk_size=97,
                                   init_labels=init)
        ref = GaussianMixture(6, covariance_type="diag", max_iter=iters, tol=tol, reg_covar=1e-4,
                              weights_init=nk / len(X), means_init=means, precisions_init=1 / variances).fit(X64)
        assert info["iterations"] == ref.n_iter_ and info["converged"] == ref.converged_
        np.testing.assert_array_equal(labels, ref.predict(X64))
        assert info["mean_log_likelihood"] == pytest.approx(ref.lower_bound_, rel=1e-5)


def test_gmm_backends_agree_and_auto_picks_torch_for_large_n_times_k(caplog, monkeypatch):
    X, y = blobs(seed=8)
    torch_labels = method("gmm", backend="torch", device="cpu", chunk_size=64).fit_predict(X, 5)
    assert adjusted_rand_score(y, torch_labels) > 0.95
    assert adjusted_rand_score(make_clusterer("gmm").fit_predict(X, 5), torch_labels) == 1.0
    gmm = method("gmm", device="cpu")
    assert gmm.backend(300, 5) == "sklearn"
    with caplog.at_level(logging.INFO, logger="cimc.cluster.baselines"):
        assert gmm.backend(1_092_009, 5000) == "torch"
    assert "(1092009, 5000) float64 arrays of 43.7 GB each" in caplog.text
    assert method("gmm", device="cpu", covariance_type="full").backend(1_092_009, 5000) == "sklearn"
    monkeypatch.setattr("cimc.utils.resolve_device", lambda device="auto", cpu_fallback=False: "cuda")
    assert method("gmm").backend(300, 5) == "torch"  # a GPU visible
    assert method("gmm", covariance_type="full").backend(300, 5) == "sklearn"  # ... but the torch EM is diagonal
    with pytest.raises(ValueError, match="covariance_type"):
        method("gmm", backend="torch", covariance_type="full")


def test_torch_gmm_keeps_the_start_of_highest_likelihood():
    """n_init EM runs from k-means starts seeded seed, seed + 1, ...: the labels are those of the run with the
    highest mean log-likelihood (here the 3rd of 5), as scikit-learn keeps its best init."""
    from cimc.cluster.gmm import diag_gmm_em

    X, _ = blobs(n=600, k=8, dim=5, seed=2, std=3.0)
    ours = method("gmm", backend="torch", device="cpu", chunk_size=64, n_init=5).fit_predict(X, 8)
    runs = [diag_gmm_em(prepare_input(X, 8, True, "gmm"), 8, seed=s, device="cpu", chunk_size=64) for s in range(5)]
    likelihoods = [info["mean_log_likelihood"] for _, info in runs]
    best, worst = int(np.argmax(likelihoods)), int(np.argmin(likelihoods))
    assert best not in (0, 4) and len(set(np.round(likelihoods, 6))) >= 4
    assert adjusted_rand_score(runs[best][0], ours) == 1.0
    assert adjusted_rand_score(runs[worst][0], ours) < 1.0


def test_fits_that_cannot_fit_in_memory_are_refused_before_they_start(monkeypatch):
    """Spectral's K eigenvectors and scikit-learn GMM's (N, K) arrays at VoxCeleb2 size: a clear error, not a
    process killed hours later. The need is checked against the machine's memory (here made 100 kB)."""
    import cimc.cluster.baselines as baselines

    monkeypatch.setattr(baselines, "physical_memory_bytes", lambda: 10**5)
    X, y = blobs(n=3_000, k=5, dim=4, seed=9)
    with pytest.raises(ValueError, match=r"spectral: the spectral embedding of 3,000 points in 5 eigenvectors "
                                         r"\(ARPACK\) need about 0.000384 GB, more than this machine's 0.0001 GB; "
                                         r"use kmeans"):
        make_clusterer("spectral").fit_predict(X, 5)  # 3,000 x (3 x 5 + 1) x 8 bytes
    with pytest.raises(ValueError, match=r"gmm: scikit-learn's \(N, K\) = \(3,000, 5\) float64 arrays need about "
                                         r"0.00036 GB, .* use backend torch"):
        method("gmm", backend="sklearn").fit_predict(X, 5)
    labels = method("gmm", backend="torch", device="cpu").fit_predict(X, 5)  # chunked: fits
    assert adjusted_rand_score(y, labels) > 0.95


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_spectral_eigengap_estimates_the_number_of_blobs(k):
    X, y = blobs(n=400, k=k, dim=16, seed=k)
    labels = make_clusterer("spectral").fit_predict(X, None)
    assert len(np.unique(labels)) == k
    assert adjusted_rand_score(y, labels) > 0.95 or k == 1


@pytest.mark.parametrize("k, seed", [(2, 22), (4, 24), (6, 6)])
def test_spectral_eigengap_on_a_sparse_affinity_matches_dense_eigenvalues(k, seed):
    """The sparse branch (nearest-neighbour affinity, or above max_dense_points with K unknown) takes the top
    eigenvalues by ARPACK; the eigengap of the same Laplacian's dense spectrum (numpy) gives the same K, the
    number of blobs, every time. The k-NN graph of separated blobs has one component each, so the eigenvalue 0
    repeats k times; ARPACK from a random start missed a copy (k = 6 here: K 5 in about 2 calls of 5)."""
    from sklearn.neighbors import kneighbors_graph

    X, _ = blobs(n=300, k=k, dim=16, seed=seed)
    graph = kneighbors_graph(X, 10, include_self=False)
    affinity = graph.maximum(graph.T).tocsr()
    degree = np.asarray(affinity.sum(axis=1)).ravel()
    dense = np.eye(len(X)) - affinity.toarray() / np.sqrt(np.outer(degree, degree))
    spectrum = np.linalg.eigvalsh(dense)[:11]
    want = int(np.argmax(np.diff(spectrum))) + 1
    spectral = method("spectral", max_clusters=10)
    assert want == k
    assert [spectral.estimate_num_clusters(affinity) for _ in range(5)] == [k] * 5


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


@pytest.mark.parametrize("linkage", ["average", "complete"])
def test_ahc_refuses_a_linkage_that_chains_along_the_knn_graph(linkage):
    """Along a k-NN graph scikit-learn's average / complete linkage merges blobs that the exact dendrogram keeps
    apart (here ARI 1.0 exact, ~0 along the graph), so above max_exact_points ahc stops with that advice."""
    from sklearn.cluster import AgglomerativeClustering

    from cimc.cluster.baselines import knn_graph

    X, y = blobs(n=300, k=5, seed=1, std=3.0)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    exact = AgglomerativeClustering(5, linkage=linkage).fit_predict(X)
    along_graph = AgglomerativeClustering(5, linkage=linkage, connectivity=knn_graph(X, 10, "cpu")).fit_predict(X)
    assert adjusted_rand_score(y, exact) > 0.95 and adjusted_rand_score(y, along_graph) < 0.5
    with pytest.raises(ValueError, match=f"300 points > max_exact_points 100.*linkage '{linkage}'.*ward"):
        method("ahc", linkage=linkage, max_exact_points=100, n_neighbors=10).fit_predict(X, 5)
    assert adjusted_rand_score(y, method("ahc", linkage=linkage).fit_predict(X, 5)) > 0.95  # exact: allowed
    with pytest.raises(ValueError, match="k-NN graph, which takes metric euclidean or cosine, not 'manhattan'"):
        method("ahc", linkage="single", metric="manhattan", max_exact_points=100).fit_predict(X, 5)
    assert adjusted_rand_score(y, method("ahc", linkage="ward", max_exact_points=100, n_neighbors=10)
                               .fit_predict(X, 5)) > 0.95


def test_knn_graph_is_sklearns_symmetrised():
    from sklearn.neighbors import kneighbors_graph

    from cimc.cluster.baselines import knn_graph

    X, _ = blobs(n=400, k=6, dim=5, seed=11, std=4.0)  # overlapping: one component, nothing to join
    want = kneighbors_graph(X, 7, include_self=False)
    got = knn_graph(X, 7, device="cpu")
    assert (got != want.maximum(want.T)).nnz == 0 and got.nnz > 400 * 7  # asymmetric pairs added


def test_ahc_cosine_graph_links_cosine_neighbours_when_rows_are_not_normalised(monkeypatch):
    """With metric cosine and l2_normalize false, the graph above max_exact_points joins each point to its cosine
    nearest neighbours (scikit-learn's kneighbors_graph with metric cosine), not to its euclidean ones."""
    from sklearn.neighbors import kneighbors_graph

    import cimc.cluster.baselines as baselines

    X, _ = blobs(n=300, k=4, dim=5, seed=13, std=4.0)  # overlapping: one component, no links added
    X *= np.random.default_rng(0).uniform(0.1, 10.0, size=(len(X), 1))  # norms that mislead a euclidean search
    searched = []
    original = baselines.knn_graph
    monkeypatch.setattr(baselines, "knn_graph",
                        lambda *args, **kw: searched.append(original(*args, **kw)) or searched[-1])
    method("ahc", linkage="single", metric="cosine", l2_normalize=False, max_exact_points=100,
           n_neighbors=7).fit_predict(X, 4)
    want = kneighbors_graph(X, 7, metric="cosine", include_self=False)
    assert len(searched) == 1 and (searched[0] != want.maximum(want.T)).nnz == 0


def test_knn_graph_components_are_joined_by_a_few_links(recwarn):
    """Separated blobs give a k-NN graph of several components; a few links join them (no scikit-learn warning,
    no O(c^2) completion), the k-NN edges all kept, and Ward along the graph still finds the blobs."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import kneighbors_graph

    from cimc.cluster.baselines import knn_graph

    X, y = blobs(n=600, k=12, dim=16, seed=12, std=0.3)
    plain = kneighbors_graph(X, 5, include_self=False)
    plain = plain.maximum(plain.T)
    assert connected_components(plain, directed=False)[0] >= 12
    joined = knn_graph(X, 5, device="cpu")
    assert connected_components(joined, directed=False)[0] == 1
    assert (plain - plain.multiply(joined)).nnz == 0  # every k-NN edge kept
    assert 0 < (joined.nnz - plain.nnz) // 2 <= 2 * 12  # each round at most one link a component, rounds halve
    labels = method("ahc", max_exact_points=100, n_neighbors=5).fit_predict(X, 12)
    assert adjusted_rand_score(y, labels) == 1.0
    assert not [w for w in recwarn if "connected components" in str(w.message)]


def test_birch_is_scikit_learns_up_to_max_exact_points_and_scales_past_it(caplog):
    """Below max_exact_points centroids the labels are scikit-learn's Birch(n_clusters=K) to the point; above,
    the global step merges along the centroids' k-NN graph (and says so) and still finds the blobs."""
    from sklearn.cluster import Birch

    X, y = blobs(n=400, k=6, dim=10, seed=3, std=1.5)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    want = Birch(threshold=0.1, n_clusters=6).fit_predict(X)
    ours = method("birch", threshold=0.1).fit_predict(X, 6)
    assert 6 < len(Birch(threshold=0.1, n_clusters=None).fit(X).subcluster_centers_) < 400  # a real global step
    assert adjusted_rand_score(want, ours) == 1.0
    with caplog.at_level(logging.INFO, logger="cimc.cluster.baselines"):
        graph = method("birch", threshold=0.1, max_exact_points=10, n_neighbors=5).fit_predict(X, 6)
    assert "connectivity graph" in caplog.text
    assert adjusted_rand_score(y, graph) > 0.9


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
    ("minibatch-kmeans", "batch_size", 0), ("minibatch-kmeans", "max_iter", 0), ("minibatch-kmeans", "n_init", 0),
    ("minibatch-kmeans", "max_no_improvement", -1), ("minibatch-kmeans", "reassignment_ratio", -0.5),
    ("ahc", "n_neighbors", 0), ("ahc", "max_exact_points", -1), ("ahc", "distance_threshold", -1.0),
    ("birch", "threshold", -1.0), ("birch", "threshold", 0.0), ("birch", "branching_factor", 1),
    ("spectral", "n_neighbors", 0),
])
def test_baseline_configs_reject_values_by_name(name, field, value):
    from cimc.config import ConfigError, load_config
    from cimc.cluster.base import config_class

    with pytest.raises(ConfigError, match=rf"{field} must be .*, got {value}"):
        load_config(config_class(name), None, [f"{field}={value}"])


@pytest.mark.parametrize("name, override, message", [
    ("ahc", "linkage=foo", r"linkage 'foo': use one of ward, average, complete, single"),
    ("ahc", "metric=foo", r"metric 'foo': use one of .*euclidean"),
    ("ahc", "metric=precomputed", r"metric 'precomputed': use one of"),  # our input is vectors, not distances
    ("ahc", "metric=cosine", r"metric must be euclidean with linkage ward, got 'cosine'"),
    ("spectral", "assign_labels=foo", r"assign_labels 'foo': use one of kmeans, discretize, cluster_qr"),
    ("spectral", "affinity=rbf", r"affinity 'rbf': use one of cosine, nearest_neighbors"),
])
def test_baseline_configs_reject_choices_by_name(name, override, message):
    from cimc.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=rf"^{config_class(name).__name__}: {message}"):
        load_config(config_class(name), None, [override])


@pytest.mark.parametrize("name, overrides", [
    ("ahc", ["linkage=average", "metric=cosine"]), ("ahc", ["linkage=single", "metric=manhattan"]),
    ("ahc", ["max_exact_points=0", "distance_threshold=0"]), ("birch", ["threshold=0.01", "branching_factor=2"]),
    ("minibatch-kmeans", ["batch_size=1", "max_no_improvement=0", "reassignment_ratio=0"]),
    ("spectral", ["assign_labels=discretize"]), ("spectral", ["assign_labels=cluster_qr"]),
])
@pytest.mark.filterwarnings("ignore:Graph is not fully connected")  # pruned cosine affinity of 60 points
def test_baseline_configs_keep_what_scikit_learn_accepts(name, overrides):
    from cimc.config import load_config

    X, y = blobs(n=60, k=3, dim=8, seed=4, std=0.3)
    labels = make_clusterer(name, load_config(config_class(name), None, overrides)).fit_predict(X, 3)
    assert adjusted_rand_score(y, labels) > 0.9


@pytest.mark.parametrize("name", BASELINES)
def test_one_point_is_one_cluster(name):
    X = np.array([[0.3, -1.0, 2.0]], dtype=np.float32)
    labels = make_clusterer(name).fit_predict(X, 1)
    assert labels.dtype == np.int64 and labels.tolist() == [0]
    if name in ("ahc", "birch", "spectral"):  # the methods that can estimate K
        config = {"distance_threshold": 0.5} if name == "ahc" else {}
        assert method(name, **config).fit_predict(X, None).tolist() == [0]


def test_kmeans_warns_before_scikit_learns_seeding_on_a_large_set(caplog, monkeypatch):
    """Above N x K = SLOW_SKLEARN_SEEDING scikit-learn's k-means++ runs for long with no output: say so, and say
    what seeds on a sample; the torch backend (seeding on init_sample) is not warned about."""
    from cimc.cluster import baselines

    X, y = blobs(n=300, k=3, dim=4, seed=5)
    monkeypatch.setattr(baselines, "SLOW_SKLEARN_SEEDING", 900)
    with caplog.at_level("WARNING", logger="cimc.cluster.baselines"):
        labels = method("kmeans", backend="sklearn").fit_predict(X, 3)
    assert "k-means++ seeds on all 300 points" in caplog.text and "backend: torch" in caplog.text
    assert adjusted_rand_score(y, labels) > 0.95  # a warning, not a change
    caplog.clear()
    with caplog.at_level("WARNING", logger="cimc.cluster.baselines"):
        method("kmeans", backend="sklearn").fit_predict(X[:299], 3)  # 897 < 900
        method("kmeans", backend="torch", device="cpu").fit_predict(X, 3)
    assert "k-means++" not in caplog.text
