#!/usr/bin/env python
"""AHC above its exact size: the k-NN connectivity graph by our chunked search (cimc.cluster.baselines.knn_graph,
GPU when visible, components joined by a few links) vs scikit-learn's ``kneighbors_graph``, same data, same
process; then the Ward merges (scikit-learn's ``AgglomerativeClustering``) along ours, and along scikit-learn's graph,
which it completes itself by joining every pair of components (O(c^2) searches), up to ``--sklearn-merge-max``.

For each N in ``--num-items``: seconds for each graph (the same k-NN edges: checked), the ratio, the merge times, on
synthetic l2-normalised "i-vectors" around ``--num-clusters`` centres. scikit-learn's search is timed only up to
``--sklearn-max`` points (its cost grows as N^2). The merges grow faster than linearly (x3.6 per doubling of N
from 50,000 to 200,000 points: bench/results/ahc_speed_200k_amd.md); the search as N^2 D (0.5 PFLOP at
VoxCeleb2's 1.09M x 400).

    OMP_NUM_THREADS=2 python bench/ahc_speed.py --num-items 20000 50000 100000 --num-clusters 2000
    python bench/ahc_speed.py --num-items 100000 1092009 --num-clusters 5000 --sklearn-max 100000   # GPU
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kmeans_speed import device_name, synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=int, nargs="+", default=[20_000, 50_000, 100_000])
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--num-clusters", type=int, default=2_000)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--sklearn-max", type=int, default=100_000)
    parser.add_argument("--sklearn-merge-max", type=int, default=50_000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.neighbors import kneighbors_graph

    from cimc.cluster.baselines import knn_graph
    from cimc.utils import resolve_device

    device = resolve_device(args.device)
    print(f"D = {args.dim}, K = {args.num_clusters:,}, {args.n_neighbors}-NN, device {device_name(device)}, "
          f"{torch.get_num_threads()} CPU threads\n")
    print("| N | k-NN graph, ours (s) | scikit-learn (s) | scikit-learn / ours | same k-NN edges (+ links) | "
          "Ward merges, ours (s) | along scikit-learn's graph (s) |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for n in args.num_items:
        X = synthetic(n, args.dim, args.num_clusters, 0)
        start = time.perf_counter()
        ours = knn_graph(X, args.n_neighbors, device)
        t_ours = time.perf_counter() - start
        t_sk, same, t_sk_merge = "-", "-", "-"
        if n <= args.sklearn_max:
            start = time.perf_counter()
            theirs = kneighbors_graph(X, args.n_neighbors, include_self=False)
            theirs = theirs.maximum(theirs.T)
            t_sk = time.perf_counter() - start
            kept = (theirs - theirs.multiply(ours)).nnz == 0
            same = f"{'yes' if kept else 'no'} (+{(ours.nnz - theirs.nnz) // 2})"
        start = time.perf_counter()
        AgglomerativeClustering(args.num_clusters, linkage="ward", connectivity=ours).fit(X)
        t_merge = time.perf_counter() - start
        if same != "-" and n <= args.sklearn_merge_max:
            start = time.perf_counter()
            AgglomerativeClustering(args.num_clusters, linkage="ward", connectivity=theirs).fit(X)
            t_sk_merge = f"{time.perf_counter() - start:.1f}"
        ratio = f"{t_sk / t_ours:.1f}x" if same != "-" else "-"
        sk_text = f"{t_sk:.1f}" if same != "-" else "-"
        print(f"| {n:,} | {t_ours:.1f} | {sk_text} | {ratio} | {same} | {t_merge:.1f} | {t_sk_merge} |", flush=True)


if __name__ == "__main__":
    main()
