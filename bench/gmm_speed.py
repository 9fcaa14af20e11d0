#!/usr/bin/env python
"""GMM clustering at scale: our chunked torch EM (cimc.cluster.gmm, GPU when visible) vs scikit-learn's
GaussianMixture (diagonal covariances), same data, same start, same process.

Both run ``--iters`` EM iterations with tol = 0 (fixed work) on synthetic l2-normalised "i-vectors" (N, D)
around K centres, from the same parameters: the M-step of one k-means partition (our torch Lloyd, timed apart).
Prints seconds per iteration, the peak resident memory of each fit above what the process held before it (Linux:
VmHWM, reset before each fit), the final mean log-likelihood per point (equal when scikit-learn runs on all N
points) and the ratios. scikit-learn holds several (N, K) float64 arrays, 44 GB each at 1.09M x 5,000, so at the
paper's size it runs on ``--sklearn-items`` points and its time is scaled up to N (linear in N; 0 = all points).

    OMP_NUM_THREADS=2 python bench/gmm_speed.py --num-items 50000 --dim 100 --num-clusters 500 --sklearn-items 0
    python bench/gmm_speed.py                                       # 1,092,009 x 400 into 5,000 (GPU)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from kmeans_speed import synthetic_set


def reset_peak_memory() -> int | None:
    """Reset this process's peak resident memory (Linux ``clear_refs`` 5) and return the current one, bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def _status_bytes(field: str) -> int | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def peak_above(before: int | None) -> str:
    """Peak resident memory since :func:`reset_peak_memory`, above ``before``, as GB text."""
    peak = _status_bytes("VmHWM") if before is not None else None
    return "-" if peak is None else f"{(peak - before) / 1e9:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=int, default=1_092_009)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--num-clusters", type=int, default=5_000)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--reg-covar", type=float, default=1e-6)
    parser.add_argument("--sklearn-items", type=int, default=50_000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch
    from sklearn.mixture import GaussianMixture

    from cimc.cluster.gmm import _hard_stats, _m_step, diag_gmm_em
    from cimc.cluster.lloyd import lloyd_kmeans

    device, X, header = synthetic_set(args)
    print(f"{header}; scikit-learn's (N, K) float64 array at N: {len(X) * args.num_clusters * 8 / 1e9:.1f} GB")

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    start = time.perf_counter()
    init, _ = lloyd_kmeans(X, args.num_clusters, max_iter=10, device=device, init_sample=min(len(X), 20_000))
    sync()
    t_init = time.perf_counter() - start

    before = reset_peak_memory()
    start = time.perf_counter()
    _, info = diag_gmm_em(X, args.num_clusters, max_iter=args.iters, tol=0.0, reg_covar=args.reg_covar,
                          device=device, init_labels=init)
    sync()
    t_ours = (time.perf_counter() - start) / args.iters
    mem_ours = peak_above(before)
    gpu_peak = f", GPU peak {torch.cuda.max_memory_allocated() / 1e9:.2f} GB" if device.startswith("cuda") else ""

    # scikit-learn from the same parameters: the M-step of the same partition, computed on its own points.
    n_sk = len(X) if args.sklearn_items in (0, None) else min(max(args.sklearn_items, args.num_clusters), len(X))
    X_sk = X[:n_sk]
    start_gmm = _m_step(_hard_stats(torch.as_tensor(X_sk), torch.as_tensor(init[:n_sk]), args.num_clusters),
                        args.reg_covar)
    before = reset_peak_memory()
    start = time.perf_counter()
    model = GaussianMixture(args.num_clusters, covariance_type="diag", max_iter=args.iters, tol=0.0,
                            reg_covar=args.reg_covar, weights_init=start_gmm.weights.numpy(),
                            means_init=start_gmm.means.numpy(), precisions_init=1 / start_gmm.variances.numpy())
    model.fit(X_sk.astype(np.float64))
    t_sk = (time.perf_counter() - start) / max(model.n_iter_, 1) * (len(X) / n_sk)
    mem_sk = peak_above(before)

    print(f"\nk-means start (torch Lloyd, 10 iterations): {t_init:.1f} s\n")
    print("| | s / iteration at N | peak memory above start (GB) | mean log-likelihood / point |")
    print("|---|---|---|---|")
    print(f"| ours (torch, {device}) | {t_ours:.3f} | {mem_ours}{gpu_peak} | {info['mean_log_likelihood']:.4f} |")
    scaled = "" if n_sk == len(X) else f" ({n_sk:,} points, time scaled to N)"
    print(f"| scikit-learn{scaled} | {t_sk:.3f} | {mem_sk} | {model.lower_bound_:.4f} |")
    print(f"\nscikit-learn / ours per iteration: {t_sk / t_ours:.1f}x")


if __name__ == "__main__":
    main()
