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

``--unbalanced 8,50`` adds, for each i-vector set, a copy cut to 8..50 utterances per speaker (log-uniform
sizes, seeded): VoxCeleb2's speakers, and a recording's in diarization, are far from the balanced
mini_synth sets. ``--unbalanced-draw K`` (repeatable; default 0) gives the cut's seed: another draw hands
the sizes to other speakers, so a difference between rows can be told from the luck of one draw.

``--clusters-per-class R`` (repeatable; default 1) asks every method for C = round(R x classes) clusters
instead of one a class (give 1 as well to keep those): the paper's C 5,000 and 10,000 for VoxCeleb2's 5,994
speakers are R 0.834 and 1.668. Such a set is labelled "NAME, C of K classes (N=.., C=..)", C being the
clusters asked for.

``--variants FILE.yaml`` screens config changes instead: a list of ``{name, method, set: {field: value},
data: [...]}`` (``data``, optional: only the sets whose label holds one of these strings, e.g. "N=2000";
bench/sweeps/ holds the lists run so far). ``--jobs N`` runs N fits at a time in worker processes (on a
GPU machine, many small fits share the card), seed by seed, and ``--time-budget S`` stops starting new
fits after S seconds, so a sweep on a lent GPU ends on time with every variant at the same seed count.
``--records FILE.jsonl`` appends each fit as it lands and skips the fits already there, so a stopped sweep
resumes and a later ``--seeds 10`` adds seeds to one run instead of redoing them (a record is keyed by data
set, row name and seed; each also keeps the settings it ran with, and a fit recorded with other settings
than the row resolves to now, e.g. after a default moved, is refused, naming the fields; fits recorded before
2026-12-06 carry no settings and are taken by name: add seeds to those at the commit their result page names).
``--first-seed F`` runs seeds F to F + seeds - 1: new rows paired seed by seed with rows recorded on this
machine, when the first seeds of those came from another (float32 rounding differs between CPUs, and a neural
fit carries it forward).

After the table comes the issue's bar, ``--bar "cimc>=imsat>kmeans"`` (a chain of row names): for each data
set, each link's seed-by-seed difference in ACC and NMI, mean ± standard error, with "holds" or "fails" and,
where the mean is within two standard errors of zero, "(within noise)"; a cut run with several draws also gets
one row pooling every (draw, seed) pair. ``--sizes`` then prints the predicted clusters' smallest, median and
largest size and their entropy H(sizes) beside the true classes' (each fit records its cluster sizes).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

DEFAULT_METHODS = "cimc,imsat,imsat-mixup,kmeans,ahc,spectral,gmm"
DEFAULT_BAR = "cimc>=imsat>kmeans"  # issue 4: CIMC >= IMSAT > k-means on ACC and NMI
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


def unbalanced_subset(labels: np.ndarray, smallest: int, largest: int, seed: int = 0) -> np.ndarray:
    """Indices keeping a log-uniform number of items per class, from ``smallest`` to ``largest``.

    The S classes get the sizes round(smallest * (largest / smallest) ** (k / (S - 1))), k = 0..S-1, in a
    seeded random order; each keeps its first items in input order (all of them if it has fewer). A
    stand-in for VoxCeleb2's and diarization's unbalanced speakers on the balanced mini_synth sets.

    :param labels: (N,) class of each item.
    :return: (M,) sorted indices into ``labels``.
    """
    if not 1 <= smallest <= largest:
        raise ValueError(f"unbalanced sizes need 1 <= smallest <= largest, got {smallest} and {largest}")
    classes = np.unique(labels)
    steps = np.arange(len(classes)) / max(len(classes) - 1, 1)
    sizes = np.rint(smallest * (largest / smallest) ** steps).astype(int)
    sizes = sizes[np.random.default_rng(seed).permutation(len(classes))]
    keep = [np.flatnonzero(labels == c)[:n] for c, n in zip(classes, sizes)]
    return np.sort(np.concatenate(keep))


def unbalanced_cuts(ivector_sets: list[tuple[str, tuple[np.ndarray, np.ndarray]]], smallest: int, largest: int,
                    draws: list[int]) -> list[tuple[str, str, tuple[np.ndarray, np.ndarray]]]:
    """(name, source, (X, y)) of each i-vector set cut by ``unbalanced_subset`` with each seed in ``draws``.

    Draw 0 is named as before draws existed ("... 8-50 per speaker"), so the fits recorded under that label
    still count; another draw adds ", draw K".
    """
    named = []
    for source, (X, y) in ivector_sets:
        name = f"mini_synth i-vectors of {len(y):,}, {smallest}-{largest} per speaker"
        for draw in draws:
            keep = unbalanced_subset(y, smallest, largest, seed=draw)
            named.append((name + (f", draw {draw}" if draw else ""),
                          f"{source} cut to {smallest}-{largest} (draw {draw})", (X[keep], y[keep])))
    return named


def label_sets(named: list[tuple[str, str, tuple[np.ndarray, np.ndarray]]],
               clusters_per_class: tuple[float, ...] = (1.0,)) -> dict[str, tuple]:
    """{"NAME (N=.., C=..)": (X, y)} from (name, source, (X, y)) triples; two sets under one label are an error.

    For each ratio R in ``clusters_per_class`` that asks for other than K clusters (one a class) the set comes as
    "NAME, C of K classes (N=.., C=..)": (X, y, C), C = round(R * K) (:func:`clusters_asked`). The label keys the
    table's rows and the ``--records`` file, so two sets sharing one (two i-vector sets of the same size, or the
    unbalanced cuts of two sets, which keep the same sizes) would be run as one, the later overwriting the earlier,
    and the fits of one taken for the other's.
    """
    sets: dict[str, tuple] = {}
    sources: dict[str, str] = {}
    for name, source, (X, y) in named:
        classes = len(np.unique(y))
        for ratio in clusters_per_class:
            n_clusters = max(2, round(ratio * classes))
            if n_clusters == classes:
                label, data = f"{name} (N={len(y)}, C={classes})", (X, y)
            else:
                label = f"{name}, {n_clusters} of {classes} classes (N={len(y)}, C={n_clusters})"
                data = (X, y, n_clusters)
            if label in sets:
                raise ValueError(f"{source} and {sources[label]} would both be labelled {label!r}, which keys the "
                                 f"table and --records: run them apart")
            sets[label], sources[label] = data, source
    return sets


def clusters_asked(data: tuple) -> int:
    """C the methods are asked for on a set of :func:`label_sets`: its third item, else one a class of y."""
    return data[2] if len(data) > 2 else len(np.unique(data[1]))


def size_range(text: str) -> tuple[int, int]:
    """``--unbalanced`` value "MIN,MAX" -> (MIN, MAX)."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected MIN,MAX utterances per speaker (e.g. 8,50), got {text!r}")
    return int(parts[0]), int(parts[1])


def score(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from cimc.metrics.clustering import cluster_accuracy, contingency_table, information_scores

    table = contingency_table(true, pred)
    return {"acc": cluster_accuracy(table), "nmi": information_scores(table)["nmi"]}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the table: ``method`` with config ``overrides`` (field -> value) on top of its defaults."""

    name: str
    method: str
    overrides: tuple[tuple[str, object], ...] = ()
    data: tuple[str, ...] = ()  # run only on the data sets whose label contains one of these ("" = all)

    def runs_on(self, data_label: str) -> bool:
        return not self.data or any(part in data_label for part in self.data)


def load_variants(path: Path) -> list[Variant]:
    import yaml

    entries = yaml.safe_load(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of {{name, method, set}} entries")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "method" not in entry:
            raise ValueError(f"{path}: entry {i} needs at least a 'method' ({entry!r})")
        values = entry.get("set") or {}
        data = entry.get("data") or ()
        out.append(Variant(str(entry.get("name", entry["method"])), entry["method"], tuple(values.items()),
                           (data,) if isinstance(data, str) else tuple(data)))
    return out


def method_config(name: str, seed: int, overrides: tuple[tuple[str, object], ...] = ()):
    """Method ``name``'s default config with ``seed`` and ``overrides`` (any field of it); None if it has none.

    An unknown method or field raises, naming it.
    """
    from cimc.cluster.base import config_class
    from cimc.config import from_dict, to_dict

    cls = config_class(name)
    if cls is None:
        if overrides:
            raise ValueError(f"{name} takes no config, so it cannot set {', '.join(k for k, _ in overrides)}")
        return None
    values = to_dict(cls())
    values.update(dict(overrides))
    if "progress" in values:
        values["progress"] = False
    if "seed" in values:
        values["seed"] = seed
    return from_dict(cls, values, where=name)


def run_method(name: str, X: np.ndarray, n_clusters: int, seed: int,
               overrides: tuple[tuple[str, object], ...] = ()) -> tuple[np.ndarray, float]:
    """Labels of method ``name`` at its default config with ``seed`` and ``overrides`` (any field of its config)."""
    from cimc.cluster.base import make_clusterer

    config = method_config(name, seed, overrides)
    start = time.perf_counter()
    labels = make_clusterer(name, config).fit_predict(X, n_clusters)
    return np.asarray(labels), time.perf_counter() - start


def settings_of(variant: Variant, seed: int) -> dict | None:
    """The config a fit of ``variant`` with ``seed`` runs with, as JSON values (None for a method without
    config). A record keeps it so that a later run can tell when a default has moved under the row's name."""
    import json

    from cimc.config import to_dict

    config = method_config(variant.method, seed, variant.overrides)
    return None if config is None else json.loads(json.dumps(to_dict(config)))


def check_recorded_settings(recorded: dict, d: str, variant: Variant, seed: int, records: Path) -> None:
    """Refuse a recorded fit whose result settings differ from what ``variant`` resolves to now, naming the
    fields (:func:`cimc.config.changed_settings`: where and how a fit computes, e.g. the device, is not compared).

    Fits recorded before records carried their settings have none and are taken by name alone.
    """
    from cimc.config import changed_settings

    if recorded.get("config") is None:
        return
    config = method_config(variant.method, seed, variant.overrides)
    changed = {} if config is None else changed_settings(recorded["config"], config)
    if changed:
        changes = ", ".join(f"{k} {then!r} -> {now!r}" for k, (then, now) in sorted(changed.items()))
        raise ValueError(f"{records}: {d} / {variant.name} / seed {seed} was fitted with other settings than the "
                         f"row gives now ({changes}); pin them in the row's set: or start a new records file")


def _init_worker(threads: int) -> None:
    import torch

    import cimc.cluster  # noqa: F401  (registers every method)

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(threads)


def _init_pool_worker(threads: int) -> None:
    """``_init_worker`` for a worker process, which also ends itself once the sweep that started it is gone."""
    _init_worker(threads)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int, every: float = 2.0) -> None:
    """Exit this process once its parent ``parent`` has died (it is then adopted by another).

    A sweep stopped with ``kill`` takes no workers with it, and each would run its fit to the end, minutes of a
    CPU or a GPU that no one records.
    """
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _fit_and_score(variant: Variant, data: tuple, seed: int) -> dict:
    """One fit of ``variant`` on ``data`` ((X, y) or (X, y, C), as :func:`label_sets` gives) with ``seed``, scored."""
    X, y = data[:2]
    labels, took = run_method(variant.method, X, clusters_asked(data), seed, variant.overrides)
    sizes = cluster_sizes(labels)
    return {**score(y, labels), "used": len(sizes), "seconds": took, "seed": seed, "sizes": sizes}


def cluster_sizes(labels: np.ndarray) -> list[int]:
    """Sizes of the non-empty clusters of ``labels`` (N,), largest first."""
    _, counts = np.unique(labels, return_counts=True)
    return sorted(counts.tolist(), reverse=True)


def read_records(path: Path | None) -> dict[tuple[str, str, int], dict]:
    """Fits already written to a ``--records`` file, keyed by (data set, row name, seed); {} without one."""
    import json

    if path is None or not path.exists():
        return {}
    done = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            done[(r["data"], r["variant"], int(r["seed"]))] = r
        except (ValueError, KeyError) as error:
            raise ValueError(f"{path}:{number}: not a fit record ({error}): {line[:80]!r}") from None
    return done


def run_all(sets: dict, variants: list[Variant], seeds: int, jobs: int, threads: int,
            time_budget: float | None, records: Path | None = None,
            first_seed: int = 0) -> dict[tuple[str, str], list[dict]]:
    """Every (data set, variant, seed) fit for seeds ``first_seed`` .. ``first_seed + seeds - 1``, seed-major;
    results keyed by (data name, variant name).

    With ``jobs`` > 1 the fits run in spawned worker processes (CUDA-safe), at most 2 * jobs queued,
    and no new fit starts once ``time_budget`` seconds have passed. With ``records`` (JSON lines) each
    fit is appended as it lands, with its settings, and fits found there are taken from it, not run again
    (one recorded with other settings than its row gives now raises).
    """
    import concurrent.futures as cf
    import json
    import multiprocessing

    recorded = read_records(records)
    tasks = [(d, v, seed) for seed in range(first_seed, first_seed + seeds) for d in sets for v in variants
             if v.runs_on(d)]
    results: dict[tuple[str, str], list[dict]] = {(d, v.name): [] for d in sets for v in variants if v.runs_on(d)}
    for d, v, seed in tasks:
        if (d, v.name, seed) in recorded:
            r = recorded[(d, v.name, seed)]
            check_recorded_settings(r, d, v, seed, records)
            results[(d, v.name)].append({k: r[k] for k in ("acc", "nmi", "used", "seconds", "seed", "sizes")
                                         if k in r})  # fits recorded before 2026-12-07 carry no sizes
    if recorded:
        print(f"{sum(map(len, results.values()))} of {len(tasks)} fits taken from {records}", flush=True)
    to_run = [(d, v, seed) for d, v, seed in tasks if (d, v.name, seed) not in recorded]
    started = time.perf_counter()

    def record(d: str, v: Variant, seed: int, r: dict) -> None:
        results[(d, v.name)].append(r)
        print(f"{d} {v.name} seed {seed}: ACC {r['acc']:.3f} NMI {r['nmi']:.3f} ({r['seconds']:.0f} s)", flush=True)
        if records is not None:
            with records.open("a") as f:  # one line per fit: a stopped run loses at most the fits in flight
                f.write(json.dumps({"data": d, "variant": v.name, **r, "config": settings_of(v, seed)}) + "\n")

    def out_of_time() -> bool:
        return time_budget is not None and time.perf_counter() - started > time_budget

    if jobs <= 1:
        _init_worker(threads)
        for d, v, seed in to_run:
            if out_of_time():
                break
            record(d, v, seed, _fit_and_score(v, sets[d], seed))
    else:
        pending: dict = {}
        queue = iter(to_run)
        with cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_init_pool_worker, initargs=(threads,)) as pool:
            while True:
                while len(pending) < 2 * jobs and not out_of_time():
                    task = next(queue, None)
                    if task is None:
                        break
                    d, v, seed = task
                    pending[pool.submit(_fit_and_score, v, sets[d], seed)] = task
                if not pending:
                    break
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    record(*pending.pop(future), future.result())
    for runs in results.values():
        runs.sort(key=lambda r: r["seed"])
    skipped = len(tasks) - sum(len(r) for r in results.values())
    if skipped:
        print(f"time budget reached: {skipped} of {len(tasks)} fits not run", flush=True)
    return results


def table(rows: list[dict]) -> str:
    lines = ["| data | method | seeds | ACC | NMI | clusters used | seconds/run |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['method']} | {len(r['acc'])} | {r['acc'].mean():.3f} ± {r['acc'].std():.3f} | "
                     f"{r['nmi'].mean():.3f} ± {r['nmi'].std():.3f} | {r['used']:.1f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def size_entropy(sizes: list[int] | np.ndarray) -> float:
    """Entropy (nats) of the share of points in each cluster: H(Y) of hard labels, log C when all are equal."""
    share = np.asarray(sizes, dtype=float)
    share = share[share > 0] / share.sum()
    return float(-(share * np.log(share)).sum())


def size_table(sets: dict[str, tuple], results: dict[tuple[str, str], list[dict]]) -> str:
    """Markdown: the predicted clusters' sizes beside the true speakers', per data set (``--sizes``).

    For each set a "true classes" row, then each row's smallest, median and largest cluster and H(sizes), means
    over the seeds whose fits carry sizes (rows with none, and sets with no such row, are left out). H(Y), at
    weight mu in IMSAT's loss, pulls the sizes together; on unequal speakers this shows how far.
    """
    lines = ["| data | method | seeds | smallest | median | largest | H(sizes), nats |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for data, labelled in sets.items():
        y, n_clusters = labelled[1], clusters_asked(labelled)
        rows = []
        for (d, name), runs in results.items():
            sized = [r["sizes"] for r in runs if r.get("sizes")] if d == data else []
            if not sized:
                continue
            smallest, median, largest, entropy = (np.mean([f(s) for s in sized]) for f in
                                                  (min, np.median, max, size_entropy))
            rows.append(f"| {data} | {name} | {len(sized)} | {smallest:.1f} | {median:.1f} | {largest:.1f} | "
                        f"{entropy:.3f} |")
        if rows:
            truth = cluster_sizes(y)
            bound = f"log C {np.log(n_clusters):.3f}"  # the most H(sizes) C clusters can reach
            if n_clusters != len(truth):
                bound = f"log K {np.log(len(truth)):.3f}, {bound}"
            lines.append(f"| {data} | true classes | | {truth[-1]} | {np.median(truth):g} | {truth[0]} | "
                         f"{size_entropy(truth):.3f} ({bound}) |")
            lines += rows
    return "\n".join(lines)


def bar_chain(text: str) -> list[tuple[str, str, str]]:
    """"a>=b>c" -> [("a", ">=", "b"), ("b", ">", "c")]: the links of a chain of row names."""
    parts = [part.strip() for part in re.split(r"(>=|>)", text)]
    names, relations = parts[::2], parts[1::2]
    if len(names) < 2 or not all(names):
        raise argparse.ArgumentTypeError(f"--bar {text!r}: give row names joined by >= or >, e.g. {DEFAULT_BAR}")
    return [(names[i], relations[i], names[i + 1]) for i in range(len(relations))]


def draws_pooled(labels: list[str]) -> dict[str, list[str]]:
    """{pooled label: data labels} for each set cut with several ``--unbalanced-draw`` seeds.

    "X (N=923, C=40)" and "X, draw 2 (N=923, C=40)" pool as "X, 2 draws pooled (N=923, C=40)"; sets with one draw
    are left out.
    """
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(re.sub(r", draw \d+(?=,| \()", "", label), []).append(label)
    return {stem.replace(" (N=", f", {len(members)} draws pooled (N=", 1): members
            for stem, members in groups.items() if len(members) > 1}


def bar_check(results: dict[tuple[str, str], list[dict]], chain: list[tuple[str, str, str]]) -> str:
    """One Markdown row per (data set, link): the paired (same seed) difference left - right in ACC and NMI.

    A link holds when the mean difference is >= 0 (">=") or > 0 (">"); "(within noise)" marks a mean within
    two standard errors (std over seeds, ddof 1, / sqrt(seeds)) of zero, "(one seed)" a link with one seed in
    common. A set cut with several draws also gets a pooled row over every (draw, seed) pair, counted as
    independent. Links whose rows did not run are left out, and a closing line names those rows.
    """
    lines = ["| data | comparison | seeds | ACC difference | NMI difference |", "| --- | --- | --- | --- | --- |"]
    labels = list(dict.fromkeys(d for d, _ in results))
    groups = {label: [label] for label in labels} | draws_pooled(labels)
    for group, members in groups.items():
        for left, relation, right in chain:
            pairs = []
            for data in members:
                runs = {name: {r["seed"]: r for r in results.get((data, name), [])} for name in (left, right)}
                pairs += [(runs[left][s], runs[right][s]) for s in sorted(runs[left].keys() & runs[right].keys())]
            if not pairs:
                continue
            cells = []
            for metric in ("acc", "nmi"):
                diff = np.array([a[metric] - b[metric] for a, b in pairs])
                mean = diff.mean()
                holds = "holds" if (mean >= 0 if relation == ">=" else mean > 0) else "fails"
                if len(diff) == 1:  # no spread to judge the noise by
                    cells.append(f"{mean:+.3f} {holds} (one seed)")
                    continue
                stderr = diff.std(ddof=1) / np.sqrt(len(diff))
                noise = " (within noise)" if not abs(mean) > 2 * stderr else ""
                cells.append(f"{mean:+.3f} ± {stderr:.3f} {holds}{noise}")
            lines.append(f"| {group} | {left} {relation} {right} | {len(pairs)} | {cells[0]} | {cells[1]} |")
    text = "\n".join(lines) if len(lines) > 2 else ""
    rows_run = {name for _, name in results}
    named = dict.fromkeys(name for left, _, right in chain for name in (left, right))
    missing = [name for name in named if name not in rows_run]
    if missing:  # a misspelt --bar row would otherwise vanish without a word
        text += f"\n\nNot checked, no such row ran: {', '.join(missing)} (links naming it are left out)."
    return text.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds FIRST .. FIRST + SEEDS - 1 (more seeds for rows recorded on another machine)")
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--variants", type=Path, help="YAML list of {name, method, set, data} rows (replaces --methods)")
    parser.add_argument("--ivectors", action="append", default=[],
                        help="vectors file (.npy + .ids) of a mini_synth training set (repeatable)")
    parser.add_argument("--utt2spk", action="append", default=[],
                        help="utt2spk giving the true speaker of each i-vector (one per --ivectors)")
    parser.add_argument("--unbalanced", metavar="MIN,MAX", type=size_range,
                        help="also run each i-vector set cut to MIN..MAX utterances per speaker (log-uniform sizes)")
    parser.add_argument("--unbalanced-draw", action="append", type=int, metavar="K",
                        help="seed of the --unbalanced cut, which speaker gets which size (repeatable; default 0)")
    parser.add_argument("--clusters-per-class", action="append", type=float, metavar="R",
                        help="ask every method for C = round(R x classes) clusters (repeatable; default 1: "
                             "one a class; give 1 too to keep those sets)")
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a CIMC/IMSAT config field in every row (e.g. hidden_dim=256 for a quick look)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fit")
    parser.add_argument("--jobs", type=int, default=1, help="fits at a time (worker processes)")
    parser.add_argument("--time-budget", type=float, help="seconds after which no new fit starts")
    parser.add_argument("--bar", type=bar_chain, action="append",
                        help=f"chain of row names to check seed by seed; repeat for several (default {DEFAULT_BAR!r})")
    parser.add_argument("--records", type=Path, help="JSON lines: append each fit, skip fits already there (resume)")
    parser.add_argument("--sizes", action="store_true",
                        help="after the bar, the predicted clusters' sizes beside the true classes' (fits with sizes)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from cimc.config import parse_override

    common = tuple(parse_override(o) for o in args.set)
    if args.variants:
        variants = load_variants(args.variants)
    else:
        variants = [Variant(m, m) for m in args.methods.split(",")]
    # --set is a CIMC/IMSAT field; a row's own `set` may name any field of its method's config (e.g. n_init)
    variants = [dataclasses.replace(v, overrides=(common if v.method in NEURAL else ()) + v.overrides)
                for v in variants]
    if len(args.ivectors) != len(args.utt2spk):
        parser.error("give one --utt2spk for each --ivectors")
    named = [] if args.no_digits else [("digits", "sklearn.datasets.load_digits", load_digits_set())]
    ivector_sets = [(str(v), load_ivector_set(v, u)) for v, u in zip(args.ivectors, args.utt2spk)]
    named += [("mini_synth i-vectors", source, xy) for source, xy in ivector_sets]
    if args.unbalanced:
        smallest, largest = args.unbalanced
        named += unbalanced_cuts(ivector_sets, smallest, largest, args.unbalanced_draw or [0])
    if any(ratio <= 0 for ratio in args.clusters_per_class or []):
        parser.error("--clusters-per-class must be > 0")
    sets = label_sets(named, tuple(args.clusters_per_class or [1.0]))
    results = run_all(sets, variants, args.seeds, args.jobs, args.threads, args.time_budget, args.records,
                      args.first_seed)
    rows = []
    for (data_name, variant_name), runs in results.items():
        if not runs:
            continue
        rows.append({"data": data_name, "method": variant_name,
                     "acc": np.array([r["acc"] for r in runs]), "nmi": np.array([r["nmi"] for r in runs]),
                     "used": float(np.mean([r["used"] for r in runs])),
                     "seconds": float(np.mean([r["seconds"] for r in runs]))})
    text = table(rows)
    bar = bar_check(results, [link for chain in args.bar or [bar_chain(DEFAULT_BAR)] for link in chain])
    if bar:
        text += "\n\nThe bar, seed by seed (mean ± standard error):\n\n" + bar
    if args.sizes:
        text += "\n\nCluster sizes, mean over seeds:\n\n" + size_table(sets, results)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
