#!/usr/bin/env python
"""CIMC training speed at the paper's size, and (``--full-run``) the paper's whole run timed end to end.

Step mode (default): ms per optimiser step of IMSAT alone and of CIMC (IMSAT + SupCon + mixup), same
process, same random l2-normalised data, at batch B, input d, width S, for each C in ``--clusters``
(paper: B 10,240, d 400, S 1200, C 5,000 and 10,000). The first ``--warmup`` steps are not timed.
SupCon is forced on from step 0 (no warm-up) so its cost is in every timed step; the "CIMC" row times it
masked to the confident points, as in the first 70 % of a run, the next row over every point, as after.
On a CPU use few steps; on a GPU precision auto means bf16 autocast. Also runs bench/metrics_speed.py (the metrics at
1.09M labels vs scikit-learn) when it is there and ``--metrics`` is given.

Full-run mode: ``train_cimc`` on N synthetic 400-d "i-vectors" (Gaussian speaker means + noise),
C clusters, the paper's 150 epochs: k-NN radius + training + prediction, wall seconds, then ACC / NMI
against the synthetic speakers, the highest ACC C clusters allow, and when the predictions left the
uniform start ("moves": epoch-mean H(Y|X) < 0.9 log C) and became confident (< 0.1 log C). With ``--kmeans``,
one-start k-means on the same set instead, recorded the same way (the reference for bench/cpu_paper_proxy.sh).

``--noise`` is the within-speaker std (speaker means have std 1 per dimension). At 1.09M x 400 and 5,994
speakers, 0.8 (the runs logged before 2026-12-02) puts every point's 10 nearest neighbours in its own
speaker: CIMC reached ACC 0.819 of the 0.834 that 5,000 clusters allow, too easy to tell settings apart.
The default, 2.2, matches the mini_synth 2,000 / 5,000 i-vector sets (72-73 % of the variance within
speakers there, 82 % here; 88 % of the 10 nearest neighbours the same speaker, 92-97 % there); 2.5 (57 %)
is near the 200-speaker set (63 %). ``--write-synthetic DIR`` saves a set for bench/cluster_quality.py;
with ``--fit-to DIR`` it is a Gaussian set with the between- and within-speaker covariances of DIR's i-vectors.

    OMP_NUM_THREADS=2 python bench/cluster_speed.py --steps 1 --warmup 0            # CPU: minutes
    python bench/cluster_speed.py --steps 20                                        # GPU
    python bench/cluster_speed.py --full-run --num-items 1092009 --clusters 5000    # GPU: the paper's run
    python bench/cluster_speed.py --write-synthetic .sweep/syn1.6 --num-items 2000 --dim 100 --speakers 40 --noise 1.6
    python bench/cluster_speed.py --neighbour-stats --ivectors .sweep/ms50/ivectors_train.npy --utt2spk .sweep/ms50/utt2spk
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def synthetic_ivectors(n: int, dim: int, n_speakers: int, seed: int = 0,
                       noise: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 unit vectors around ``n_speakers`` random N(0, I) means plus N(0, noise^2 I), and
    their (n,) speaker labels (speakers drawn uniformly, so sizes are about equal)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n_speakers, dim)).astype(np.float32)
    speakers = rng.integers(0, n_speakers, n)
    X = means[speakers] + noise * rng.standard_normal((n, dim), dtype=np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True), speakers


def two_covariance_set(X: np.ndarray, speakers: np.ndarray, n: int | None = None, n_speakers: int | None = None,
                       seed: int = 0, within_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian set fitted to real vectors (the two-covariance model behind PLDA): the l2-normalised (N, D) ``X``'s
    speaker means give the between-speaker covariance, the deviations from them the within-speaker one; new
    speakers are drawn from N(mean, between), their points from N(speaker, within_scale^2 * within), then
    l2-normalised. ``within_scale`` > 1 makes a copy with few speakers as crowded as one with many.
    Returns (n, D) float32 and (n,) speakers (by default as many points and speakers as the source).
    The draw factors the covariances in LAPACK, whose rounding follows the BLAS thread count: under another
    OMP_NUM_THREADS the same arguments give another set (the summaries' ``data_digest`` tells)."""
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    _, inverse = np.unique(speakers, return_inverse=True)
    means = np.stack([X[inverse == s].mean(0) for s in range(inverse.max() + 1)])
    between, within = np.cov((means - X.mean(0)).T), np.cov((X - means[inverse]).T)
    n, n_speakers = n or len(X), n_speakers or len(means)
    rng = np.random.default_rng(seed)
    new_means = rng.multivariate_normal(X.mean(0), between, n_speakers)
    new_speakers = rng.integers(0, n_speakers, n)
    Z = new_means[new_speakers] + within_scale * rng.multivariate_normal(np.zeros(X.shape[1]), within, n)
    return (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32), new_speakers


def acc_ceiling(truth: np.ndarray, n_clusters: int) -> float:
    """The highest ACC any labelling into ``n_clusters`` clusters can reach: with fewer clusters than classes
    the Hungarian match covers at most the ``n_clusters`` largest classes."""
    sizes = np.sort(np.bincount(truth))[::-1]
    return float(sizes[:n_clusters].sum() / len(truth))


def labelling_scores(truth: np.ndarray, labels: np.ndarray, n_clusters: int) -> dict[str, float | int]:
    """A run's (N,) labels against the (N,) speakers: ACC, NMI, the ACC ``n_clusters`` allow, clusters used."""
    from cimc.metrics.clustering import cluster_accuracy, contingency_table, information_scores

    table = contingency_table(truth, labels)
    return {"acc": cluster_accuracy(table), "nmi": information_scores(table)["nmi"],
            "acc_ceiling": acc_ceiling(truth, n_clusters), "used": len(np.unique(labels))}


def commitment_steps(history: list[dict], n_clusters: int) -> dict[str, int | None]:
    """Steps (end of the first epoch) at which the epoch-mean H(Y|X) fell below 0.9 log C ("moves": the
    predictions leave the uniform start) and below 0.1 log C ("confident": where SupCon's gate can open)."""
    log_c = math.log(n_clusters)
    return {name: next((int(r["step"]) for r in history if r.get("H(Y|X)", math.inf) < fraction * log_c), None)
            for name, fraction in (("moves", 0.9), ("confident", 0.1))}


def neighbour_stats(X: np.ndarray, speakers: np.ndarray, queries: int = 1000, k: int = 10,
                    seed: int = 0, chunk: int = 250) -> dict[str, float]:
    """How hard a set of (N, D) vectors is to cluster by speaker, after the l2 norm the trainer applies: the share
    of the variance within speakers, and, for ``queries`` sampled points searched against all N (exact), the
    fraction whose nearest neighbour is the same speaker and the mean same-speaker fraction of the ``k`` nearest."""
    from cimc.ivector.backend import class_scatter

    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    _, inverse = np.unique(speakers, return_inverse=True)
    _, within_cov, between_cov = class_scatter(X, inverse)  # per sample: within + between = total
    within = float(np.trace(within_cov) / (np.trace(within_cov) + np.trace(between_cov)))
    picked = np.random.default_rng(seed).choice(len(X), min(queries, len(X)), replace=False)
    first, share = [], []
    for start in range(0, len(picked), chunk):
        rows = picked[start:start + chunk]
        similarity = X[rows] @ X.T
        similarity[np.arange(len(rows)), rows] = -np.inf  # not its own neighbour
        nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(similarity, nearest, 1), axis=1)
        same = inverse[np.take_along_axis(nearest, order, 1)] == inverse[rows][:, None]
        first.append(same[:, 0])
        share.append(same.mean(1))
    return {"within": within, "nn1": float(np.concatenate(first).mean()), f"nn{k}": float(np.concatenate(share).mean())}


def load_labelled(vectors: Path, utt2spk: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) vectors and their (N,) speakers from a vectors file and a Kaldi utt2spk."""
    from cimc.cluster.labels import read_label_file
    from cimc.vectors import load_vectors

    ids, X = load_vectors(vectors)
    speaker_of = read_label_file(utt2spk)
    return X, np.array([speaker_of[u] for u in ids])


def make_set(args) -> tuple[np.ndarray, np.ndarray, str | float]:
    """The set the arguments describe, (N, D) float32 and (N,) speakers, and how it was made: ``--fit-to DIR``'s
    two-covariance set ("fitted to DIR"), or isotropic noise (``--noise``); ``--num-items`` and ``--speakers``
    points and speakers (see :func:`resolve_size`)."""
    if args.fit_to:
        X, speakers = two_covariance_set(*load_labelled(args.fit_to / "ivectors_train.npy", args.fit_to / "utt2spk"),
                                         n=args.num_items, n_speakers=args.speakers, within_scale=args.within_scale)
        scaled = f", within-speaker std x {args.within_scale:g}" if args.within_scale != 1 else ""
        return X, speakers, f"fitted to {args.fit_to}{scaled}"
    return *synthetic_ivectors(args.num_items, args.dim, args.speakers, noise=args.noise), args.noise


def resolve_size(args) -> None:
    """Fill in ``--num-items`` / ``--speakers`` left unset: the source's sizes for ``--write-synthetic`` with
    ``--fit-to`` (None: two_covariance_set takes DIR's), else the paper's 1,092,009 and 5,994."""
    keep_source = args.write_synthetic is not None and args.fit_to is not None
    if args.num_items is None and not keep_source:
        args.num_items = 1_092_009
    if args.speakers is None and not keep_source:
        args.speakers = 5994


def write_synthetic(directory: Path, X: np.ndarray, speakers: np.ndarray) -> None:
    """``ivectors_train.npy`` + ``.ids`` and a Kaldi ``utt2spk`` in ``directory``: bench/cluster_quality.py's input."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = [f"spk{s:05d}-{i:07d}" for i, s in enumerate(speakers)]
    np.save(directory / "ivectors_train.npy", X.astype(np.float32))
    (directory / "ivectors_train.ids").write_text("".join(f"{u}\n" for u in ids))
    (directory / "utt2spk").write_text("".join(f"{u} spk{s:05d}\n" for u, s in zip(ids, speakers)))


VARIANTS = {  # name -> (losses, extra CimcConfig fields); the last row is the baseline of the ratio column
    "IMSAT": (("imsat",), {}),
    "IMSAT + mixup": (("imsat", "mixup"), {}),
    "CIMC": (("imsat", "supcon", "mixup"), {}),  # SupCon masked to the confident points (the first 70 % of a run)
    "CIMC, SupCon over every point (the last 30 %)": (("imsat", "supcon", "mixup"), {"supcon_min_confidence": 0.0}),
    "CIMC, eager loss math": (("imsat", "supcon", "mixup"), {"compile_losses": "never"}),
    "CIMC as first written (eager, SupCon in 1024-anchor chunks)": (("imsat", "supcon", "mixup"),
                                                                     {"compile_losses": "never", "supcon_chunk": 1024}),
}


def ms_per_step(losses: tuple[str, ...], extra: dict, X: np.ndarray, n_clusters: int, args) -> float:
    """Mean wall ms of ``args.steps`` training steps after ``args.warmup`` untimed ones."""
    import torch

    from cimc.cluster.cimc import CimcConfig
    from cimc.cluster.trainer import Trainer

    config = CimcConfig(losses=losses, hidden_dim=args.hidden, batch_size=args.batch, supcon_warmup=0.0,
                        supcon_start_entropy=1.0, device=args.device, precision=args.precision, progress=False,
                        **extra)
    trainer = Trainer(X, n_clusters, config)
    sync = torch.cuda.synchronize if trainer.device.startswith("cuda") else (lambda: None)
    batch = torch.arange(args.batch, device=trainer.device)
    for _ in range(args.warmup):
        trainer.train_step(batch)
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(batch)
    sync()
    return 1000 * (time.perf_counter() - start) / args.steps


def step_mode(args) -> None:
    import torch

    from cimc.utils import resolve_device

    device = resolve_device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.startswith('cuda') else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, precision {args.precision}, "
          f"B {args.batch}, d {args.dim}, S {args.hidden}, {args.steps} timed steps after {args.warmup}")
    X, _ = synthetic_ivectors(args.batch, args.dim, 1000)
    steps = 150 * (1_092_009 // args.batch)
    baseline = list(VARIANTS)[-1]
    print(f"| C | losses | ms/step | vs {baseline} | 150 epochs of 1.09M ({steps} steps) |")
    print("| --- | --- | --- | --- | --- |")
    for c in args.clusters:
        times = {name: ms_per_step(losses, extra, X, c, args) for name, (losses, extra) in VARIANTS.items()}
        for name, ms in times.items():
            print(f"| {c} | {name} | {ms:.1f} | {times[baseline] / ms:.2f}x | {ms * steps / 60000:.1f} min |",
                  flush=True)


def full_run(args) -> None:
    """The paper's run on synthetic data, timed by phase: k-NN radii, training, prediction, metrics."""
    import torch

    from cimc.cluster.cimc import CimcConfig, l2_normalise
    from cimc.cluster.trainer import Trainer
    from cimc.config import load_config
    from cimc.utils import array_digest

    X, truth, made = make_set(args)  # fitted to real i-vectors: their dimension, not --dim
    config = dataclasses.replace(load_config(CimcConfig, None, args.set), hidden_dim=args.hidden,
                                 batch_size=args.batch, epochs=args.epochs, device=args.device,
                                 precision=args.precision, min_steps=args.min_steps, progress=False)
    # One timestamped line per epoch (the trainer's debug log) instead of progress bars: readable in a log file.
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)
    logging.getLogger("cimc.cluster.trainer").setLevel(logging.DEBUG)
    sync = torch.cuda.synchronize if torch.cuda.is_available() and config.device != "cpu" else (lambda: None)
    start = time.perf_counter()
    trainer = Trainer(l2_normalise(X), args.clusters[0], config)
    sync()
    setup = time.perf_counter() - start
    result = trainer.run()
    sync()
    total = time.perf_counter() - start
    steps = trainer.schedule.total_steps
    print(f"full CIMC run: N {args.num_items}, d {X.shape[1]}, noise {made}, S {args.hidden}, "
          f"C {args.clusters[0]}, "
          f"{trainer.schedule.epochs} epochs of {trainer.schedule.steps_per_epoch} steps (B {trainer.schedule.batch_size}), "
          f"device {trainer.device}" + (f", set {' '.join(args.set)}" if args.set else ""))
    print(f"| phase | seconds |\n| --- | --- |\n| data to device + k-NN radii | {setup:.1f} |\n"
          f"| training + prediction ({steps} steps, {1000 * (total - setup) / steps:.1f} ms/step) | {total - setup:.1f} |\n"
          f"| whole run | {total:.1f} ({total / 60:.2f} min) |")
    summary = {"set": " ".join(args.set) or "defaults", "noise": made,
               **labelling_scores(truth, result.labels, args.clusters[0]), "steps": steps,
               **commitment_steps(result.history, args.clusters[0]), "seconds": total,
               "data_digest": array_digest(X)[:16]}
    print(f"{summary['used']} of {args.clusters[0]} clusters used; vs the {args.speakers} synthetic speakers: "
          f"ACC {summary['acc']:.3f} (at most {summary['acc_ceiling']:.3f} with {args.clusters[0]} clusters), "
          f"NMI {summary['nmi']:.3f}; predictions moved at step {summary['moves'] or '-'}, confident at step "
          f"{summary['confident'] or '-'} (epoch-mean H(Y|X) < 0.9 and < 0.1 log C)", flush=True)
    append_summary(args.summary, summary)


def append_summary(path: Path | None, summary: dict) -> None:
    """Add one run's results as a JSON line to ``path`` (``--summary``; None: nowhere)."""
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(summary) + "\n")


def kmeans_run(args) -> None:
    """The ``kmeans`` method (one k-means++ start, seed 0) on the set ``--full-run`` would train on: the reference a
    proxy's CIMC runs are read against, recorded as a ``--summary`` line like theirs. ``--set`` overrides
    KMeansConfig fields here: at 1.09M x 5,000 on a CPU, ``--set backend=torch --set init_sample=200000`` (scikit-learn's
    k-means++ on all points would take hours; this took 48 min on 2 cores)."""
    from cimc.cluster.base import make_clusterer
    from cimc.cluster.baselines import KMeansConfig
    from cimc.config import load_config
    from cimc.utils import array_digest

    config = dataclasses.replace(load_config(KMeansConfig, None, args.set), device=args.device)
    X, truth, made = make_set(args)
    start = time.perf_counter()
    labels = make_clusterer("kmeans", config).fit_predict(X, args.clusters[0])
    name = f"k-means ({' '.join(args.set)})" if args.set else "k-means (one start)"
    summary = {"set": name, "noise": made, **labelling_scores(truth, labels, args.clusters[0]),
               "steps": None, "moves": None, "confident": None, "seconds": time.perf_counter() - start,
               "data_digest": array_digest(X)[:16]}
    print(f"k-means, C {args.clusters[0]}: ACC {summary['acc']:.3f} (at most {summary['acc_ceiling']:.3f}), "
          f"NMI {summary['nmi']:.3f}", flush=True)
    append_summary(args.summary, summary)


def summary_table(path: Path) -> str:
    """Markdown table of the full runs recorded in ``path`` (one JSON line each, from ``--summary``)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = ["| run | noise | ACC (ceiling) | NMI | clusters used | moves / confident at step (of) | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['set']} | {r['noise']} | {r['acc']:.3f} ({r['acc_ceiling']:.3f}) | {r['nmi']:.3f} | "
              f"{r['used']} | {r['moves'] or '-'} / {r['confident'] or '-'} (of {r['steps'] or '-'}) | "
              f"{r['seconds'] / 60:.1f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=10240)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--hidden", type=int, default=1200)
    parser.add_argument("--clusters", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    parser.add_argument("--metrics", action="store_true", help="also run bench/metrics_speed.py if present")
    parser.add_argument("--full-run", action="store_true")
    parser.add_argument("--kmeans", action="store_true",
                        help="with --full-run: one-start k-means (the kmeans method) on the same set instead of CIMC")
    parser.add_argument("--num-items", type=int,
                        help="points of the synthetic set (default 1,092,009; --write-synthetic --fit-to DIR: DIR's)")
    parser.add_argument("--speakers", type=int,
                        help="synthetic speakers (default 5,994; --write-synthetic --fit-to DIR: DIR's)")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--min-steps", type=int, default=1000, help="CimcConfig.min_steps (no effect at 1.09M)")
    parser.add_argument("--noise", type=float, default=2.2,
                        help="within-speaker std of the synthetic set (speaker means: std 1); see above")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="full run: override a CimcConfig field (e.g. entropy_warmup=0), repeatable; with "
                             "--kmeans a KMeansConfig field (e.g. backend=torch)")
    parser.add_argument("--summary", type=Path, help="full run: append its results as a JSON line to this file")
    parser.add_argument("--summary-table", type=Path, metavar="FILE",
                        help="print the Markdown table of the full runs in FILE (from --summary) and exit")
    parser.add_argument("--write-synthetic", type=Path, metavar="DIR",
                        help="write the synthetic set (--num-items, --dim, --speakers, --noise) to DIR and exit")
    parser.add_argument("--fit-to", type=Path, metavar="DIR",
                        help="a two-covariance Gaussian set fitted to DIR/ivectors_train.npy and DIR/utt2spk "
                             "instead of isotropic noise (--num-items points of --speakers speakers)")
    parser.add_argument("--within-scale", type=float, default=1.0, metavar="S",
                        help="--fit-to: multiply the within-speaker spread by S (a few speakers as crowded as many)")
    parser.add_argument("--neighbour-stats", action="store_true",
                        help="print how hard the synthetic set (or --ivectors) is: within-speaker share of the "
                             "variance, same-speaker fraction of the 1 and 10 nearest neighbours; then exit")
    parser.add_argument("--ivectors", type=Path, help="--neighbour-stats of this .npy (+ .ids) instead")
    parser.add_argument("--utt2spk", type=Path, help="speakers of --ivectors")
    args = parser.parse_args()
    resolve_size(args)
    if args.write_synthetic:
        X, speakers, _ = make_set(args)
        write_synthetic(args.write_synthetic, X, speakers)
        return
    if args.neighbour_stats:
        if args.ivectors:
            X, speakers = load_labelled(args.ivectors, args.utt2spk)
            name = str(args.ivectors)
        else:
            X, speakers, made = make_set(args)
            name = f"synthetic N {len(X)}, d {X.shape[1]}, {args.speakers} speakers, noise {made}"
        stats = neighbour_stats(X, speakers)
        print(f"{name}: within-speaker share {stats['within']:.3f}, nearest neighbour the same speaker "
              f"{stats['nn1']:.3f}, of the 10 nearest {stats['nn10']:.3f}")
        return
    if args.summary_table:
        print(summary_table(args.summary_table))
        return

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.full_run and args.kmeans:
        kmeans_run(args)
    elif args.full_run:
        full_run(args)
    else:
        step_mode(args)
    metrics_bench = Path(__file__).with_name("metrics_speed.py")
    if args.metrics and metrics_bench.is_file():
        subprocess.run([sys.executable, str(metrics_bench)], check=True)


if __name__ == "__main__":
    main()
