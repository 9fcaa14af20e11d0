#!/usr/bin/env python
"""Finding rows with NaN/inf: cimc.vectors.nonfinite_rows vs numpy's elementwise mask, same matrix, same run.

nonfinite_rows sums each float32 row in float64 (finite exactly when every value is) instead of building the
(N, D) boolean mask of ``~np.isfinite(X).all(axis=1)``, the check load_vectors, CIMC, the baselines and i-vector
extraction each made before. Prints seconds for both (best of ``--repeats``), the ratio and whether they agree,
on N x D standard-normal float32 rows with a few NaN / inf planted.

    OMP_NUM_THREADS=1 python bench/nonfinite_rows.py --num-items 1092009 --dim 400
"""
from __future__ import annotations

import argparse

import numpy as np

from vectors_io import best_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=int, default=1_092_009)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from cimc.vectors import nonfinite_rows

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.num_items, args.dim), dtype=np.float32)
    X[rng.integers(0, args.num_items, 5), rng.integers(0, args.dim, 5)] = [np.nan, np.inf, -np.inf, np.nan, np.inf]
    ours_s, ours = best_time(lambda: nonfinite_rows(X), args.repeats)
    mask_s, mask = best_time(lambda: np.flatnonzero(~np.isfinite(X).all(axis=1)), args.repeats)
    print(f"| N x D | nonfinite_rows (s) | isfinite mask (s) | ratio | same rows |")
    print(f"| --- | --- | --- | --- | --- |")
    print(f"| {args.num_items:,} x {args.dim} | {ours_s:.3f} | {mask_s:.3f} | {mask_s / ours_s:.1f}x | "
          f"{np.array_equal(ours, mask)} |")


if __name__ == "__main__":
    main()
