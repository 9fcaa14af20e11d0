#!/usr/bin/env python
"""Peak memory of `cimc cluster-metrics --features` at VoxCeleb2 scale: ours vs the copy-then-normalise baseline.

Ours (cimc.cluster.run.evaluate_label_files) reorders the vectors to the joined utterances only when they are not
already in that order, and l2-normalises in place. The baseline is what it did before: a reordered copy
``vectors[order]``, then a normalised copy ``X / np.linalg.norm(X, axis=1, keepdims=True)``. Each variant runs in
its own process (peak RSS from getrusage), on 1,092,009 x 400 float32 vectors whose ids are in sorted order
(a sorted Kaldi scp) and in reverse order; 5,994 reference and 5,000 predicted labels. Prints one table with the
ratio and the feature metrics of each run (they must agree).

    OMP_NUM_THREADS=1 python bench/metrics_memory.py [--num-items 1092009] [--dim 400]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_set(folder: Path, n: int, dim: int) -> None:
    from cimc.vectors import save_vectors

    rng = np.random.default_rng(0)
    ids = [f"u{i:07d}" for i in range(n)]
    save_vectors(folder / "x", ids, rng.standard_normal((n, dim), dtype=np.float32))
    (folder / "ref").write_text("".join(f"{u} s{s}\n" for u, s in zip(ids, rng.integers(0, 5994, n))))
    (folder / "hyp").write_text("".join(f"{u} c{h}\n" for u, h in zip(ids, rng.integers(0, 5000, n))))
    (folder / "x.ids.sorted").write_text((folder / "x.ids").read_text())
    (folder / "x.ids.reversed").write_text("".join(f"{u}\n" for u in reversed(ids)))


def child(folder: Path, variant: str) -> None:
    """One measurement, in a fresh process: prints a JSON line."""
    from cimc.cluster.labels import join_labels, read_label_file
    from cimc.cluster.run import evaluate_label_files
    from cimc.metrics.clustering import clustering_metrics
    from cimc.vectors import load_vectors

    start = time.perf_counter()
    if variant == "ours":
        metrics = evaluate_label_files(folder / "ref", folder / "hyp", folder / "x.npy")
    else:  # the previous evaluate_label_files body
        utts, ref, hyp = join_labels(read_label_file(folder / "ref"), read_label_file(folder / "hyp"))
        ids, vectors = load_vectors(folder / "x.npy")
        row = {u: i for i, u in enumerate(ids)}
        X = vectors[[row[u] for u in utts]]
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        metrics = clustering_metrics(ref, hyp, X)
    print(json.dumps({"seconds": time.perf_counter() - start,
                      "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      **{k: metrics[k] for k in ("silhouette", "calinski_harabasz", "davies_bouldin")}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=int, default=1_092_009)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_set(folder, args.num_items, args.dim)
        print("| ids | baseline peak GB (s) | ours peak GB (s) | ratio | same metrics |")
        print("| --- | --- | --- | --- | --- |")
        for order in ("sorted", "reversed"):
            (folder / "x.ids").write_text((folder / f"x.ids.{order}").read_text())
            runs = {v: json.loads(subprocess.run([sys.executable, __file__, "--child", tmp, v], check=True,
                                                 capture_output=True, text=True).stdout.splitlines()[-1])
                    for v in ("baseline", "ours")}
            b, o = runs["baseline"], runs["ours"]
            same = all(np.isclose(b[k], o[k], rtol=1e-6) for k in ("silhouette", "calinski_harabasz", "davies_bouldin"))
            print(f"| {order} | {b['peak_gb']:.2f} ({b['seconds']:.1f}) | {o['peak_gb']:.2f} ({o['seconds']:.1f}) | "
                  f"{b['peak_gb'] / o['peak_gb']:.1f}x | {same} |")


if __name__ == "__main__":
    main()
