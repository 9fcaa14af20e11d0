"""Stage 7 back-end: score trials from embeddings, report EER / minDCF, DET plot, comparison table.

    cimc sv score --trials data/trials.txt --vectors exp/sv/cimc/embeddings_test \
        --train-vectors exp/sv/cimc/embeddings_train --output-dir exp/sv/cimc/scores
    cimc sv table --system true=exp/sv/true/scores/results.json --system ivector=exp/ivector/results.txt

The output folder holds ``scores.txt`` (``enroll test score target|nontarget``), ``results.json``,
``results.txt`` (a table) and ``det.png``.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from cimc.data.trials import Trial, read_trials
from cimc.metrics.verification import format_results_table, plot_det, verification_results
from cimc.scoring import adaptive_snorm, cosine_scores
from cimc.sv.config import ScoreConfig
from cimc.utils import write_text_atomic
from cimc.vectors import load_vectors

logger = logging.getLogger(__name__)


def score_trials(
    trials: list[Trial], vectors: str | Path, config: ScoreConfig, train_vectors: str | Path | None = None
) -> np.ndarray:
    """(T,) scores of ``trials`` from the embeddings at ``vectors`` (PREFIX.npy/.ids).

    ``train_vectors`` (training-set embeddings) give the mean to subtract and the s-norm cohort; the
    test set itself is never used for either.
    """
    ids, x = load_vectors(vectors)
    needs_train = config.mean_subtraction or config.snorm
    if needs_train and train_vectors is None:
        raise ValueError("mean subtraction / s-norm need --train-vectors (training-set embeddings); "
                         "or set score.mean_subtraction=false and score.snorm=false")
    mean = cohort = None
    if train_vectors is not None:
        _, train = load_vectors(train_vectors)
        mean = train.mean(axis=0) if config.mean_subtraction else None
        cohort = train
    if config.snorm:
        return adaptive_snorm(ids, x, trials, cohort, config.cohort_size, mean, source=str(vectors))
    return cosine_scores(ids, x, trials, mean, source=str(vectors))


def write_results(output_dir: str | Path, name: str, trials: list[Trial], scores: np.ndarray,
                  p_targets=(0.01, 0.05)) -> dict:
    """Write scores.txt, results.json, results.txt and det.png under ``output_dir``; return the metrics."""
    output_dir = Path(output_dir)
    labels = np.array([t.target for t in trials])
    results = verification_results(scores, labels, p_targets)
    write_text_atomic(output_dir / "scores.txt", "".join(
        f"{t.enroll} {t.test} {s:.6f} {'target' if t.target else 'nontarget'}\n" for t, s in zip(trials, scores)))
    write_text_atomic(output_dir / "results.json", json.dumps({name: results}, indent=2) + "\n")
    write_text_atomic(output_dir / "results.txt", format_results_table({name: results}))
    plot_det({name: (scores, labels)}, output_dir / "det.png", title=f"DET: {name}")
    return results


def _column_key(title: str) -> str:
    """Table heading -> metric key: "EER (%)" -> eer, "minDCF (p=0.01)" -> mindcf_0.01, "#target" -> targets."""
    text = title.replace(" ", "").lower()
    dcf = re.fullmatch(r"min_?dcf\(p=([0-9.e-]+)\)", text)
    if dcf:
        return f"mindcf_{float(dcf.group(1)):g}"
    return {"eer(%)": "eer", "#target": "targets", "#nontarget": "nontargets"}.get(text, text)


def _parse_table(rows: list[list[str]]) -> dict[str, dict]:
    columns = [_column_key(c) for c in rows[0][1:]]
    return {r[0]: {c: float(v) for c, v in zip(columns, r[1:]) if v not in ("-", "")} for r in rows[1:]}


def read_results(path: str | Path) -> dict[str, dict]:
    """``{system: metrics}`` from a results file; EER in percent.

    Reads ``results.json`` (a sibling .json wins over a .txt), a Markdown table (``| system | EER (%) |
    ...``, as stage 3 writes), a :func:`format_results_table` table, or, failing those, lines holding
    the word "EER" and a number (first word = system).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    if path.suffix == ".json" or path.with_suffix(".json").is_file():
        return json.loads(path.with_suffix(".json").read_text())
    text = path.read_text().splitlines()
    markdown = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text if line.strip().startswith("|")]
    markdown = [r for r in markdown if not all(set(c) <= set("-: ") for c in r)]  # drop the |---| rule
    if len(markdown) >= 2:
        return _parse_table(markdown)
    plain = [line.split() for line in text if line.strip()]
    if len(plain) >= 3 and plain[0][0] == "system" and set(plain[1][0]) == {"-"}:
        return _parse_table([plain[0]] + plain[2:])
    found = {}
    for line in text:
        match = re.search(r"EER[^0-9]*([0-9]+(?:\.[0-9]+)?)", line)
        if match:
            found[line.split()[0] if not line.startswith("EER") else path.parent.name] = {"eer": float(match.group(1))}
    if not found:
        raise ValueError(f"{path}: no results table and no line with an EER value")
    return found


def compare_results(systems: dict[str, str | Path]) -> dict[str, dict]:
    """One row per system: ``{label: path}``; a file with several systems gives ``label/system`` rows."""
    rows = {}
    for label, path in systems.items():
        found = read_results(path)
        if len(found) == 1:
            rows[label] = next(iter(found.values()))
        else:
            rows.update({f"{label}/{name}": metrics for name, metrics in found.items()})
    return rows


def run_scoring(trials_path: str | Path, vectors: str | Path, output_dir: str | Path, config: ScoreConfig,
                train_vectors: str | Path | None = None, name: str = "system") -> dict:
    """Library side of ``cimc sv score``: read trials, score, write the result files; return the metrics."""
    trials = read_trials(trials_path)
    scores = score_trials(trials, vectors, config, train_vectors)
    results = write_results(output_dir, name, trials, scores, config.p_targets)
    logger.info("%s: EER %.3f%% on %d trials", name, results["eer"], len(trials))
    return results
