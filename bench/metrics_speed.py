#!/usr/bin/env python
"""Clustering metrics at VoxCeleb2 scale: ours (cimc.metrics.clustering) vs scikit-learn, same run.

Synthetic labels shaped like the paper's setting: 1,092,009 utterances of 5,994 speakers (log-normal
utterances per speaker, as in VoxCeleb2-dev) clustered into 5,000 clusters by a noisy map, plus
(N, D) vectors for the feature metrics. Prints each metric's time for both, the values and the ratio.

scikit-learn's adjusted_mutual_info_score takes ~3.5 min at full size; by default it is timed on a
subsample (--sklearn-ami-sample, ours timed on the same subsample too); --sklearn-ami-full times it on
everything. Silhouette: ours is exact per point against all N points, averaged over 20,000 sampled
points; sklearn's silhouette_score(sample_size=20,000) recomputes clusters inside the sample, so only
the times are comparable, not the values (below 20,000 points both use all of them, and the values compare).

    OMP_NUM_THREADS=1 python bench/metrics_speed.py [--num-items 1092009] [--dim 400] [--sklearn-ami-full]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn import metrics as skm

from cimc.metrics.clustering import (
    DEFAULT_SILHOUETTE_SAMPLE, METRIC_NAMES, calinski_harabasz, clustering_metrics, contingency_table, davies_bouldin,
    information_scores, silhouette_cosine,
)


def synthetic(num_items: int, num_speakers: int, num_clusters: int, dim: int, noise: float, seed: int):
    """(true labels, predicted labels, features (N, dim) float32 or None)."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 0.6, num_speakers)
    true = rng.choice(num_speakers, num_items, p=weights / weights.sum())
    pred = true * num_clusters // num_speakers
    flip = rng.random(num_items) < noise
    pred[flip] = rng.integers(0, num_clusters, int(flip.sum()))
    features = None
    if dim:
        centres = rng.normal(size=(num_clusters, dim)).astype(np.float32)
        features = centres[pred] + rng.normal(scale=2.0, size=(num_items, dim)).astype(np.float32)
    return true, pred, features


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=int, default=1_092_009)
    parser.add_argument("--num-speakers", type=int, default=5_994)
    parser.add_argument("--num-clusters", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=400, help="feature dim for silhouette/CH/DB (0: skip them)")
    parser.add_argument("--noise", type=float, default=0.3, help="fraction of items given a random cluster")
    parser.add_argument("--sklearn-ami-full", action="store_true", help="time sklearn's AMI on all items (~3.5 min)")
    parser.add_argument("--sklearn-ami-sample", type=int, default=100_000, help="subsample for sklearn's AMI otherwise")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    true, pred, X = synthetic(args.num_items, args.num_speakers, args.num_clusters, args.dim, args.noise, args.seed)
    print(f"N = {true.size:,}, {np.unique(true).size} true classes, {np.unique(pred).size} clusters, dim {args.dim}")

    cpu_start = time.process_time()
    ours, t_all = timed(clustering_metrics, true, pred, X)
    cpu = time.process_time() - cpu_start
    # On a shared machine wall time counts other people's load too: CPU time is what this run used.
    print(f"\nours, all {len(ours)} metrics together: {t_all:.2f} s wall, {cpu:.2f} s CPU "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    rows = []  # (metric, ours s, sklearn s, ours value, sklearn value)
    table, t_table = timed(contingency_table, true, pred)
    info, t_info = timed(information_scores, table)
    for name, fn in [("nmi", skm.normalized_mutual_info_score), ("homogeneity", skm.homogeneity_score),
                     ("completeness", skm.completeness_score), ("fmi", skm.fowlkes_mallows_score)]:
        ref, t_ref = timed(fn, true, pred)
        rows.append((name, None, t_ref, ours[name], ref))
    rows.append(("contingency + nmi/ami/homo/comp", t_table + t_info, None, None, None))

    if args.sklearn_ami_full:
        ref, t_ref = timed(skm.adjusted_mutual_info_score, true, pred)
        rows.append(("ami (all items)", t_table + t_info, t_ref, ours["ami"], ref))
    else:
        n_sample = min(args.sklearn_ami_sample, true.size)
        idx = np.random.default_rng(args.seed).choice(true.size, n_sample, replace=False)
        ours_sub, t_ours = timed(lambda: information_scores(contingency_table(true[idx], pred[idx]))["ami"])
        ref, t_ref = timed(skm.adjusted_mutual_info_score, true[idx], pred[idx])
        rows.append((f"ami ({n_sample:,} items)", t_ours, t_ref, ours_sub, ref))

    if X is not None:
        n_sil = min(DEFAULT_SILHOUETTE_SAMPLE, len(X))
        sil, t_sil = timed(silhouette_cosine, X, pred, sample_size=n_sil)
        ref, t_ref = timed(skm.silhouette_score, X, pred, metric="cosine", sample_size=n_sil, random_state=0)
        exact = n_sil == len(X)  # both over all points: the values compare too
        rows.append((f"silhouette ({n_sil:,} points)", t_sil, t_ref, sil if exact else None, ref if exact else None))
        for name, ours_fn, ref_fn in [("calinski_harabasz", calinski_harabasz, skm.calinski_harabasz_score),
                                      ("davies_bouldin", davies_bouldin, skm.davies_bouldin_score)]:
            value, t_ours = timed(ours_fn, X, pred)
            ref, t_ref = timed(ref_fn, X, pred)
            rows.append((name, t_ours, t_ref, value, ref))

    print(f"\n| metric | ours (s) | sklearn (s) | sklearn / ours | ours | sklearn |")
    print("|---|---|---|---|---|---|")
    for name, t_o, t_r, v_o, v_r in rows:
        ratio = f"{t_r / t_o:.1f}x" if t_o and t_r else ""
        fmt = lambda v: "" if v is None else f"{v:.9f}"  # noqa: E731
        t_o_s = "" if t_o is None else f"{t_o:.2f}"
        t_r_s = "" if t_r is None else f"{t_r:.2f}"
        print(f"| {name} | {t_o_s} | {t_r_s} | {ratio} | {fmt(v_o)} | {fmt(v_r)} |")
    print("\nours:", ", ".join(f"{k}={ours[k]:.4f}" for k in METRIC_NAMES if k in ours))


if __name__ == "__main__":
    main()
