"""Clustering metrics of the paper's Table I, exact and fast at VoxCeleb2 scale (1.09M labels).

Label-only metrics (ACC, NMI, AMI, homogeneity, completeness, FMI, purity, number of non-empty
clusters) are all computed from one sparse contingency table; they agree with scikit-learn's
definitions (arithmetic normalisation for NMI/AMI, as sklearn's default). Feature metrics
(silhouette with cosine distance, Calinski-Harabasz, Davies-Bouldin) need the (N, D) vectors.

Why it is fast:

- AMI's expected mutual information (EMI) depends on the row/column *sizes* only, so the sum runs over
  unique (a, b) size pairs, weighted by how many rows/columns have those sizes (scikit-learn loops over
  all 5,994 x 5,000 row/column pairs: 206 s). For each pair the hypergeometric sum over n_ij is walked
  outwards from its mode, vectorised over pairs, and a pair stops once its log-probability is below
  -750: past the mode the pmf only decreases, and exp(-750) is 0.0 in float64, so every skipped term is
  exactly the 0.0 that scikit-learn adds. The result is the same sum, not an approximation.
- ACC's Hungarian assignment runs on the sparse contingency table (scipy's LAPJVsp) extended with
  zero-gain dummy rows/columns, so clusters that share no utterance with a class can stay unmatched.
- Silhouette with cosine distance needs no N x N matrix: for unit vectors the mean distance from x to
  cluster k is 1 - x . S_k / n_k with S_k the cluster's vector sum, so a(i), b(i) are exact against all
  N points at O(K D) per point. Above ``silhouette_sample`` points (default 20,000) it is the mean over a
  seeded random sample of points (each still exact against the full data), an unbiased estimate.
"""
from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

logger = logging.getLogger(__name__)

#: Column order of the paper's Table I (and of every metrics table we print).
METRIC_NAMES: tuple[str, ...] = (
    "acc", "ami", "nmi", "num_clusters", "completeness", "homogeneity", "fmi", "purity",
    "silhouette", "calinski_harabasz", "davies_bouldin",
)
FEATURE_METRICS: tuple[str, ...] = ("silhouette", "calinski_harabasz", "davies_bouldin")
DEFAULT_SILHOUETTE_SAMPLE = 20_000

# log-probabilities below this give exp(.) == 0.0 in float64 (the smallest subnormal is ~exp(-744.4)).
_LOG_UNDERFLOW = -750.0


def encode_labels(labels: Sequence | np.ndarray) -> np.ndarray:
    """Map any hashable labels (ints, strings) to int64 codes 0..K-1 in sorted order of the labels."""
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.astype(np.int64).ravel()


def contingency_table(labels_true: Sequence | np.ndarray, labels_pred: Sequence | np.ndarray) -> sp.csr_matrix:
    """Sparse (R, K) int64 table: entry (r, k) counts items of true class r in predicted cluster k."""
    import scipy.sparse as sp

    true = encode_labels(labels_true)
    pred = encode_labels(labels_pred)
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} true labels but {pred.size} predicted labels")
    if true.size == 0:
        raise ValueError("clustering metrics need at least one labelled item")
    n_pred = int(pred.max()) + 1
    cells, counts = np.unique(true * n_pred + pred, return_counts=True)
    shape = (int(true.max()) + 1, n_pred)
    return sp.csr_matrix((counts.astype(np.int64), (cells // n_pred, cells % n_pred)), shape=shape)


def _marginals(table: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, int]:
    a = np.asarray(table.sum(axis=1)).ravel().astype(np.int64)
    b = np.asarray(table.sum(axis=0)).ravel().astype(np.int64)
    return a, b, int(a.sum())


def entropy_from_counts(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of the distribution given by non-negative ``counts``."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    if counts.size <= 1:
        return 0.0
    total = counts.sum()
    return float(-np.sum((counts / total) * (np.log(counts) - math.log(total))))


def mutual_info(table: sp.csr_matrix) -> float:
    """Mutual information (nats) between the two labelings of a contingency table."""
    a, b, n = _marginals(table)
    if a.size == 1 or b.size == 1:
        return 0.0
    coo = table.tocoo()
    nij = coo.data.astype(np.float64)
    outer = a[coo.row].astype(np.float64) * b[coo.col].astype(np.float64)
    mi = (nij / n) * (np.log(nij) - math.log(n) - np.log(outer) + 2 * math.log(n))
    mi = np.where(np.abs(mi) < np.finfo(np.float64).eps, 0.0, mi)  # as sklearn does
    return float(max(mi.sum(), 0.0))


def expected_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Expected mutual information (nats) of two random labelings with class sizes ``a``, ``b``.

    Exact (see the module docstring): the hypergeometric sum of Vinh et al. (2010) over unique size
    pairs, each walked from its mode until its terms underflow to 0.0.

    :param a: (R,) sizes of the true classes; :param b: (K,) sizes of the predicted clusters;
        both sum to the number of items N.
    """
    from scipy.special import gammaln

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    a, b = a[a > 0], b[b > 0]
    n = int(a.sum())
    if int(b.sum()) != n:
        raise ValueError(f"class sizes sum to {n} but cluster sizes to {int(b.sum())}")
    if a.size <= 1 or b.size <= 1:
        return 0.0
    ua, ca = np.unique(a, return_counts=True)
    ub, cb = np.unique(b, return_counts=True)
    A = np.repeat(ua, ub.size)
    B = np.tile(ub, ua.size)
    weight = np.repeat(ca, ub.size).astype(np.float64) * np.tile(cb, ua.size)
    log_fact = gammaln(np.arange(n + 1, dtype=np.float64) + 1.0)  # log k! for k = 0..n
    log_const = log_fact[A] + log_fact[B] + log_fact[n - A] + log_fact[n - B] - log_fact[n]
    log_ab = np.log(A.astype(np.float64)) + np.log(B.astype(np.float64))
    lo = np.maximum(1, A + B - n)
    hi = np.minimum(A, B)
    mode = np.clip((A + 1) * (B + 1) // (n + 2), lo, hi)

    def walk(pairs: np.ndarray, nij: np.ndarray, step: int) -> float:
        total = 0.0
        while pairs.size:
            pa, pb = A[pairs], B[pairs]
            log_p = log_const[pairs] - log_fact[nij] - log_fact[pa - nij] - log_fact[pb - nij] - log_fact[n - pa - pb + nij]
            term = (nij / n) * (math.log(n) + np.log(nij) - log_ab[pairs]) * np.exp(log_p)
            total += float(np.dot(weight[pairs], term))
            nxt = nij + step
            keep = (log_p > _LOG_UNDERFLOW) & (nxt >= lo[pairs]) & (nxt <= hi[pairs])
            pairs, nij = pairs[keep], nxt[keep]
        return total

    all_pairs = np.arange(A.size)
    up = walk(all_pairs, mode.copy(), +1)
    below = mode - 1 >= lo
    down = walk(all_pairs[below], mode[below] - 1, -1)
    return up + down


def _average(h_true: float, h_pred: float, method: str) -> float:
    if method == "arithmetic":
        return (h_true + h_pred) / 2
    if method == "geometric":
        return math.sqrt(h_true * h_pred)
    if method == "min":
        return min(h_true, h_pred)
    if method == "max":
        return max(h_true, h_pred)
    raise ValueError(f"unknown average method {method!r}; use arithmetic, geometric, min or max")


def information_scores(table: sp.csr_matrix, average_method: str = "arithmetic",
                       adjusted: bool = True) -> dict[str, float]:
    """NMI, AMI, homogeneity and completeness with scikit-learn's conventions for degenerate cases.

    ``adjusted=False`` skips AMI (its expected-MI term is the only costly part: ~2 s at 1.09M labels).
    """
    a, b, _ = _marginals(table)
    a, b = a[a > 0], b[b > 0]
    h_true, h_pred = entropy_from_counts(a), entropy_from_counts(b)
    mi = mutual_info(table)
    homogeneity = mi / h_true if h_true else 1.0
    completeness = mi / h_pred if h_pred else 1.0
    if a.size == b.size == 1:
        return {"nmi": 1.0, "ami": 1.0, "homogeneity": homogeneity, "completeness": completeness}
    nmi = 0.0 if mi == 0 else mi / _average(h_true, h_pred, average_method)
    if not adjusted:
        return {"nmi": float(nmi), "homogeneity": float(homogeneity), "completeness": float(completeness)}
    if a.size == 1 or b.size == 1:
        ami = 0.0
    else:
        emi = expected_mutual_info(a, b)
        tiny = np.finfo(np.float64).eps
        denominator = _average(h_true, h_pred, average_method) - emi
        numerator = mi - emi
        # sklearn keeps the sign but bounds |.| away from 0 to avoid 0 / 0 on perfect matches.
        denominator = min(denominator, -tiny) if denominator < 0 else max(denominator, tiny)
        numerator = min(numerator, -tiny) if numerator < 0 else max(numerator, tiny)
        ami = numerator / denominator
    return {"nmi": float(nmi), "ami": float(ami), "homogeneity": float(homogeneity), "completeness": float(completeness)}


def cluster_accuracy(table: sp.csr_matrix) -> float:
    """Unsupervised clustering accuracy: the best one-to-one class <-> cluster map (Hungarian), / N.

    With R classes and K clusters (R != K allowed) at most min(R, K) clusters are matched; the others
    count as errors. Solved on the sparse table: the (R+K) x (K+R) cost matrix pairs each class with a
    dummy column and each cluster with a dummy row (zero gain), so a full matching always exists and
    its minimum cost equals the maximum-weight (possibly partial) matching of the real table.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    coo = table.tocoo()
    n_rows, n_cols = table.shape
    n = int(coo.data.sum())
    if coo.nnz == 0:
        return 0.0
    # All costs are offset by `big` so they are positive; every full matching has R + K edges,
    # so the offset does not change which matching is best.
    big = float(coo.data.max()) + 1.0
    rows = np.concatenate([coo.row, np.arange(n_rows), n_rows + coo.col, n_rows + np.arange(n_cols)])
    cols = np.concatenate([coo.col, n_cols + np.arange(n_rows), n_cols + coo.row, np.arange(n_cols)])
    costs = np.concatenate([
        big - coo.data.astype(np.float64), np.full(n_rows, big), np.full(coo.nnz, big), np.full(n_cols, big)
    ])
    graph = sp.csr_matrix((costs, (rows, cols)), shape=(n_rows + n_cols, n_cols + n_rows))
    match_row, match_col = min_weight_full_bipartite_matching(graph)
    real = (match_row < n_rows) & (match_col < n_cols)
    matched = np.asarray(table[match_row[real], match_col[real]]).ravel().sum()
    return float(matched) / n


def purity(table: sp.csr_matrix) -> float:
    """Fraction of items whose cluster's majority class is their class."""
    n = table.sum()
    return float(np.asarray(table.max(axis=0).todense()).sum() / n)


def fowlkes_mallows(table: sp.csr_matrix) -> float:
    """Fowlkes-Mallows index: geometric mean of pairwise precision and recall."""
    a, b, n = _marginals(table)
    data = table.data.astype(np.int64)
    tk = int(np.dot(data, data)) - n
    pk = int(np.sum(b * b)) - n
    qk = int(np.sum(a * a)) - n
    return float(math.sqrt(tk / pk) * math.sqrt(tk / qk)) if tk != 0 else 0.0


def _chunk_rows(n_cols: int, budget: int = 4_000_000) -> int:
    """Rows per chunk so that a (rows, n_cols) block stays near ``budget`` entries (32 MB in float64)."""
    return max(1, budget // max(1, n_cols))


def _work_dtype(X: np.ndarray) -> type:
    """float32 inputs (i-vectors) are processed in float32 chunks, 4x faster than casting every chunk
    (per-row terms then carry ~1e-7 relative error; all sums across rows are float64); float64 stays float64."""
    return np.float32 if X.dtype == np.float32 else np.float64


def _cluster_sums(X: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunked pass over the rows (no copy of X).

    :return: sizes (K,), vector sums (K, D) and sums of the l2-normalised vectors (K, D), float64.
    """
    import scipy.sparse as sp

    dtype = _work_dtype(X)
    sums = np.zeros((2 * k, X.shape[1]))
    step = 65536  # per chunk a cluster gets few rows, so chunk sums in float32 lose nothing measurable
    for start in range(0, codes.size, step):
        part = codes[start:start + step]
        rows = np.asarray(X[start:start + step], dtype=dtype)
        inv_norm = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64)), 1e-12)
        # One sparse product gives both: rows 0..K-1 weight 1, rows K..2K-1 weight 1 / ||x||.
        weights = np.concatenate([np.ones(part.size), inv_norm]).astype(dtype)
        cols = np.tile(np.arange(part.size), 2)
        indicator = sp.csr_matrix((weights, (np.concatenate([part, part + k]), cols)), shape=(2 * k, part.size))
        sums += indicator @ rows
    return np.bincount(codes, minlength=k).astype(np.float64), sums[:k], sums[k:]


def _valid_codes(labels: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Label codes and K, or None when K is outside [2, N - 1] (the feature metrics are undefined)."""
    codes = encode_labels(labels)
    k = int(codes.max()) + 1 if codes.size else 0
    return (codes, k) if 2 <= k <= codes.size - 1 else None


def _l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` scaled to unit length, in float64."""
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.sqrt(np.einsum("ij,ij->i", X, X)), 1e-12)[:, None]


def _silhouette(X: np.ndarray, codes: np.ndarray, sizes: np.ndarray, sums: np.ndarray,
                sample_size: int | None, seed: int) -> float:
    points = np.arange(codes.size)
    if sample_size is not None and codes.size > sample_size:
        points = np.sort(np.random.default_rng(seed).choice(codes.size, sample_size, replace=False))
    dtype = _work_dtype(X)
    sums_t = sums.T.astype(dtype)
    scores = np.empty(points.size)
    step = _chunk_rows(sizes.size)
    for start in range(0, points.size, step):
        idx = points[start:start + step]
        rows = np.arange(idx.size)
        own = codes[idx]
        unit = _l2_normalise(X[idx])
        dots = (unit.astype(dtype) @ sums_t).astype(np.float64)  # (M, K): x . S_k
        self_dot = np.einsum("ij,ij->i", unit, unit)
        n_own = sizes[own]
        with np.errstate(divide="ignore", invalid="ignore"):
            # mean of (1 - x . y) over the other members of x's own cluster
            intra = ((n_own - 1) - (dots[rows, own] - self_dot)) / (n_own - 1)
            mean_dist = 1.0 - dots / sizes
            mean_dist[rows, own] = np.inf
            inter = mean_dist.min(axis=1)
            # Both means are differences of near-equal dot products: a point whose own and nearest clusters are
            # copies of it gets rounding noise of either sign, where scikit-learn's exact 0 / 0 scores 0.
            tol = 64 * np.finfo(dtype).eps
            intra, inter = np.where(intra > tol, intra, 0.0), np.where(inter > tol, inter, 0.0)
            s = (inter - intra) / np.maximum(intra, inter)
        scores[start:start + idx.size] = np.where(n_own > 1, np.nan_to_num(s), 0.0)
    return float(scores.mean())


def silhouette_cosine(X: np.ndarray, labels: np.ndarray, sample_size: int | None = DEFAULT_SILHOUETTE_SAMPLE,
                      seed: int = 0) -> float:
    """Mean silhouette with cosine distance (scikit-learn's definition), exact per point, no N x N matrix.

    :param X: (N, D) vectors (l2-normalised here). :param labels: (N,) cluster labels.
    :param sample_size: average over this many random points when N is larger (each point's a(i), b(i)
        remain exact over all N points); None: all points.
    :return: NaN when there are fewer than 2 or more than N - 1 clusters (undefined).
    """
    valid = _valid_codes(labels)
    if valid is None:
        return float("nan")
    codes, k = valid
    sizes, _, unit_sums = _cluster_sums(X, codes, k)
    return _silhouette(X, codes, sizes, unit_sums, sample_size, seed)


def _dispersion_scores(X: np.ndarray, codes: np.ndarray, sizes: np.ndarray, sums: np.ndarray) -> tuple[float, float]:
    """(Calinski-Harabasz, Davies-Bouldin) from one pass over the rows, scikit-learn's definitions."""
    k, n = sizes.size, codes.size
    centroids = sums / sizes[:, None]
    work = centroids.astype(_work_dtype(X))
    sq_within = np.zeros(k)
    dist_within = np.zeros(k)
    step = _chunk_rows(X.shape[1])
    for start in range(0, n, step):
        part = codes[start:start + step]
        diff = np.asarray(X[start:start + step], dtype=work.dtype) - work[part]
        sq = np.einsum("ij,ij->i", diff, diff, dtype=np.float64)
        sq_within += np.bincount(part, weights=sq, minlength=k)
        dist_within += np.bincount(part, weights=np.sqrt(sq), minlength=k)
    extra = float(np.sum(sizes * np.sum((centroids - sums.sum(axis=0) / n) ** 2, axis=1)))
    intra = float(sq_within.sum())
    ch = 1.0 if intra == 0.0 else extra * (n - k) / (intra * (k - 1))

    spread = dist_within / sizes
    sq_norms = np.sum(centroids ** 2, axis=1)
    worst = np.zeros(k)
    any_apart = False
    step = _chunk_rows(k)
    for start in range(0, k, step):
        stop = min(start + step, k)
        d2 = sq_norms[start:stop, None] - 2 * centroids[start:stop] @ centroids.T + sq_norms[None, :]
        dist = np.sqrt(np.maximum(d2, 0.0))
        dist[np.arange(stop - start), np.arange(start, stop)] = 0.0
        any_apart |= bool(np.any(~np.isclose(dist, 0.0)))
        dist[dist == 0] = np.inf  # as sklearn: coincident centroids do not count
        worst[start:stop] = np.max((spread[start:stop, None] + spread[None, :]) / dist, axis=1)
    db = 0.0 if np.allclose(spread, 0) or not any_apart else float(np.mean(worst))
    return ch, db


def calinski_harabasz(X: np.ndarray, labels: np.ndarray) -> float:
    """Calinski-Harabasz score (between / within dispersion ratio); NaN when undefined."""
    return feature_metrics(X, labels, silhouette=False)["calinski_harabasz"]


def davies_bouldin(X: np.ndarray, labels: np.ndarray) -> float:
    """Davies-Bouldin index (lower is better); NaN when undefined."""
    return feature_metrics(X, labels, silhouette=False)["davies_bouldin"]


def feature_metrics(X: np.ndarray, labels: np.ndarray, silhouette_sample: int | None = DEFAULT_SILHOUETTE_SAMPLE,
                    seed: int = 0, silhouette: bool = True) -> dict[str, float]:
    """Silhouette (cosine), Calinski-Harabasz and Davies-Bouldin sharing one set of cluster sums.

    CH and DB use Euclidean distance on ``X`` as given (scikit-learn's definition); silhouette uses
    cosine distance, averaged over ``silhouette_sample`` seeded random points above that size (None or 0: all
    points, as ``cimc cluster-metrics --silhouette-sample 0``). ``silhouette=False`` skips it (NaN). All NaN
    when K < 2 or K > N - 1.
    """
    X = np.asarray(X)
    valid = _valid_codes(labels)
    if valid is None:
        return dict.fromkeys(FEATURE_METRICS, float("nan"))
    codes, k = valid
    sizes, sums, unit_sums = _cluster_sums(X, codes, k)
    ch, db = _dispersion_scores(X, codes, sizes, sums)
    score = _silhouette(X, codes, sizes, unit_sums, silhouette_sample or None, seed) if silhouette else float("nan")
    return {"silhouette": score, "calinski_harabasz": ch, "davies_bouldin": db}


def clustering_metrics(labels_true: Sequence | np.ndarray, labels_pred: Sequence | np.ndarray,
                       features: np.ndarray | None = None,
                       silhouette_sample: int | None = DEFAULT_SILHOUETTE_SAMPLE, seed: int = 0) -> dict[str, float]:
    """All of :data:`METRIC_NAMES` for one clustering (feature metrics only when ``features`` is given).

    :param labels_true: (N,) reference labels (speakers). :param labels_pred: (N,) cluster labels.
    :param features: optional (N, D) vectors in the clustered space, same row order as the labels.
    :return: a dict metric name -> value (``num_clusters``: non-empty predicted clusters, as a float).
    """
    table = contingency_table(labels_true, labels_pred)
    result = {"acc": cluster_accuracy(table)}
    result.update(information_scores(table))
    result["fmi"] = fowlkes_mallows(table)
    result["purity"] = purity(table)
    if features is not None:
        features = np.asarray(features)
        if features.shape[0] != table.sum():
            raise ValueError(f"{features.shape[0]} feature rows for {table.sum()} labels")
        result.update(feature_metrics(features, labels_pred, silhouette_sample, seed))
    result["num_clusters"] = float(table.shape[1])
    return {name: result[name] for name in METRIC_NAMES if name in result}


def metrics_json(metrics: dict[str, float]) -> str:
    """``metrics`` as strict JSON: an undefined value (NaN, e.g. the silhouette of one cluster) becomes null."""
    defined = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}
    return json.dumps(defined, indent=2, allow_nan=False) + "\n"


def metrics_table(rows: dict[str, dict[str, float]], digits: int = 3) -> str:
    """A Markdown table: one row per named result, the columns of :data:`METRIC_NAMES` present."""
    columns = [m for m in METRIC_NAMES if any(m in r for r in rows.values())]
    lines = ["| system | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in rows.items():
        cells = []
        for m in columns:
            v = values.get(m)
            cells.append("" if v is None else (f"{int(v)}" if m == "num_clusters" else f"{v:.{digits}f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
