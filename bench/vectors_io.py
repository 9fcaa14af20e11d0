#!/usr/bin/env python
"""Reading vectors from a Kaldi scp: cimc.vectors.load_vectors vs kaldiio's random-access loader, same file.

load_vectors reads the scp with kaldiio's sequential reader (each ark opened once, entries checked and named on
error); the baseline is ``kaldiio.load_scp`` (one open and seek per utterance), stacked into an (N, D) array, as
load_vectors did before. Both read the same temporary ark/scp of N random float32 vectors; prints seconds for
each (best of ``--repeats``), the ratio and whether the arrays are equal.

    OMP_NUM_THREADS=1 python bench/vectors_io.py --num-items 100000 --dim 400
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import kaldiio

    from cimc.vectors import load_vectors, save_vectors

    x = np.random.default_rng(0).standard_normal((args.num_items, args.dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        save_vectors(Path(tmp) / "iv", [f"utt{i:07d}" for i in range(len(x))], x, kaldi=True)
        scp = Path(tmp) / "iv.scp"

        def baseline() -> np.ndarray:
            items = list(kaldiio.load_scp(str(scp)).items())
            return np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for _, v in items])

        base_s, base_x = best_time(baseline, args.repeats)
        ours_s, (_, ours_x) = best_time(lambda: load_vectors(scp), args.repeats)
    print(f"| reader | seconds ({args.num_items:,} x {args.dim}) |\n| --- | --- |\n"
          f"| kaldiio.load_scp (random access) | {base_s:.2f} |\n| cimc load_vectors (sequential) | {ours_s:.2f} |")
    print(f"ratio {base_s / ours_s:.2f}x; same arrays: {np.array_equal(base_x, ours_x)}")


if __name__ == "__main__":
    main()
