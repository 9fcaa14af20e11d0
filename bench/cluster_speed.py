#!/usr/bin/env python
"""CIMC training speed at the paper's size, and (``--full-run``) the paper's whole run timed end to end.

Step mode (default): ms per optimiser step of IMSAT alone and of CIMC (IMSAT + SupCon + mixup), same
process, same random l2-normalised data, at batch B, input d, width S, for each C in ``--clusters``
(paper: B 10,240, d 400, S 1200, C 5,000 and 10,000). The first ``--warmup`` steps are not timed.
SupCon is forced on from step 0 (no warm-up) so its cost is in every timed step. On a CPU use few
steps; on a GPU precision auto means bf16 autocast. Also runs bench/metrics_speed.py (the metrics at
1.09M labels vs scikit-learn) when it is there and ``--metrics`` is given.

Full-run mode: ``train_cimc`` on N synthetic 400-d "i-vectors" (Gaussian speaker means + noise),
C clusters, the paper's 150 epochs: k-NN radius + training + prediction, wall seconds.

    OMP_NUM_THREADS=2 python bench/cluster_speed.py --steps 1 --warmup 0            # CPU: minutes
    python bench/cluster_speed.py --steps 20                                        # GPU
    python bench/cluster_speed.py --full-run --num-items 1092009 --clusters 5000    # GPU: the paper's run
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def synthetic_ivectors(n: int, dim: int, n_speakers: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 unit vectors around ``n_speakers`` random means (within/between std ratio 0.8),
    and their (n,) speaker labels."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n_speakers, dim)).astype(np.float32)
    speakers = rng.integers(0, n_speakers, n)
    X = means[speakers] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True), speakers


VARIANTS = {  # name -> (losses, extra CimcConfig fields); the last row is the baseline of the ratio column
    "IMSAT": (("imsat",), {}),
    "IMSAT + mixup": (("imsat", "mixup"), {}),
    "CIMC": (("imsat", "supcon", "mixup"), {}),
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
    from cimc.metrics.clustering import cluster_accuracy, contingency_table, information_scores

    X, truth = synthetic_ivectors(args.num_items, args.dim, args.speakers)
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
    print(f"full CIMC run: N {args.num_items}, d {args.dim}, S {args.hidden}, C {args.clusters[0]}, "
          f"{trainer.schedule.epochs} epochs of {trainer.schedule.steps_per_epoch} steps (B {trainer.schedule.batch_size}), "
          f"device {trainer.device}" + (f", set {' '.join(args.set)}" if args.set else ""))
    print(f"| phase | seconds |\n| --- | --- |\n| data to device + k-NN radii | {setup:.1f} |\n"
          f"| training + prediction ({steps} steps, {1000 * (total - setup) / steps:.1f} ms/step) | {total - setup:.1f} |\n"
          f"| whole run | {total:.1f} ({total / 60:.2f} min) |")
    table = contingency_table(truth, result.labels)
    print(f"{len(np.unique(result.labels))} of {args.clusters[0]} clusters used; vs the {args.speakers} synthetic "
          f"speakers: ACC {cluster_accuracy(table):.3f}, NMI {information_scores(table)['nmi']:.3f}", flush=True)


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
    parser.add_argument("--num-items", type=int, default=1_092_009)
    parser.add_argument("--speakers", type=int, default=5994, help="synthetic speakers (full run)")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--min-steps", type=int, default=1000, help="CimcConfig.min_steps (no effect at 1.09M)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="full run: override a CimcConfig field (e.g. entropy_warmup=0), repeatable")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.full_run:
        full_run(args)
    else:
        step_mode(args)
    metrics_bench = Path(__file__).with_name("metrics_speed.py")
    if args.metrics and metrics_bench.is_file():
        subprocess.run([sys.executable, str(metrics_bench)], check=True)


if __name__ == "__main__":
    main()
