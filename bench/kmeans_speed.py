#!/usr/bin/env python
"""k-means at scale: our torch Lloyd (cimc.cluster.lloyd, GPU when visible) vs scikit-learn, same data.

Both run up to ``--iters`` Lloyd iterations with tol = 0 (each stops early only at exact convergence, and
is timed per iteration it ran), on synthetic l2-normalised "i-vectors"
(N, D) drawn around K centres, from the same start: our k-means++ seeding (timed apart; scikit-learn's own
at K 5,000 takes minutes). Prints seconds per iteration, the seeding time, the final inertia of each
(equal when scikit-learn runs on all N points) and the speed ratio. The paper's size is the default; scikit-learn is
timed on ``--sklearn-items`` points (its per-iteration time scales linearly in N, and is scaled up to N
in the ratio column; 0 = all).

``--tf32`` adds a row: the same Lloyd iterations from the same start with torch's TF32 matmul switch on (a CUDA
setting; on a CPU the products stay float32), with the share of points whose label differs from the float32 run
and the inertia of both partitions (float64, each to the means of its own labels). The library's k-means keeps
float32; this row measures what TF32 would give.

    OMP_NUM_THREADS=1 python bench/kmeans_speed.py --num-items 20000 --dim 40 --num-clusters 100   # CPU smoke
    python bench/kmeans_speed.py                                   # 1,092,009 x 400 into 5,000 (GPU)
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def synthetic(n: int, dim: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)).astype(np.float32)
    X = centres[rng.integers(0, k, n)] + rng.normal(scale=0.8, size=(n, dim)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def partition_inertia(X: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances of X (N, D) to the means of its ``labels`` (N,), in float64 on the CPU."""
    from scipy import sparse

    X64 = X.astype(np.float64)
    one_hot = sparse.csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))))
    means = (one_hot @ X64) / np.maximum(np.asarray(one_hot.sum(axis=1)), 1)
    return float(((X64 - means[labels]) ** 2).sum())


def device_name(device: str) -> str:
    """``device`` with the GPU's name when it is one, for a benchmark's header line."""
    import torch

    return f"{device} ({torch.cuda.get_device_name()})" if device.startswith("cuda") else device


def synthetic_set(args) -> tuple[str, np.ndarray, str]:
    """(device, the synthetic set of ``args`` (num_items, dim, num_clusters), its header line) for a benchmark."""
    from cimc.utils import resolve_device

    device = resolve_device(args.device)
    X = synthetic(args.num_items, args.dim, args.num_clusters, 0)
    return device, X, f"N = {len(X):,}, D = {args.dim}, K = {args.num_clusters:,}, device {device_name(device)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=int, default=1_092_009)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--num-clusters", type=int, default=5_000)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--init-sample", type=int, default=200_000, help="k-means++ on this many points (torch)")
    parser.add_argument("--sklearn-items", type=int, default=100_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tf32", action="store_true", help="also time the Lloyd iterations with TF32 products")
    args = parser.parse_args()

    import torch
    from sklearn.cluster import KMeans

    from cimc.cluster.lloyd import default_chunk_size, kmeans_plus_plus, lloyd_kmeans
    from cimc.utils import tf32_switches_kept

    device, X, header = synthetic_set(args)
    print(header)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    Xt = torch.as_tensor(X, device=device)
    pick = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:min(args.init_sample, len(X))]
    pick = pick.to(device)
    sync()
    start = time.perf_counter()
    centres = kmeans_plus_plus(Xt[pick], args.num_clusters, torch.Generator().manual_seed(0),
                               default_chunk_size(device))
    sync()
    t_seed = time.perf_counter() - start
    init = centres.cpu().numpy()
    start = time.perf_counter()
    # tol 0 still stops at exact convergence (no centre moves), as scikit-learn's does: divide by the
    # iterations each ran.
    labels, inertia, n_iter = lloyd_kmeans(X, args.num_clusters, max_iter=args.iters, tol=0.0, device=device,
                                           init=init, return_n_iter=True)
    sync()
    t_ours = (time.perf_counter() - start) / n_iter

    print("\n| | seeding (s) | iterations | s / iteration at N | inertia / point |")
    print("|---|---|---|---|---|")
    print(f"| ours (torch, {device}) | {t_seed:.2f} | {n_iter} | {t_ours:.3f} | {inertia / len(X):.4f} |", flush=True)
    if args.tf32:
        with tf32_switches_kept():
            torch.backends.cuda.matmul.allow_tf32 = True
            sync()
            start = time.perf_counter()
            labels_tf32, _, n_iter_tf32 = lloyd_kmeans(X, args.num_clusters, max_iter=args.iters, tol=0.0,
                                                       device=device, init=init, return_n_iter=True)
            sync()
            t_tf32 = (time.perf_counter() - start) / n_iter_tf32
        # both partitions scored the same way (float64, each to the means of its own labels)
        differ = float(np.mean(labels_tf32 != labels))
        ours_exact = partition_inertia(X, labels) / len(X)
        print(f"| ours, TF32 products (labels differing: {differ:.2%}; float64 inertia / point of the partitions: "
              f"TF32 {partition_inertia(X, labels_tf32) / len(X):.6f}, float32 {ours_exact:.6f}) | - | "
              f"{n_iter_tf32} | {t_tf32:.3f} | - |", flush=True)

    # scikit-learn starts from the same centres: its own k-means++ at K 5,000 alone takes minutes (20k points:
    # 100 s on 2 cores), and the ratio is about the Lloyd iterations. On all N points both do the same work
    # and reach the same inertia.
    n_sk = len(X) if args.sklearn_items in (0, None) else min(max(args.sklearn_items, args.num_clusters), len(X))
    X_sk = X[:n_sk]
    start = time.perf_counter()
    model = KMeans(args.num_clusters, init=init, n_init=1, max_iter=args.iters, tol=0.0,
                   algorithm="lloyd").fit(X_sk)
    t_sk_total = time.perf_counter() - start
    t_sk = t_sk_total / max(model.n_iter_, 1) * (len(X) / n_sk)
    print(f"| scikit-learn ({n_sk:,} points, scaled to N; same start) | - | {model.n_iter_} | {t_sk:.3f} | "
          f"{model.inertia_ / n_sk:.4f} |")
    print(f"\nscikit-learn / ours per iteration: {t_sk / t_ours:.1f}x")


if __name__ == "__main__":
    main()
