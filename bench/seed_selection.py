#!/usr/bin/env python
"""Does the final training loss pick the better seed? Restarts chosen by loss against one fit.

k-means keeps the best of several starts by its own objective (inertia). The same could be done for CIMC and
IMSAT: train k seeds and keep the fit whose final loss is lowest. That helps only if the loss ranks the fits
as ACC does. For each method and data set this fits ``--seeds`` seeds at the defaults and reports:

  - the Spearman rank correlation of the final loss (mean of the last tenth of the epochs; the term weights are
    constant there) with ACC and with NMI: negative means a lower loss goes with a better partition;
  - "best of k by loss": the expected ACC / NMI of the lowest-loss fit among k seeds drawn from the ``--seeds``
    run (exact over all k-subsets), against one fit (the baseline, k = 1).

    OMP_NUM_THREADS=1 python bench/seed_selection.py --seeds 10 --jobs 2 \\
        --ivectors .sweep/ms50/ivectors_train.npy --utt2spk .sweep/ms50/utt2spk \\
        --records bench/results/seed_selection_fits.jsonl --output bench/results/seed_selection.md
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from math import comb
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_quality import _init_worker, load_digits_set, load_ivector_set, method_config, read_records, score  # noqa: E402

TAIL = 10  # the final loss is the mean over the last 1 / TAIL of the epochs


def fit(task: tuple[str, str, int, np.ndarray, np.ndarray]) -> dict:
    """One fit at the defaults: ACC / NMI, the final loss and VAT term, seconds (in a worker: one thread)."""
    data, method, seed, X, y = task
    from cimc.cluster.base import make_clusterer

    clusterer = make_clusterer(method, method_config(method, seed))
    start = time.perf_counter()
    labels = clusterer.fit_predict(X, len(np.unique(y)))
    tail = clusterer.history[-max(1, len(clusterer.history) // TAIL):]
    return {"data": data, "variant": method, "seed": seed, **score(y, labels),
            "final_loss": float(np.mean([r["loss"] for r in tail])),
            "final_vat": float(np.mean([r["vat"] for r in tail])), "seconds": time.perf_counter() - start}


def best_of_k(losses: np.ndarray, values: np.ndarray, k: int) -> float:
    """Expected ``values`` of the lowest-loss fit among k of the n fits, drawn without replacement; (n,) inputs.

    Ranked by loss, the fit at rank i (0 = lowest) is the lowest of a k-subset when the other k - 1 members come
    from the n - 1 - i fits ranked after it: C(n - 1 - i, k - 1) of the C(n, k) subsets.
    """
    n = len(losses)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the number of fits {n}")
    order = np.argsort(losses, kind="stable")
    weights = np.array([comb(n - 1 - i, k - 1) for i in range(n)], dtype=float) / comb(n, k)
    return float(np.dot(weights, np.asarray(values, dtype=float)[order]))


def summary(records: list[dict], ks: tuple[int, ...]) -> str:
    """One Markdown row per (data, method): correlations and best of k by loss against one fit."""
    from scipy.stats import spearmanr

    head = ["data", "method", "seeds", "rho(loss, ACC)", "rho(loss, NMI)"] + [f"best of {k} by loss" for k in ks]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for data, method in dict.fromkeys((r["data"], r["variant"]) for r in records):
        fits = [r for r in records if r["data"] == data and r["variant"] == method]
        loss = np.array([r["final_loss"] for r in fits])
        acc, nmi = (np.array([r[m] for r in fits]) for m in ("acc", "nmi"))
        rho = [f"{spearmanr(loss, v)[0]:+.2f}" if len(fits) > 2 else "" for v in (acc, nmi)]
        cells = [data, method, str(len(fits)), *rho]
        cells += [f"{best_of_k(loss, acc, k):.3f} / {best_of_k(loss, nmi, k):.3f}" if k <= len(fits) else ""
                  for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--methods", default="cimc,imsat")
    parser.add_argument("--ivectors", action="append", default=[], help="vectors (.npy + .ids), repeatable")
    parser.add_argument("--utt2spk", action="append", default=[], help="true speakers, one per --ivectors")
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--best-of", default="2,3,5", help="comma-separated k")
    parser.add_argument("--jobs", type=int, default=1, help="fits at a time (worker processes)")
    parser.add_argument("--records", type=Path, help="JSON lines: append each fit, skip fits already there")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if len(args.ivectors) != len(args.utt2spk):
        parser.error("give one --utt2spk for each --ivectors")
    named = [] if args.no_digits else [("digits", load_digits_set())]
    named += [(Path(v).parent.name or v, load_ivector_set(v, u)) for v, u in zip(args.ivectors, args.utt2spk)]
    sets = {f"{name} (N={len(y)}, C={len(np.unique(y))})": (X, y) for name, (X, y) in named}

    recorded = read_records(args.records)  # the same JSON lines as cluster_quality's, plus the final loss
    records = list(recorded.values())
    tasks = [(d, m, s, *sets[d]) for s in range(args.seeds) for d in sets for m in args.methods.split(",")
             if (d, m, s) not in recorded]
    print(f"{len(records)} fits from {args.records}, {len(tasks)} to run", flush=True)
    import concurrent.futures as cf
    import multiprocessing

    with cf.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                initializer=_init_worker, initargs=(1,)) as pool:
        for r in pool.map(fit, tasks):
            print(f"{r['data']} {r['variant']} seed {r['seed']}: ACC {r['acc']:.3f} NMI {r['nmi']:.3f} "
                  f"loss {r['final_loss']:.4f} ({r['seconds']:.0f} s)", flush=True)
            records.append(r)
            if args.records:
                with args.records.open("a") as f:
                    f.write(json.dumps(r) + "\n")
    wanted = [r for r in records if r["data"] in sets and r["variant"] in args.methods.split(",")
              and r["seed"] < args.seeds]
    ks = tuple(dict.fromkeys((1, *(int(k) for k in args.best_of.split(",")))))
    text = ("ACC / NMI; best of 1 is one fit (the baseline). rho: Spearman rank correlation over the seeds "
            "(negative: a lower final loss goes with a better partition).\n\n" + summary(wanted, ks))
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
