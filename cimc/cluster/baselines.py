"""Classical clustering baselines behind the :mod:`cimc.cluster.base` interface.

Methods (registry names): ``kmeans`` (scikit-learn, or the torch Lloyd of :mod:`cimc.cluster.lloyd`
for GPUs and large N), ``minibatch-kmeans``, ``ahc``, ``spectral``, ``gmm``, ``birch``. Each takes
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
    if l2_normalize:
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X


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


@dataclasses.dataclass
class AhcConfig:
    """Agglomerative hierarchical clustering (scikit-learn).

    Exact (all pairwise distances, O(N^2) memory: 20,000 points ~ 1.6 GB) up to ``max_exact_points``;
    above that, merges are restricted to a symmetric ``n_neighbors``-NN connectivity graph, which is
    O(N k) memory but no longer the exact dendrogram (a log line says so).
    """

    linkage: str = "ward"  # ward | average | complete | single
    metric: str = "euclidean"  # ward needs euclidean; on unit vectors it orders pairs as cosine does
    distance_threshold: float | None = None  # cut height when n_clusters is None (diarization)
    max_exact_points: int = 20000
    n_neighbors: int = 15
    l2_normalize: bool = True


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
            from sklearn.neighbors import kneighbors_graph

            logger.info("ahc: %d points > max_exact_points %d: merging only along a %d-NN connectivity graph "
                        "(approximate dendrogram)", len(X), cfg.max_exact_points, cfg.n_neighbors)
            connectivity = kneighbors_graph(X, cfg.n_neighbors, include_self=False)
            connectivity = connectivity.maximum(connectivity.T)
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
            from scipy.sparse.linalg import eigsh

            normalised = sp.diags(inv_sqrt) @ affinity @ sp.diags(inv_sqrt)
            if top < n - 1:
                mu = eigsh(normalised, k=top, which="LA", return_eigenvectors=False)
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
    """Gaussian mixture (scikit-learn EM), k-means initialisation; each point goes to its most likely component."""

    covariance_type: str = "diag"  # full | tied | diag | spherical
    max_iter: int = 100
    n_init: int = 1
    reg_covar: float = 1e-6
    l2_normalize: bool = True
    seed: int = 0


@register_clusterer("gmm", config=GmmConfig)
class GmmClusterer(Clusterer):
    """Gaussian-mixture clustering."""

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: GmmConfig = self.config
        if n_clusters is None:
            raise _cannot_estimate("gmm")
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "gmm")
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(n_clusters, covariance_type=cfg.covariance_type, max_iter=cfg.max_iter,
                                n_init=cfg.n_init, reg_covar=cfg.reg_covar, random_state=cfg.seed)
        return encode_labels(model.fit_predict(X))


@dataclasses.dataclass
class BirchConfig:
    """BIRCH: a CF-tree of subclusters of radius <= threshold, then AHC of the subclusters to n_clusters."""

    threshold: float = 0.5  # subcluster radius (unit vectors: distances lie in [0, 2])
    branching_factor: int = 50
    l2_normalize: bool = True


@register_clusterer("birch", config=BirchConfig)
class BirchClusterer(Clusterer):
    """BIRCH (scikit-learn); with n_clusters None the leaf subclusters are the clusters."""

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
        cfg: BirchConfig = self.config
        X = prepare_input(X, n_clusters, cfg.l2_normalize, "birch")
        from sklearn.cluster import Birch

        model = Birch(threshold=cfg.threshold, branching_factor=cfg.branching_factor, n_clusters=n_clusters)
        return encode_labels(model.fit_predict(X))
