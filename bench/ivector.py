#!/usr/bin/env python
"""Throughput of Baum-Welch statistics + i-vector extraction: cimc's batched PyTorch path vs a
straightforward per-utterance numpy implementation of the same maths, in the same run.

Both start from front-end frames in memory (feature reading is stage 1's cost) and use the same
random UBM and T-matrix (Kaldi v1 sizes by default: 2048 Gaussians, 72-dim frames, 400-dim
i-vectors, 20-best Gaussian selection, posterior floor 0.025). The numpy baseline also precomputes
U_c = T_c^T T_c (without it each utterance costs ~47 GFLOP more); what differs is batching: one
(B, C) x (C, R(R+1)/2) product instead of B matrix-vector products over 650 MB, batched
Cholesky, and torch kernels (GPU when --device cuda).

    python bench/ivector.py                       # CPU, ~1-2 min, 1 thread
    python bench/ivector.py --threads 2 --utts 64 # sizes and threads by flags
    python bench/ivector.py --device cuda --utts 8192 --batch 512 --baseline-utts 0   # see gpu_ivector.sh

Prints a table: utterances/s of each, their ratio, the largest i-vector difference between them,
and the projected time for VoxCeleb2-dev's 1,092,009 utterances.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

VOXCELEB2_DEV_UTTS = 1_092_009


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", type=int, default=2048, help="UBM Gaussians C")
    p.add_argument("--feat-dim", type=int, default=72, help="frame dimension D (24 MFCC + deltas + delta-deltas)")
    p.add_argument("--ivector-dim", type=int, default=400, help="R")
    p.add_argument("--frames", type=int, default=800, help="voiced frames per utterance (8 s at 10 ms)")
    p.add_argument("--utts", type=int, default=96, help="utterances timed for cimc")
    p.add_argument("--baseline-utts", type=int, default=12, help="utterances timed for the numpy baseline (0: skip)")
    p.add_argument("--batch", type=int, default=32, help="cimc utterances per batch")
    p.add_argument("--gselect", type=int, default=20)
    p.add_argument("--min-post", type=float, default=0.025)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and numpy")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 matmuls on GPU, and report how far they move the i-vectors of one batch")
    p.add_argument("--full-cov", action="store_true",
                   help="full-covariance UBM (egs/voxceleb's setting); the numpy baseline is diagonal-only and is skipped")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy / torch load their BLAS
    import numpy as np
    import torch

    from cimc.ivector import extractor as ext
    from cimc.ivector.ubm import DiagGmm
    from cimc.utils import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    rng = np.random.default_rng(0)
    C, D, R = args.components, args.feat_dim, args.ivector_dim
    gmm = DiagGmm(torch.full((C,), 1.0 / C, dtype=torch.float64), torch.as_tensor(rng.normal(size=(C, D))),
                  torch.as_tensor(rng.uniform(0.5, 1.5, size=(C, D))))
    if args.full_cov:
        from cimc.ivector.full_ubm import FullGmm

        gmm = FullGmm.from_diag(gmm)
        args.baseline_utts = 0
    model = ext.IvectorExtractor.initialize(gmm, R, prior_offset=100.0, seed=0)
    model.projection[:, :, 1:] *= 0.05  # a trained-looking scale keeps the posterior well conditioned
    pool = [(gmm.means.numpy()[rng.integers(0, C, size=args.frames)] + rng.normal(size=(args.frames, D))).astype(np.float32)
            for _ in range(min(args.batch, 64))]
    utterances = [pool[i % len(pool)] for i in range(max(args.utts, args.baseline_utts))]

    gmm_dev, model_dev = gmm.to(device), model.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    model_dev.packed_u()
    sync()
    precompute_s = time.perf_counter() - start

    def ours(utts):
        out = []
        for i in range(0, len(utts), args.batch):
            counts, first = ext.baum_welch_stats(gmm_dev, utts[i : i + args.batch], args.gselect, args.min_post, 1.0, device)
            out.append(model_dev.extract(counts, first).cpu().numpy())
        sync()
        return np.concatenate(out)

    ours(utterances[: args.batch])  # warm-up (allocator, kernels)
    start = time.perf_counter()
    ours_vectors = ours(utterances[: args.utts])
    ours_rate = args.utts / (time.perf_counter() - start)

    tf32_note = ""
    if args.tf32:  # how far TF32 moves the i-vectors: the first batch again in float32 (U_c included)
        torch.backends.cuda.matmul.allow_tf32 = False
        gmm_dev, model_dev = gmm.to(device), model.to(device)  # a fresh U_c; ours() uses these
        exact = ours(utterances[: args.batch])
        torch.backends.cuda.matmul.allow_tf32 = True
        fast = ours_vectors[: len(exact)]
        cosine = (fast * exact).sum(1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(exact, axis=1))
        tf32_note = (f"TF32 vs float32 i-vectors of {len(exact)} utterances: cosine >= {cosine.min():.6f}, "
                     f"max |difference| / max |i-vector| {np.abs(fast - exact).max() / np.abs(exact).max():.2e}")
    rows = [(f"cimc batched torch{' (full-cov UBM)' if args.full_cov else ''}{' TF32' if args.tf32 else ''}", device, ours_rate)]
    max_diff = float("nan")
    if args.baseline_utts:
        baseline = NumpyBaseline(gmm, model, args.gselect, args.min_post)
        start = time.perf_counter()
        base_vectors = np.stack([baseline.ivector(u) for u in utterances[: args.baseline_utts]])
        base_rate = args.baseline_utts / (time.perf_counter() - start)
        rows.append(("numpy per utterance", "cpu", base_rate))
        max_diff = float(np.abs(base_vectors - ours_vectors[: args.baseline_utts]).max() / np.abs(base_vectors).max())

    print(f"\nC={C} D={D} R={R}, {args.frames} frames/utt, batch {args.batch}, {args.threads} CPU thread(s); "
          f"U_c precompute {precompute_s:.2f} s (once)")
    print("| implementation | device | utterances/s | VoxCeleb2-dev (1,092,009 utts) |")
    print("| --- | --- | --- | --- |")
    for name, dev, rate in rows:
        print(f"| {name} | {dev} | {rate:.2f} | {VOXCELEB2_DEV_UTTS / rate / 60:.1f} min |")
    if len(rows) == 2:
        print(f"\nspeed-up cimc / numpy: {rows[0][2] / rows[1][2]:.1f}x; max |difference| / max |i-vector|: {max_diff:.2e}")
    if tf32_note:
        print(f"\n{tf32_note}")
    sys.stdout.flush()


class NumpyBaseline:
    """The direct per-utterance implementation: float32 numpy, one utterance at a time."""

    def __init__(self, gmm, model, gselect: int, min_post: float) -> None:
        import numpy as np

        w, mu, var = (t.numpy() for t in (gmm.weights, gmm.means, gmm.variances))
        self.prec = (1 / var).astype(np.float32)
        self.mu_prec = (mu / var).astype(np.float32)
        self.const = (np.log(w) - 0.5 * (mu.shape[1] * np.log(2 * np.pi) + np.log(var).sum(1) + (mu**2 / var).sum(1))).astype(np.float32)
        self.inv_std = model.whiten.numpy().astype(np.float32)  # diagonal UBM: 1 / sigma
        self.t_flat = model.projection.numpy().reshape(-1, model.ivector_dim).astype(np.float32)
        self.u_packed = model.packed_u().numpy().astype(np.float32)
        self.rows, self.cols = np.triu_indices(model.ivector_dim)
        self.offset, self.gselect, self.min_post = model.prior_offset, gselect, min_post

    def ivector(self, x):
        import numpy as np

        ll = self.const + x @ self.mu_prec.T - 0.5 * (x * x) @ self.prec.T
        top = np.argpartition(-ll, self.gselect, axis=1)[:, : self.gselect]
        top_ll = np.take_along_axis(ll, top, 1)
        post = np.exp(top_ll - top_ll.max(1, keepdims=True))
        post /= post.sum(1, keepdims=True)
        post[(post < self.min_post) & (post < post.max(1, keepdims=True))] = 0
        post /= post.sum(1, keepdims=True)
        dense = np.zeros_like(ll)
        np.put_along_axis(dense, top, post, 1)
        counts, first = dense.sum(0), dense.T @ x
        linear = (first * self.inv_std).reshape(-1) @ self.t_flat
        linear[0] += self.offset
        packed = counts @ self.u_packed
        precision = np.zeros((len(linear), len(linear)), np.float32)
        precision[self.rows, self.cols] = packed
        precision[self.cols, self.rows] = packed
        precision[np.diag_indices(len(linear))] += 1
        w = np.linalg.solve(precision, linear)
        w[0] -= self.offset
        return w


if __name__ == "__main__":
    main()
