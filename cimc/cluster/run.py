"""Library side of ``cimc cluster`` and ``cimc cluster-metrics``: vectors in, labels and metrics out.

Output folder of :func:`cluster_to_dir`::

    DIR/labels.npy      (N,) int64 cluster labels, row order of the input vectors
    DIR/labels.txt      "utt label" lines
    DIR/cuts.jsonl.gz   (given cuts) pseudo-label as supervision speaker, true one in custom
    DIR/config.yaml     the method's resolved config (reusable with --config)
    DIR/summary.json    method, input, --exclude and --cuts files, requested and found number of clusters, N, seconds
    DIR/training.png    (CIMC, IMSAT) loss terms, entropies, clusters used, ACC / NMI (--ref) per epoch
    DIR/checkpoint/     (CIMC, IMSAT) resumed by a rerun unless it holds another C, config or vectors
    DIR/.done           written last: a rerun of the same request skips a finished folder (writing the cuts
                        when they are asked for now from another manifest); a rerun of another (method, C, input,
                        --exclude, a config field that changes the result) is refused
    DIR/.lock           held while a run writes DIR: a second run into it stops, naming the first
"""
from __future__ import annotations

import inspect
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import cimc.cluster  # noqa: F401  (registers every method)
from cimc.cluster.base import Clusterer, config_class, make_clusterer
from cimc.cluster.cimc import make_schedule
from cimc.cluster.labels import join_labels, read_label_file, write_labels, write_pseudo_label_cuts
from cimc.cluster.plot import plot_training
from cimc.config import load_config, save_config, saved_config_changes
from cimc.data.layout import iter_cuts, open_cuts
from cimc.metrics.clustering import DEFAULT_SILHOUETTE_SAMPLE, clustering_metrics
from cimc.utils import exclusive_dir, is_done, mark_done, name_some, warn_if_newer, write_text_atomic
from cimc.vectors import load_vectors

logger = logging.getLogger(__name__)


def load_method(method: str, config_path: str | Path | None = None, overrides: Sequence[str] = ()) -> Clusterer:
    """Build registered method ``method`` with its config from YAML ``config_path`` and ``key=value`` overrides."""
    cls = config_class(method)
    if cls is None:
        if config_path or overrides:
            raise ValueError(f"clustering method {method!r} takes no config")
        return make_clusterer(method)
    return make_clusterer(method, load_config(cls, config_path, overrides))


def reference_for(ids: Sequence[str], ref_path: str | Path) -> np.ndarray:
    """(N,) reference labels of ``ids`` from an ``utt label`` file; utterances without one raise, by name."""
    ref = read_label_file(ref_path)
    missing = [u for u in ids if u not in ref]
    if missing:
        raise ValueError(f"{len(missing)} utterances have no label in {ref_path}: {name_some(missing)}")
    return np.array([ref[u] for u in ids])


def drop_excluded(ids: Sequence[str], X: np.ndarray, exclude: str | Path) -> tuple[list[str], np.ndarray]:
    """Rows of ``X`` (N, D) whose id is not in the first column of file ``exclude``."""
    skip = {line.split()[0] for line in Path(exclude).read_text().splitlines() if line.strip()}
    keep = np.array([u not in skip for u in ids], dtype=bool)
    if not keep.any():
        raise ValueError(f"{exclude} excludes every one of the {len(ids)} utterances")
    unknown = skip.difference(ids)
    if unknown:  # most likely a list of another set (or of other ids) than these vectors'
        logger.warning("%d of the %d utterances listed in %s are not among the %d vectors: %s", len(unknown),
                       len(skip), exclude, len(ids), name_some(sorted(unknown)))
    logger.info("leaving out %d utterances listed in %s", int((~keep).sum()), exclude)
    return [u for u, k in zip(ids, keep) if k], X[keep]


def check_directions(ids: Sequence[str], X: np.ndarray, source: str | Path) -> None:
    """Raise naming the utterances whose vector is all zeros: on the unit sphere they have no place."""
    zero = np.flatnonzero(np.einsum("ij,ij->i", X, X) == 0)  # (N,); no (N, D) temporary at 1M points
    if zero.size:
        raise ValueError(f"{source}: {zero.size} all-zero vector(s), which an l2-normalising method cannot place: "
                         f"{name_some(ids[i] for i in zero)}; leave them out with --exclude")


def _same_file(saved: str | None, asked: str | Path | None) -> bool:
    """Whether two optional paths name the same file (a relative ``saved`` is taken from the current directory)."""
    if saved is None or asked is None:
        return saved is None and asked is None
    return Path(saved).resolve() == Path(asked).resolve()


def check_finished_request(output_dir: Path, method: str, n_clusters: int | None, input_path: str | Path,
                           exclude: str | Path | None, config: Any) -> None:
    """Raise naming each difference when finished ``output_dir`` holds the labels of another request.

    Compared: the method, C, the input and --exclude files (summary.json), and every config field that
    changes the result (config.yaml; a class's ``RUN_ONLY_FIELDS`` may differ). Without this a rerun
    with, say, ``--override lam=0.1`` into the same folder would silently return the old labels.
    Warns when the input is newer than the labels (re-extracted vectors, same path).
    """
    differences = []
    summary_path = output_dir / "summary.json"
    same_method = True
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        same_method = summary.get("method") == method
        if not same_method:
            differences.append(f"method {summary.get('method')} -> {method}")
        if summary.get("requested_clusters") != n_clusters:
            differences.append(f"num-clusters {summary.get('requested_clusters')} -> {n_clusters}")
        if not _same_file(summary.get("input"), input_path):
            differences.append(f"input {summary.get('input')} -> {input_path}")
        if not _same_file(summary.get("excluded_by"), exclude):
            differences.append(f"exclude {summary.get('excluded_by')} -> {exclude}")
    if config is not None and same_method:  # another method has other fields
        differences += saved_config_changes(output_dir / "config.yaml", config)
    if differences:
        raise ValueError(f"{output_dir} holds the finished labels of another request ({'; '.join(differences)}); "
                         f"delete it (or its .done) to recluster there, or give another --output")
    warn_if_newer(input_path, output_dir)


# What a run writes, and the metrics.json that stage 5 and the ablation write beside it: an unfinished folder's
# copies are removed before it clusters again, so nothing of an earlier request (its cuts when none are asked for
# now, its training curves, its metrics) is left beside the new labels.
RESULT_FILES = ("labels.npy", "labels.txt", "cuts.jsonl.gz", "config.yaml", "summary.json", "training.png",
                "metrics.json")


def check_own_folder(output_dir: Path) -> None:
    """Refuse an unfinished ``output_dir`` that holds files named as ours (a config.yaml, say) but no clustering
    of ours: an --output mistyped onto another stage's folder would otherwise lose them to the cleanup before a run.
    Ours: labels.npy (written first), or the .lock a run leaves, naming ``cimc cluster``."""
    present = [name for name in RESULT_FILES if (output_dir / name).exists()]
    if not present or is_done(output_dir) or (output_dir / "labels.npy").is_file():
        return
    lock = output_dir / ".lock"
    if lock.is_file() and lock.read_text(errors="replace").startswith("cimc cluster"):
        return
    raise ValueError(f"{output_dir} holds {', '.join(present)} but no clustering by `cimc cluster`, and a run "
                     "would replace them; give the clustering a folder of its own")


def check_cuts_cover(cuts: str | Path, ids: Sequence[str]) -> None:
    """Raise naming the utterances of ``ids`` that have no cut in ``cuts``: found before clustering, not after."""
    have = {cut.id for cut in iter_cuts(cuts)}
    missing = [u for u in ids if u not in have]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(ids)} utterances to cluster have no cut in {cuts}: "
                         f"{name_some(missing)}")


def _write_cuts_of_finished(output_dir: Path, cuts: str | Path) -> None:
    """Pseudo-labelled cuts from a finished folder's stored labels and ``cuts``; summary.json records which."""
    summary_path = output_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if (output_dir / "cuts.jsonl.gz").is_file() and _same_file(summary.get("cuts"), cuts):
        return
    stored = read_label_file(output_dir / "labels.txt")
    written = write_pseudo_label_cuts(cuts, list(stored), np.array([int(l) for l in stored.values()]),
                                      output_dir / "cuts.jsonl.gz")
    logger.info("wrote %d cuts of %s with the stored pseudo-labels to %s", written, cuts, output_dir / "cuts.jsonl.gz")
    if summary:
        summary["cuts"] = str(Path(cuts).resolve())
        write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")


def cluster_to_dir(input_path: str | Path, method: str, n_clusters: int | None, output_dir: str | Path,
                   config_path: str | Path | None = None, overrides: Sequence[str] = (),
                   cuts: str | Path | None = None, ref: str | Path | None = None,
                   exclude: str | Path | None = None) -> np.ndarray:
    """Cluster the vectors at ``input_path`` (.npy [+ .ids], .scp, .ark) and write ``output_dir`` (see module doc).

    Skips the work when ``output_dir/.done`` exists and holds the same request (returns the stored labels,
    and writes the cuts if they are asked for now and were not then, or from another manifest); another request
    raises, naming what
    differs (:func:`check_finished_request`). A method with a
    ``checkpoint_dir`` config field (CIMC) that leaves it empty checkpoints into ``output_dir/checkpoint``
    so an interrupted run resumes. ``ref`` (``utt label``) is passed to methods that log metrics per epoch.
    ``exclude``: a file whose first column lists utterances to leave out (e.g. stage 3's
    ``short_train.txt``: too few voiced frames for a usable i-vector); they get no label and no cut.

    :return: (N,) int64 labels.
    """
    output_dir = Path(output_dir)
    clusterer = load_method(method, config_path, overrides)  # a config error before minutes of reading vectors
    if getattr(clusterer.config, "checkpoint_dir", None) == "":
        clusterer.config.checkpoint_dir = str(output_dir / "checkpoint")
    if cuts is not None:
        open_cuts(cuts)  # likewise a wrong --cuts file (its first line), before the clustering
    check_own_folder(output_dir)
    with exclusive_dir(output_dir, f"cimc cluster --method {method}"):
        if is_done(output_dir):
            check_finished_request(output_dir, method, n_clusters, input_path, exclude, clusterer.config)
            logger.info("%s is done; delete it (or its .done) to recluster", output_dir)
            if cuts is not None:  # asked for now and not then, or from another manifest: (re)written
                _write_cuts_of_finished(output_dir, cuts)
            return np.load(output_dir / "labels.npy")
        for name in RESULT_FILES:
            (output_dir / name).unlink(missing_ok=True)
        ids, X = load_vectors(input_path)
        if exclude is not None:
            ids, X = drop_excluded(ids, X, exclude)
        if cuts is not None:
            check_cuts_cover(cuts, ids)
        if getattr(clusterer.config, "l2_normalize", True):  # CIMC always normalises
            check_directions(ids, X, input_path)
        kwargs: dict[str, Any] = {}
        if ref is not None and "reference_labels" in inspect.signature(clusterer.fit_predict).parameters:
            kwargs["reference_labels"] = reference_for(ids, ref)
        logger.info("clustering %d x %d vectors of %s with %s into %s clusters", X.shape[0], X.shape[1], input_path,
                    method, n_clusters if n_clusters is not None else "an estimated number of")
        start = time.perf_counter()
        labels = np.asarray(clusterer.fit_predict(X, n_clusters, **kwargs), dtype=np.int64)
        seconds = time.perf_counter() - start
        found = int(np.unique(labels).size)
        logger.info("%s: %d non-empty clusters in %.1f s", method, found, seconds)
        write_labels(output_dir, ids, labels)
        history = getattr(clusterer, "history", None)  # the trained methods' per-epoch records
        if history:
            plot_training(history, n_clusters, output_dir / "training.png",
                          title=f"{method}: {X.shape[0]} x {X.shape[1]} vectors of {Path(input_path).name}, C = {n_clusters}",
                          batch_size=make_schedule(X.shape[0], clusterer.config).batch_size)
        if clusterer.config is not None:
            save_config(clusterer.config, output_dir / "config.yaml")
        if cuts is not None:
            written = write_pseudo_label_cuts(cuts, ids, labels, output_dir / "cuts.jsonl.gz")
            logger.info("wrote %d cuts with pseudo-labels to %s", written, output_dir / "cuts.jsonl.gz")
        # Absolute paths: a rerun from another directory is still recognised as the same request.
        summary = {"method": method, "input": str(Path(input_path).resolve()),
                   "excluded_by": str(Path(exclude).resolve()) if exclude else None,
                   "cuts": str(Path(cuts).resolve()) if cuts else None,
                   "num_vectors": len(ids), "requested_clusters": n_clusters,
                   "nonempty_clusters": found, "seconds": round(seconds, 3)}
        write_text_atomic(output_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        mark_done(output_dir)
        return labels


def evaluate_label_files(ref_path: str | Path, hyp_path: str | Path, features: str | Path | None = None,
                         silhouette_sample: int | None = DEFAULT_SILHOUETTE_SAMPLE, seed: int = 0) -> dict[str, float]:
    """Metrics of the ``utt label`` file ``hyp_path`` against ``ref_path``, joined by utterance id.

    Utterances in only one file are reported (count and names) and left out. ``features`` (vectors
    file) adds silhouette / Calinski-Harabasz / Davies-Bouldin on the l2-normalised vectors, the space
    the methods cluster in; every evaluated utterance must have a vector.

    :return: metric name -> value, plus ``num_utterances``.
    """
    utts, ref, hyp = join_labels(read_label_file(ref_path), read_label_file(hyp_path), str(ref_path), str(hyp_path))
    X = None
    if features is not None:
        ids, vectors = load_vectors(features)
        row = {u: i for i, u in enumerate(ids)}
        missing = [u for u in utts if u not in row]
        if missing:
            unnamed = Path(features).suffix == ".npy" and not Path(features).with_suffix(".ids").is_file()
            hint = " (it has no .ids file beside it, so its rows are named 0, 1, ...)" if unnamed else ""
            raise ValueError(f"{len(missing)} evaluated utterances have no vector in {features}{hint}: "
                             f"{name_some(missing)}")
        order = np.fromiter((row[u] for u in utts), dtype=np.int64, count=len(utts))
        # In place, and no copy when the vectors are already in utterance order (a sorted Kaldi scp): at most
        # one reordered copy of the (N, D) vectors, where a normalised copy and np.linalg.norm's temporary came too
        # (bench/metrics_memory.py, 1.09M x 400: peak 5.56 GB -> 2.39 GB in order, 3.85 GB reordered).
        X = vectors if np.array_equal(order, np.arange(len(ids))) else vectors[order]
        del vectors
        X /= np.maximum(np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64)), 1e-12).astype(X.dtype)[:, None]
    result = clustering_metrics(ref, hyp, X, silhouette_sample=silhouette_sample, seed=seed)
    result["num_utterances"] = len(utts)
    return result
