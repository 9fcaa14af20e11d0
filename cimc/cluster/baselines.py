"""Classical clustering baselines behind the :mod:`cimc.cluster.base` interface.

Methods (registry names): ``kmeans`` (scikit-learn, or the torch Lloyd of :mod:`cimc.cluster.lloyd`
for GPUs and large N), ``minibatch-kmeans``, ``ahc``, ``spectral``, ``gmm`` (scikit-learn, or the chunked
torch EM of :mod:`cimc.cluster.gmm`), ``birch``. Each takes
(N, D) vectors, l2-normalises them by default (the paper clusters l2-normalised i-vectors), and
returns (N,) int64 labels 0..K-1.

``n_clusters=None`` asks the method to estimate the number of clusters (diarization):

- ``ahc`` cuts the dendrogram at ``distance_threshold`` (its config must set it);
- ``spectral`` takes the largest eigengap of the normalised Laplacian of its affinity, over
  1..``max_clusters``;
- ``birch`` keeps its leaf subclusters (sizes set by ``threshold``);
- ``kmeans``, ``minibatch-kmeans`` and ``gmm`` cannot, and raise ``ValueError`` saying so.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar

import numpy as np

from cimc.cluster.base import Clusterer, register_clusterer
from cimc.config import require, require_choice
from cimc.metrics.clustering import encode_labels
from cimc.scoring import length_normalize
from cimc.vectors import nonfinite_rows

logger = logging.getLogger(__name__)


def prepare_input(X: np.ndarray, n_clusters: int | None, l2_normalize: bool, method: str) -> np.ndarray:
    """Validate (N, D) finite vectors and 1 <= n_clusters <= N; return float32 rows, l2-normalised if asked."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{method}: expected a non-empty (N, D) matrix, got shape {X.shape}")
    X = X.astype(np.float32, copy=False)
    bad = nonfinite_rows(X)
    if bad.size:
        raise ValueError(f"{method}: {bad.size} rows contain NaN/inf, first at row {int(bad[0])}")
    if n_clusters is not None and not 1 <= n_clusters <= X.shape[0]:
        raise ValueError(f"{method}: n_clusters={n_clusters} must be between 1 and the number of points {X.shape[0]}")
    return length_normalize(X) if l2_normalize else X


def physical_memory_bytes() -> int | None:
    """This machine's physical memory (None where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_in_memory(method: str, need_bytes: float, what: str, instead: str) -> None:
    """Raise ``ValueError`` before a fit that would need more than this machine's memory (else it runs for hours and
    is killed): ``what`` says what takes ``need_bytes``, ``instead`` what to do."""
    total = physical_memory_bytes()
    if total is not None and need_bytes > total:
        raise ValueError(f"{method}: {what} need about {need_bytes / 1e9:.3g} GB, more than this machine's "
                         f"{total / 1e9:.3g} GB; {instead}")


def _cannot_estimate(method: str) -> ValueError:
    return ValueError(f"{method} cannot estimate the number of clusters: give n_clusters "
                      "(or use ahc with distance_threshold, spectral, or birch)")


@dataclasses.dataclass
class KMeansConfig:
    """k-means, k-means++ initialisation.

    ``backend``: ``sklearn`` (multi-threaded Lloyd on CPU), ``torch`` (our chunked Lloyd, any device),
    or ``auto`` (torch when a GPU is visible, else sklearn).
    """

    RUN_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({"device", "chunk_size"})  # the same math, elsewhere

    backend: str = "auto"
    device: str = "auto"  # torch backend only
    n_init: int = 1  # k-means++ restarts, best inertia kept
    max_iter: int = 300
    tol: float = 1e-4  # stop when the centre shift is below tol x the mean feature variance (sklearn's rule)
    chunk_size: int = 0  # rows per distance block (torch), memory O(chunk_size * K); 0: 65,536 GPU, 4,096 CPU
    init_sample: int | None = None  # torch: run k-means++ on this many random points (None: all)
    l2_normalize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        # scikit-learn checks its own arguments; the torch backend would fail obscurely (n_init 0, max_iter 0)
        require_choice(self, "backend", ("auto", "sklearn", "torch"))
        for name in ("n_init", "max_iter"):
            require(self, name, getattr(self, name) >= 1, ">= 1")
        require(self, "tol", self.tol >= 0, ">= 0")
        require(self, "chunk_size", self.chunk_size >= 0, ">= 0 (0: the device's default)")
        require(self, "init_sample", self.init_sample is None or self.init_sample >= 1, "null (all points) or >= 1")


# N x K from which scikit-learn's k-means++ (on all points) runs over ~15 min on a 2-core CPU: worth a warning
SLOW_SKLEARN_SEEDING = 1_000_000_000


@register_clusterer("kmeans", config=KMeansConfig)
class KMeansClusterer(Clusterer):
    """k-means (Lloyd) with k-means++ initialisation, scikit-learn or torch backend."""

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: KMeansConfig = self.config
        if n_clusters is None:
            raise _cannot_estimate("kmeans")
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "kmeans")
        backend = cfg.backend
        if backend == "auto":
            from cimc.utils import resolve_device

            backend = "torch" if resolve_device(cfg.device).startswith("cuda") else "sklearn"
        if backend == "torch":
            from cimc.cluster.lloyd import lloyd_kmeans

            labels, _ = lloyd_kmeans(X, n_clusters, max_iter=cfg.max_iter, tol=cfg.tol, n_init=cfg.n_init,
                                     seed=cfg.seed, device=cfg.device, chunk_size=cfg.chunk_size,
                                     init_sample=cfg.init_sample)
            return encode_labels(labels)
        from sklearn.cluster import KMeans  # backend "sklearn" (KMeansConfig admits no other value)

        if len(X) * n_clusters >= SLOW_SKLEARN_SEEDING:
            minutes = 100 * len(X) * n_clusters / (20_000 * 5_000) / 60
            logger.warning("kmeans: scikit-learn's k-means++ seeds on all %d points, K sequential passes (20,000 "
                           "points of 400 dimensions at K 5,000: ~100 s on 2 cores); at %d x %d that is ~%.0f min "
                           "before the first iteration. backend: torch with init_sample seeds on a sample instead",
                           len(X), len(X), n_clusters, minutes)
        model = KMeans(n_clusters, n_init=cfg.n_init, max_iter=cfg.max_iter, tol=cfg.tol, random_state=cfg.seed)
        return encode_labels(model.fit_predict(X))


@dataclasses.dataclass
class MiniBatchKMeansConfig:
    """scikit-learn's MiniBatchKMeans (k-means++ on a subsample, then mini-batch updates)."""

    batch_size: int = 4096
    max_iter: int = 100  # passes over the data
    n_init: int = 3
    max_no_improvement: int = 10
    reassignment_ratio: float = 0.01
    l2_normalize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        # The ranges scikit-learn's MiniBatchKMeans accepts, checked before any vectors are read
        for name in ("batch_size", "max_iter", "n_init"):
            require(self, name, getattr(self, name) >= 1, ">= 1")
        require(self, "max_no_improvement", self.max_no_improvement >= 0, ">= 0")
        require(self, "reassignment_ratio", self.reassignment_ratio >= 0, ">= 0")


@register_clusterer("minibatch-kmeans", config=MiniBatchKMeansConfig)
class MiniBatchKMeansClusterer(Clusterer):
    """Mini-batch k-means: memory and time O(batch), for large N on CPU."""

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: MiniBatchKMeansConfig = self.config
        if n_clusters is None:
            raise _cannot_estimate("minibatch-kmeans")
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "minibatch-kmeans")
        from sklearn.cluster import MiniBatchKMeans

        model = MiniBatchKMeans(n_clusters, batch_size=cfg.batch_size, max_iter=cfg.max_iter, n_init=cfg.n_init,
                                max_no_improvement=cfg.max_no_improvement,
                                reassignment_ratio=cfg.reassignment_ratio, random_state=cfg.seed)
        return encode_labels(model.fit_predict(X))


AHC_LINKAGES = ("ward", "average", "complete", "single")
# scikit-learn's AgglomerativeClustering metrics that work on vectors without parameters of their own: not
# precomputed (our input is vectors, not distances), haversine (2-d only), nan_euclidean or wminkowski (which
# scipy's linkage does not know)
AHC_METRICS = ("euclidean", "l2", "sqeuclidean", "cosine", "l1", "manhattan", "cityblock", "minkowski", "chebyshev",
               "canberra", "braycurtis", "correlation", "seuclidean", "mahalanobis", "hamming", "matching", "jaccard",
               "dice", "rogerstanimoto", "russellrao", "sokalsneath", "yule")


@dataclasses.dataclass
class AhcConfig:
    """Agglomerative hierarchical clustering (scikit-learn).

    Exact (all pairwise distances, O(N^2) memory: 20,000 points ~ 1.6 GB) up to ``max_exact_points``;
    above that, merges are restricted to a symmetric ``n_neighbors``-NN connectivity graph, which is
    O(N k) memory but no longer the exact dendrogram (a log line says so); only ``ward`` and ``single`` linkage
    are allowed there (average and complete chain along a graph). The graph is searched exactly in
    chunks on ``device`` (:func:`cimc.cluster.knn.nearest_neighbors`; a GPU when visible: N^2 D flops, 0.5 PFLOP
    at 1.09M x 400).
    """

    RUN_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({"device"})  # the same graph, elsewhere

    linkage: str = "ward"  # ward | average | complete | single
    metric: str = "euclidean"  # ward needs euclidean; on unit vectors it orders pairs as cosine does
    distance_threshold: float | None = None  # cut height when n_clusters is None (diarization)
    max_exact_points: int = 20000
    n_neighbors: int = 15
    device: str = "auto"  # of the k-NN search above max_exact_points
    l2_normalize: bool = True

    def __post_init__(self) -> None:
        require_choice(self, "linkage", AHC_LINKAGES)
        require_choice(self, "metric", AHC_METRICS)
        require(self, "metric", self.linkage != "ward" or self.metric == "euclidean", "euclidean with linkage ward")
        require(self, "distance_threshold", self.distance_threshold is None or self.distance_threshold >= 0,
                "null (n_clusters given) or >= 0")
        require(self, "max_exact_points", self.max_exact_points >= 0, ">= 0 (0: always the k-NN graph)")
        require(self, "n_neighbors", self.n_neighbors >= 1, ">= 1")


def knn_graph(X: np.ndarray, n_neighbors: int, device: str = "auto"):
    """Symmetric (N, N) sparse 0/1 graph joining each row of X to its ``n_neighbors`` nearest others (scikit-learn's
    ``kneighbors_graph(X, k)`` or its transpose), searched exactly in chunks on ``device``, then made connected
    by :func:`join_components`."""
    import scipy.sparse as sp

    from cimc.cluster.base import show_progress
    from cimc.cluster.knn import nearest_neighbors
    from cimc.utils import resolve_device

    k = min(n_neighbors, len(X) - 1)
    device = resolve_device(device)
    _, neighbours = nearest_neighbors(X, k, device=device, progress=show_progress(len(X)), desc="ahc k-NN")
    graph = sp.csr_matrix((np.ones(neighbours.size), (np.repeat(np.arange(len(X)), k), neighbours.ravel())),
                          shape=(len(X), len(X)))
    return join_components(X, graph.maximum(graph.T), device)


def join_components(X: np.ndarray, graph, device: str = "cpu"):
    """``graph`` (N, N, symmetric sparse) plus a few edges that make it connected.

    Ward along a graph needs one component. scikit-learn would join every pair of components by their closest
    points, O(c^2) searches: at 50,000 points with 1,185 components of a 15-NN graph that took 386 of the fit's
    409 s (the merges 23 s). Here each round links every component to the component with the nearest centroid
    (its point nearest that centroid to that component's point nearest its own), so the count at least halves each
    round. The links only decide which clusters may merge; Ward's cost of a merge comes from the clusters
    themselves.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from cimc.cluster.knn import nearest_neighbors

    X = np.asarray(X, dtype=np.float32)
    added = 0
    while True:
        count, component = connected_components(graph, directed=False)
        if count == 1:
            break
        member = sp.csr_matrix((np.ones(len(X)), (component, np.arange(len(X)))), shape=(count, len(X)))
        sizes = np.asarray(member.sum(axis=1)).ravel()
        centroids = ((member @ X) / sizes[:, None]).astype(np.float32)
        _, nearest = nearest_neighbors(centroids, 1, device=device)
        target = nearest[:, 0]
        # Per component: its point nearest its own centroid (the representative) and the one nearest the target's.
        own = ((X - centroids[component]) ** 2).sum(axis=1)
        toward = ((X - centroids[target[component]]) ** 2).sum(axis=1)
        representative = _argmin_per_group(own, component, count)
        outgoing = _argmin_per_group(toward, component, count)
        rows, cols = outgoing, representative[target]
        link = sp.csr_matrix((np.ones(count), (rows, cols)), shape=graph.shape)
        graph = graph.maximum(link).maximum(link.T)
        added += count
    if added:
        logger.info("ahc: the k-NN graph's components joined by %d links", added)
    return graph.tocsr()


def _argmin_per_group(values: np.ndarray, group: np.ndarray, count: int) -> np.ndarray:
    """(count,) index of the smallest of ``values`` within each group 0..count-1."""
    order = np.lexsort((values, group))
    first = np.searchsorted(group[order], np.arange(count))
    return order[first]


# Linkages that a k-NN graph does not approximate (AhcClusterer.fit_predict says why)
GRAPH_UNSOUND_LINKAGES = frozenset({"average", "complete"})
GRAPH_METRICS = frozenset({"euclidean", "l2", "cosine"})


@register_clusterer("ahc", config=AhcConfig)
class AhcClusterer(Clusterer):
    """Agglomerative clustering to ``n_clusters``, or cut at ``distance_threshold`` when None."""

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: AhcConfig = self.config
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "ahc")
        if n_clusters is None and cfg.distance_threshold is None:
            raise ValueError("ahc: n_clusters=None needs distance_threshold in the ahc config")
        if len(X) == 1:
            return np.zeros(1, dtype=np.int64)
        from sklearn.cluster import AgglomerativeClustering

        connectivity = None
        if len(X) > cfg.max_exact_points:
            if cfg.linkage in GRAPH_UNSOUND_LINKAGES:
                # Along a graph, scikit-learn averages (or maxes) over the joined edges only, so a large cluster's
                # distance to its neighbours stays small and it swallows them. Measured (mini_synth i-vectors, a
                # 15-NN graph against exact, ACC): average 0.37 vs 0.77 (800 points), 0.22 vs 0.89 (2,000);
                # complete 0.24 vs 0.57, 0.21 vs 0.62. Ward is near exact (0.76 / 0.91 vs 0.80 / 0.87), single
                # gave the exact labels.
                raise ValueError(
                    f"ahc: {len(X)} points > max_exact_points {cfg.max_exact_points}, where merges follow a k-NN graph, "
                    f"and linkage '{cfg.linkage}' along a graph chains into a few large clusters; use linkage ward "
                    f"(or single) there, or raise max_exact_points (exact: about {len(X) ** 2 * 4 / 1e9:.3g} GB of "
                    "pairwise distances)")
            if cfg.metric not in GRAPH_METRICS:  # the graph is searched by euclidean distance on unit vectors
                raise ValueError(f"ahc: {len(X)} points > max_exact_points {cfg.max_exact_points}, where merges follow "
                                 f"a k-NN graph, which takes metric euclidean or cosine, not {cfg.metric!r}")
            logger.info("ahc: %d points > max_exact_points %d: merging only along a %d-NN connectivity graph "
                        "(approximate dendrogram)", len(X), cfg.max_exact_points, cfg.n_neighbors)
            # cosine neighbours are the euclidean neighbours of the unit vectors
            unit = cfg.metric == "cosine" and not cfg.l2_normalize
            connectivity = knn_graph(length_normalize(X) if unit else X, cfg.n_neighbors, cfg.device)
        model = AgglomerativeClustering(
            n_clusters=n_clusters, linkage=cfg.linkage, metric=cfg.metric, connectivity=connectivity,
            distance_threshold=cfg.distance_threshold if n_clusters is None else None)
        return encode_labels(model.fit_predict(X))


@dataclasses.dataclass
class SpectralConfig:
    """Spectral clustering on an affinity matrix; the eigengap estimates K when n_clusters is None.

    ``affinity``: ``cosine`` (dense max(0, cos) similarities, each row keeping only its top ``pruning``
    fraction, then symmetrised, as in Park et al.'s auto-tuning spectral clustering for diarization;
    switches to ``nearest_neighbors`` above ``max_dense_points``, with a log line) or
    ``nearest_neighbors`` (symmetric k-NN graph). Unpruned cosine similarities give weak eigengaps
    (measured on blobs: K = 3 estimated as 1, K = 6 as 5), hence the pruning.
    """

    affinity: str = "cosine"
    pruning: float = 0.1  # cosine: fraction of each row's similarities kept (1.0: dense)
    n_neighbors: int = 10
    max_dense_points: int = 10000
    max_clusters: int = 20  # eigengap searched over K = 1..max_clusters
    assign_labels: str = "kmeans"  # kmeans | discretize | cluster_qr
    l2_normalize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        require_choice(self, "affinity", ("cosine", "nearest_neighbors"))
        require_choice(self, "assign_labels", ("kmeans", "discretize", "cluster_qr"))  # scikit-learn's choices
        require(self, "pruning", 0 < self.pruning <= 1, "a fraction in (0, 1]")
        for name in ("n_neighbors", "max_dense_points"):
            require(self, name, getattr(self, name) >= 1, ">= 1")
        require(self, "max_clusters", self.max_clusters >= 2, ">= 2 (the eigengap compares K = 1 .. max_clusters)")


@register_clusterer("spectral", config=SpectralConfig)
class SpectralClusterer(Clusterer):
    """Normalised spectral clustering (scikit-learn) with eigengap estimation of K."""

    def affinity(self, X: np.ndarray):
        """(N, N) affinity: dense ndarray (cosine) or sparse matrix (nearest neighbours)."""
        cfg: SpectralConfig = self.config
        kind = cfg.affinity
        if kind == "cosine" and len(X) > cfg.max_dense_points:
            logger.info("spectral: %d points > max_dense_points %d: using a %d-NN affinity graph instead of "
                        "dense cosine", len(X), cfg.max_dense_points, cfg.n_neighbors)
            kind = "nearest_neighbors"
        if kind == "cosine":
            Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
            sim = np.maximum(Xn @ Xn.T, 0.0).astype(np.float64)
            keep = max(2, int(np.ceil(cfg.pruning * len(X))))
            if keep < len(X):
                cut = np.partition(sim, len(X) - keep, axis=1)[:, len(X) - keep]
                sim = np.where(sim >= cut[:, None], sim, 0.0)
            return 0.5 * (sim + sim.T)
        from sklearn.neighbors import kneighbors_graph  # nearest_neighbors (SpectralConfig admits no other value)

        graph = kneighbors_graph(X, min(cfg.n_neighbors, len(X) - 1), include_self=True)
        return 0.5 * (graph + graph.T)

    def estimate_num_clusters(self, affinity) -> int:
        """K = argmax_k (lambda_{k+1} - lambda_k) over k <= max_clusters, lambda the ascending eigenvalues
        of the normalised Laplacian I - D^-1/2 A D^-1/2."""
        import scipy.sparse as sp

        n = affinity.shape[0]
        degree = np.asarray(affinity.sum(axis=1)).ravel()
        inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
        top = min(self.config.max_clusters + 1, n)
        if sp.issparse(affinity):
            from scipy.sparse.csgraph import connected_components
            from scipy.sparse.linalg import eigsh

            normalised = sp.diags(inv_sqrt) @ affinity @ sp.diags(inv_sqrt)
            if top < n - 1:
                start = np.random.default_rng(0).uniform(0.5, 1.5, n)  # ARPACK's own start is random: seeded
                mu = eigsh(normalised, k=top, which="LA", return_eigenvectors=False, v0=start,
                           ncv=min(n, max(2 * top + 1, 40)))
                # Lanczos may miss copies of a repeated eigenvalue, and 1 repeats once per connected component
                # (well-separated speakers: a k-NN graph of several components): K came out one short, at random.
                # The number of components is known exactly; the eigenvalues below 1 are ARPACK's.
                components = connected_components(affinity, directed=False)[0]
                mu = np.concatenate([np.ones(min(components, top)), np.sort(mu[mu < 1 - 1e-9])[::-1]])[:top]
            else:
                mu = np.linalg.eigvalsh(normalised.toarray())
        else:
            mu = np.linalg.eigvalsh(inv_sqrt[:, None] * affinity * inv_sqrt[None, :])
        laplacian = np.sort(1.0 - mu)[:top]
        if laplacian.size < 2:
            return 1
        return int(np.argmax(np.diff(laplacian))) + 1

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: SpectralConfig = self.config
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "spectral")
        if len(X) < 3:  # no spectrum to speak of
            return np.arange(len(X), dtype=np.int64) if n_clusters is None else encode_labels(np.arange(len(X)) % n_clusters)
        # Before the affinity (a k-NN search over all points): scikit-learn's ARPACK keeps 2K + 1 Lanczos vectors
        # and the K eigenvectors, float64, N each (K at most max_clusters when estimated).
        most = n_clusters or cfg.max_clusters
        check_fits_in_memory("spectral", len(X) * (3 * most + 1) * 8.0,
                             f"the spectral embedding of {len(X):,} points in {most:,} eigenvectors (ARPACK)",
                             "use kmeans, gmm or cimc at this size, or fewer points or clusters")
        affinity = self.affinity(X)
        if n_clusters is None:
            n_clusters = self.estimate_num_clusters(affinity)
            logger.debug("spectral: eigengap estimate K = %d", n_clusters)
        if n_clusters == 1:
            return np.zeros(len(X), dtype=np.int64)
        from sklearn.cluster import SpectralClustering

        model = SpectralClustering(n_clusters, affinity="precomputed", assign_labels=cfg.assign_labels,
                                   random_state=cfg.seed)
        return encode_labels(model.fit_predict(affinity))


@dataclasses.dataclass
class GmmConfig:
    """Gaussian mixture by EM, k-means initialisation; each point goes to its most likely component.

    ``backend``: ``sklearn`` (GaussianMixture, any ``covariance_type``), ``torch`` (diagonal only, EM in row chunks
    on any device: :mod:`cimc.cluster.gmm`), or ``auto``: torch when a GPU is visible or when scikit-learn's
    (N, K) float64 arrays would pass ``AUTO_TORCH_BYTES`` each (1.09M x 5,000: 44 GB), else sklearn.
    """

    RUN_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({"device", "chunk_size"})  # the same math, elsewhere
    AUTO_TORCH_BYTES: ClassVar[int] = 2 << 30

    covariance_type: str = "diag"  # full | tied | diag | spherical (torch: diag)
    max_iter: int = 100
    tol: float = 1e-3  # stop when the mean log-likelihood per point changes less (scikit-learn's default)
    n_init: int = 1  # k-means-initialised runs, the highest likelihood kept
    reg_covar: float = 1e-6
    backend: str = "auto"
    device: str = "auto"  # torch backend only
    chunk_size: int = 0  # torch: rows per E-step block, memory O(chunk_size * K); 0: 65,536 GPU, 4,096 CPU
    init_sample: int | None = None  # torch: k-means++ of the k-means start on this many random points (None: all)
    l2_normalize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        require_choice(self, "backend", ("auto", "sklearn", "torch"))
        require(self, "init_sample", self.init_sample is None or self.init_sample >= 1, "null (all points) or >= 1")
        require_choice(self, "covariance_type", ("full", "tied", "diag", "spherical"))
        require(self, "covariance_type", self.backend != "torch" or self.covariance_type == "diag",
                "diag with backend torch")
        for name in ("max_iter", "n_init"):
            require(self, name, getattr(self, name) >= 1, ">= 1")
        require(self, "tol", self.tol >= 0, ">= 0")
        require(self, "reg_covar", self.reg_covar > 0, "> 0")
        require(self, "chunk_size", self.chunk_size >= 0, ">= 0 (0: the device's default)")


@register_clusterer("gmm", config=GmmConfig)
class GmmClusterer(Clusterer):
    """Gaussian-mixture clustering, scikit-learn or torch backend."""

    def backend(self, num_points: int, n_clusters: int) -> str:
        """The backend ``auto`` resolves to for N points and K clusters (see :class:`GmmConfig`)."""
        cfg: GmmConfig = self.config
        if cfg.backend != "auto":
            return cfg.backend
        if cfg.covariance_type != "diag":  # the torch EM is diagonal only
            return "sklearn"
        from cimc.utils import resolve_device

        if resolve_device(cfg.device).startswith("cuda"):
            return "torch"
        if num_points * n_clusters * 8 > cfg.AUTO_TORCH_BYTES:
            logger.info("gmm: scikit-learn would hold (N, K) = (%d, %d) float64 arrays of %.1f GB each: "
                        "chunked torch EM instead", num_points, n_clusters, num_points * n_clusters * 8 / 1e9)
            return "torch"
        return "sklearn"

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: GmmConfig = self.config
        if n_clusters is None:
            raise _cannot_estimate("gmm")
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "gmm")
        if len(X) == 1:  # scikit-learn refuses one sample; as ahc, one point is one cluster
            return np.zeros(1, dtype=np.int64)
        if self.backend(len(X), n_clusters) == "torch":
            from cimc.cluster.gmm import diag_gmm_em

            runs = [diag_gmm_em(X, n_clusters, max_iter=cfg.max_iter, tol=cfg.tol, reg_covar=cfg.reg_covar,
                                seed=cfg.seed + run, device=cfg.device, chunk_size=cfg.chunk_size,
                                init_sample=cfg.init_sample)
                    for run in range(cfg.n_init)]
            labels, _ = max(runs, key=lambda run: run[1]["mean_log_likelihood"])
            return encode_labels(labels)
        # Its E-step holds the (N, K) log-probabilities, their normaliser's temporaries and the responsibilities.
        check_fits_in_memory("gmm", 3 * len(X) * n_clusters * 8.0,
                             f"scikit-learn's (N, K) = ({len(X):,}, {n_clusters:,}) float64 arrays",
                             "use backend torch (diagonal covariances, EM in row chunks)")
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(n_clusters, covariance_type=cfg.covariance_type, max_iter=cfg.max_iter, tol=cfg.tol,
                                n_init=cfg.n_init, reg_covar=cfg.reg_covar, random_state=cfg.seed)
        return encode_labels(model.fit_predict(X))


@dataclasses.dataclass
class BirchConfig:
    """BIRCH: a CF-tree of subclusters of radius <= threshold, then AHC of the subclusters to n_clusters."""

    RUN_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({"device"})  # the same graph, elsewhere

    threshold: float = 0.5  # subcluster radius (unit vectors: distances lie in [0, 2])
    branching_factor: int = 50
    l2_normalize: bool = True
    # The global step (Ward of the subcluster centroids): exact up to this many centroids, above along their
    # n_neighbors-NN graph (AhcConfig's max_exact_points and n_neighbors), searched on device
    max_exact_points: int = 20000
    n_neighbors: int = 15
    device: str = "auto"

    def __post_init__(self) -> None:
        # The ranges scikit-learn's Birch accepts, checked before any vectors are read
        require(self, "threshold", self.threshold > 0, "> 0")
        require(self, "branching_factor", self.branching_factor > 1, "> 1")
        require(self, "max_exact_points", self.max_exact_points >= 0, ">= 0 (0: always the k-NN graph)")
        require(self, "n_neighbors", self.n_neighbors >= 1, ">= 1")


@register_clusterer("birch", config=BirchConfig)
class BirchClusterer(Clusterer):
    """BIRCH (scikit-learn's CF-tree); with n_clusters None the leaf subclusters are the clusters.

    The global step, Ward AHC of the subcluster centroids to n_clusters, is scikit-learn's own (the same labels)
    up to ``max_exact_points`` centroids and follows :class:`AhcClusterer`'s k-NN graph above it: i-vectors at
    threshold 0.5 give ~0.8 subclusters a point, ~900,000 at VoxCeleb2 size, whose exact AHC (scikit-learn's)
    would need terabytes.
    """

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: BirchConfig = self.config
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "birch")
        if len(X) == 1:  # scikit-learn refuses one sample; as ahc, one point is one cluster
            return np.zeros(1, dtype=np.int64)
        from sklearn.cluster import Birch

        tree = Birch(threshold=cfg.threshold, branching_factor=cfg.branching_factor, n_clusters=None).fit(X)
        subcluster = tree.labels_  # (N,) the nearest subcluster of each point
        centroids = tree.subcluster_centers_  # (M, D)
        logger.info("birch: %d points in %d subclusters of radius <= %g", len(X), len(centroids), cfg.threshold)
        if n_clusters is None or len(centroids) <= n_clusters:
            if n_clusters is not None and len(centroids) < n_clusters:
                logger.warning("birch: only %d subclusters for %d clusters; lower threshold for more",
                               len(centroids), n_clusters)
            return encode_labels(subcluster)
        # as scikit-learn's global step: Ward on the centroids as they are (not re-normalised)
        merged = AhcClusterer(AhcConfig(max_exact_points=cfg.max_exact_points, n_neighbors=cfg.n_neighbors,
                                        device=cfg.device, l2_normalize=False)).fit_predict(centroids, n_clusters)
        return encode_labels(merged[subcluster])
