#!/usr/bin/env python
"""Clustering quality: CIMC, IMSAT, IMSAT+mixup and the classical baselines, ACC and NMI over seeds.

Every method is built with ``make_clusterer(name)`` at its DEFAULT config (the point: one set of
defaults must work from 2,000 to 1M points), on:
  - scikit-learn's bundled digits (1,797 x 64, 10 classes), rows l2-normalised;
  - optionally the mini_synth i-vectors (``--ivectors egs/mini_synth/exp/ivector/ivectors_train.npy
    --utt2spk egs/mini_synth/data/kaldi/train/utt2spk``), C = number of speakers.
Prints one Markdown table (mean ± std over ``--seeds`` seeds) and writes it to ``--output`` if given.

    OMP_NUM_THREADS=1 python bench/cluster_quality.py --seeds 5
    OMP_NUM_THREADS=1 python bench/cluster_quality.py --seeds 2 --methods cimc,imsat,kmeans --set hidden_dim=256
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

DEFAULT_METHODS = "cimc,imsat,imsat-mixup,kmeans,ahc,spectral,gmm"
NEURAL = {"cimc", "imsat", "imsat-mixup"}


def load_digits_set() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def load_ivector_set(vectors: str, utt2spk: str) -> tuple[np.ndarray, np.ndarray]:
    from cimc.cluster.run import reference_for
    from cimc.vectors import load_vectors

    ids, X = load_vectors(vectors)
    return X.astype(np.float32), reference_for(ids, utt2spk)


def score(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from cimc.metrics.clustering import cluster_accuracy, contingency_table, information_scores

    table = contingency_table(true, pred)
    return {"acc": cluster_accuracy(table), "nmi": information_scores(table)["nmi"]}


def run_method(name: str, X: np.ndarray, n_clusters: int, seed: int, overrides: list[str]) -> tuple[np.ndarray, float]:
    """Labels of method ``name`` at its default config with ``seed`` (and ``--set`` overrides for neural ones)."""
    from cimc.cluster.base import config_class, make_clusterer
    from cimc.config import from_dict, parse_override, to_dict

    cls = config_class(name)
    config = cls() if cls is not None else None
    if config is not None:
        values = to_dict(config)
        if name in NEURAL:
            values.update(dict(parse_override(o) for o in overrides))
            values["progress"] = False
        if "seed" in values:
            values["seed"] = seed
        config = from_dict(cls, values, where=name)
    start = time.perf_counter()
    labels = make_clusterer(name, config).fit_predict(X, n_clusters)
    return np.asarray(labels), time.perf_counter() - start


def table(rows: list[dict]) -> str:
    lines = ["| data | method | ACC | NMI | clusters used | seconds/run |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['method']} | {r['acc'].mean():.3f} ± {r['acc'].std():.3f} | "
                     f"{r['nmi'].mean():.3f} ± {r['nmi'].std():.3f} | {r['used']:.1f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--ivectors", help="vectors file (.npy + .ids) of the mini_synth training set")
    parser.add_argument("--utt2spk", help="utt2spk giving the true speaker of each i-vector")
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a CIMC/IMSAT config field (e.g. hidden_dim=256 for a quick look)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    import cimc.cluster  # noqa: F401  (registers every method)

    torch.set_num_threads(args.threads)
    sets = {} if args.no_digits else {"digits": load_digits_set()}
    if args.ivectors:
        if not args.utt2spk:
            parser.error("--ivectors needs --utt2spk")
        sets["mini_synth i-vectors"] = load_ivector_set(args.ivectors, args.utt2spk)
    rows = []
    for data_name, (X, y) in sets.items():
        n_clusters = len(np.unique(y))
        for method in args.methods.split(","):
            acc, nmi, used, seconds = [], [], [], 0.0
            for seed in range(args.seeds):
                labels, took = run_method(method, X, n_clusters, seed, args.set)
                s = score(y, labels)
                acc.append(s["acc"]), nmi.append(s["nmi"]), used.append(len(np.unique(labels)))
                seconds += took
                print(f"{data_name} {method} seed {seed}: ACC {s['acc']:.3f} NMI {s['nmi']:.3f} ({took:.0f} s)",
                      flush=True)
            rows.append({"data": f"{data_name} (N={len(y)}, C={n_clusters})", "method": method,
                         "acc": np.array(acc), "nmi": np.array(nmi), "used": float(np.mean(used)),
                         "seconds": seconds / args.seeds})
    text = table(rows)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
