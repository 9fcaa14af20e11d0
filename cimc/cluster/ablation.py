"""Ablations in the layout of the paper's Table I: rows = loss combination x C, columns = the metrics.

Each row is a clustering config (normally ``conf/cimc.yaml`` with a ``losses=[...]`` override) run at
every C of ``num_clusters``. Every (row, C) gets its own folder ``OUT/<row>_C<C>/`` written by
:func:`cimc.cluster.run.cluster_to_dir` plus ``metrics.json``; a finished folder is skipped on rerun,
so an interrupted ablation resumes where it stopped, and a row edited since is refused, naming the change.
The tables are ``OUT/table.md`` and ``OUT/table.csv``.

One YAML can drive the whole ablation (``cimc cluster-ablation --spec ablation.yaml``)::

    method: cimc
    num_clusters: [40, 80]           # every row's C values, unless the row gives its own
    rows:
      - name: IMSAT
        config: cimc.yaml            # relative to this file's folder
        overrides: ["losses=[imsat]"]
        num_clusters: [40, 80, 60]
      - name: CIMC
        config: cimc.yaml
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import numbers
from pathlib import Path
from typing import Sequence


from cimc.cluster.run import cluster_to_dir, evaluate_label_files, load_method
from cimc.config import ConfigError, from_dict, read_yaml
from cimc.metrics.clustering import METRIC_NAMES, metrics_json
from cimc.utils import write_text_atomic

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class AblationRow:
    """One loss combination: a method config file plus ``key=value`` overrides."""

    name: str
    config: str = ""  # YAML of the method's config ("" = its defaults)
    overrides: list = dataclasses.field(default_factory=list)
    method: str = ""  # "" = the ablation's method
    num_clusters: list = dataclasses.field(default_factory=list)  # the C values of this row ([] = the ablation's)


@dataclasses.dataclass
class AblationSpec:
    """What an ablation YAML holds."""

    method: str = "cimc"
    num_clusters: list = dataclasses.field(default_factory=list)
    rows: list = dataclasses.field(default_factory=list)  # of AblationRow fields


def load_spec(path: str | Path) -> tuple[AblationSpec, list[AblationRow]]:
    """Read an ablation YAML; row config paths are resolved against the YAML's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ablation spec {path} does not exist")
    spec = from_dict(AblationSpec, read_yaml(path) or {}, where=str(path))
    check_cluster_counts(spec.num_clusters, str(path))
    rows = []
    for i, values in enumerate(spec.rows):
        row = from_dict(AblationRow, values, where=f"{path}: rows[{i}]")
        check_cluster_counts(row.num_clusters, f"{path}: rows[{i}] ({row.name})")
        if row.config and not Path(row.config).is_absolute():
            row.config = str(path.parent / row.config)
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no rows")
    return spec, rows


def check_cluster_counts(counts: Sequence, where: str) -> None:
    """Each C of ``counts`` a whole number >= 1, else a ConfigError naming ``where`` (before anything trains)."""
    if not isinstance(counts, (list, tuple)):
        raise ConfigError(f"{where}: num_clusters must be a list of whole numbers, got {counts!r}")
    for c in counts:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1:
            raise ConfigError(f"{where}: num_clusters must be whole numbers >= 1, got {c!r}")


def rows_from_configs(configs: Sequence[str | Path]) -> list[AblationRow]:
    """One row per config file, named by the file's stem."""
    return [AblationRow(name=Path(c).stem, config=str(c)) for c in configs]


def loss_description(method: str, row: AblationRow) -> str:
    """``vat + mi + supcon`` from the row's resolved config (the method's name if it has no ``losses``)."""
    clusterer = load_method(method, row.config or None, row.overrides)
    losses = getattr(clusterer.config, "losses", None)
    return " + ".join(losses) if losses else method


def run_ablation(input_path: str | Path, ref_path: str | Path, rows: Sequence[AblationRow],
                 num_clusters: Sequence[int], output_dir: str | Path, method: str = "cimc",
                 feature_metrics: bool = True, exclude: str | Path | None = None) -> list[dict]:
    """Run every row at each of its C values (the row's ``num_clusters``, else ``num_clusters``), skipping
    finished ones, and write ``table.md`` / ``table.csv``.

    :param input_path: vectors to cluster (.npy [+ .ids], .scp, .ark).
    :param ref_path: ``utt label`` reference (e.g. Kaldi utt2spk), for the metrics only.
    :param feature_metrics: also compute silhouette / CH / DB on the input vectors.
    :param exclude: utterances to leave out of every row (first column), e.g. stage 3's ``short_train.txt``.
    :return: one dict per (row, C): ``row``, ``losses``, ``C`` and the metrics.
    """
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"ablation row names must be unique, got {names}")
    for name in names:  # each names a folder OUT/<name>_C<C>
        if not name.strip() or "/" in name or name in (".", ".."):
            raise ValueError(f"ablation row name {name!r} cannot name a folder (empty, '/', '.' or '..')")
    # Every row's config is resolved before the first is trained: a typo in the last row fails now, not hours in.
    losses = {}
    for row in rows:
        try:
            losses[row.name] = loss_description(row.method or method, row)
        except ValueError as e:
            raise ConfigError(f"ablation row {row.name!r}: {e}") from e
        if not (row.num_clusters or num_clusters):
            raise ConfigError(f"ablation row {row.name!r} has no C: give num_clusters (the row's or the ablation's)")
        check_cluster_counts(row.num_clusters or num_clusters, f"ablation row {row.name!r}")
    output_dir = Path(output_dir)
    results = []
    for row in rows:
        row_method = row.method or method
        for c in row.num_clusters or num_clusters:
            run_dir = output_dir / f"{row.name}_C{c}"
            metrics_file = run_dir / "metrics.json"
            logger.info("ablation row %s (%s), C = %d", row.name, losses[row.name], c)
            # A finished folder of the same row is skipped; one of a row since edited is refused, naming the change.
            cluster_to_dir(input_path, row_method, c, run_dir, row.config or None, row.overrides, ref=ref_path,
                           exclude=exclude)
            if metrics_file.is_file():
                logger.info("ablation row %s, C = %d: done, reusing %s", row.name, c, metrics_file)
                metrics = json.loads(metrics_file.read_text())
            else:
                metrics = evaluate_label_files(ref_path, run_dir / "labels.txt",
                                               features=input_path if feature_metrics else None)
                write_text_atomic(metrics_file, metrics_json(metrics))
            results.append({"row": row.name, "losses": losses[row.name], "C": c, **metrics})
    write_text_atomic(output_dir / "table.md", ablation_markdown(results))
    write_text_atomic(output_dir / "table.csv", ablation_csv(results))
    return results


def _columns(results: Sequence[dict]) -> list[str]:
    return ["row", "losses", "C"] + [m for m in METRIC_NAMES if any(m in r for r in results)]


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key in ("C", "num_clusters"):
        return str(int(value))
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def ablation_markdown(results: Sequence[dict]) -> str:
    """Table I layout as Markdown (metrics to 3 decimals)."""
    columns = _columns(results)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(k, r.get(k)) for k in columns) + " |" for r in results]
    return "\n".join(lines) + "\n"


def ablation_csv(results: Sequence[dict]) -> str:
    """Table I layout as CSV (full precision)."""
    columns = _columns(results)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    # counts as integers (the metrics dict keeps num_clusters a float, like every other value)
    writer.writerows({k: int(v) if k == "num_clusters" and v is not None else v for k, v in r.items()}
                     for r in results)
    return buffer.getvalue()
