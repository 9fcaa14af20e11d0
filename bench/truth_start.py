#!/usr/bin/env python
"""Does the objective keep the true partition? CIMC or IMSAT trained from the true speakers, beside its own start.

For each seed and ``--set`` row: the method at its defaults (plus the row's overrides) trained from its usual
start, and the same run with its network first fitted to the TRUE labels (``--fit-steps`` Adam steps of
cross-entropy, as ``bench/imsat_start.py`` does with k-means' labels; ACC 1.0 after them), then trained as usual.
Each fit gives ACC / NMI, its clusters' sizes (smallest, largest, H(sizes) in nats, log C when all are equal) and
the last epoch's loss. A run from the truth that ends far from it, with more even sizes, says the objective
itself (H(Y) at weight mu) pulls unequal speakers' clusters together; no start would keep them.

    OMP_NUM_THREADS=1 python bench/truth_start.py --ivectors .sweep/ms125/ivectors_train.npy \\
        --utt2spk .sweep/ms125/utt2spk --unbalanced 8,50 --method imsat --seeds 2 --set "" --set mu=2.0
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cluster_quality and imsat_start sit beside this file


def train(X: np.ndarray, y: np.ndarray, method: str, seed: int, overrides: tuple, from_truth: bool,
          fit_steps: int) -> dict:
    """ACC, NMI, sizes and last loss of ``method`` on l2-normalised ``X`` (N, D), from the true labels ``y`` (N,)
    (codes 0..C-1) if ``from_truth``."""
    from cluster_quality import cluster_sizes, method_config
    from imsat_start import fit_to_labels

    from cimc.cluster.trainer import Trainer, default_metrics

    trainer = Trainer(X, int(y.max()) + 1, method_config(method, seed, overrides))
    if from_truth:
        fit_to_labels(trainer, y, fit_steps, seed)
    result = trainer.run()
    labels = np.asarray(result.labels)
    return {**default_metrics(y, labels), "sizes": cluster_sizes(labels), "loss": result.history[-1]["loss"]}


def main() -> None:
    import torch
    from cluster_quality import load_ivector_set, size_entropy, size_range, unbalanced_subset

    from cimc.cluster.cimc import l2_normalise
    from cimc.config import parse_override

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ivectors", required=True)
    parser.add_argument("--utt2spk", required=True)
    parser.add_argument("--unbalanced", metavar="MIN,MAX", type=size_range,
                        help="cut the set to MIN..MAX utterances per speaker (as bench/cluster_quality.py does)")
    parser.add_argument("--unbalanced-draw", type=int, default=0, metavar="K", help="seed of the cut (default 0)")
    parser.add_argument("--method", default="imsat", choices=("cimc", "imsat"))
    parser.add_argument("--set", action="append", metavar="'KEY=VALUE ...'",
                        help="one row per --set: config overrides, space-separated ('' = the defaults)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--fit-steps", type=int, default=300, help="cross-entropy steps onto the true labels")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)

    X, y = load_ivector_set(args.ivectors, args.utt2spk)
    if args.unbalanced:
        keep = unbalanced_subset(y, *args.unbalanced, seed=args.unbalanced_draw)
        X, y = X[keep], y[keep]
    X, y = l2_normalise(X), np.unique(y, return_inverse=True)[1]
    truth = np.bincount(y)
    print(f"{args.ivectors}" + (f" cut to {args.unbalanced[0]}-{args.unbalanced[1]} (draw {args.unbalanced_draw})"
                                if args.unbalanced else "") +
          f": N={len(y)} C={len(truth)}; true sizes {truth.min()}-{truth.max()}, H(sizes) {size_entropy(truth):.3f}"
          f" (log C {np.log(len(truth)):.3f})\n")
    print("| method, overrides | seed | start | ACC / NMI | smallest-largest | H(sizes) | last loss |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in args.set or [""]:
        overrides = tuple(parse_override(o) for o in row.split())
        for seed in range(args.seeds):
            for start in ("own", "truth"):
                r = train(X, y, args.method, seed, overrides, start == "truth", args.fit_steps)
                print(f"| {args.method} {row or '(defaults)'} | {seed} | {start} | {r['acc']:.3f} / {r['nmi']:.3f} | "
                      f"{r['sizes'][-1]}-{r['sizes'][0]} | {size_entropy(r['sizes']):.3f} | {r['loss']:.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
