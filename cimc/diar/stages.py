"""File-level steps of the diarization recipes; each `cimc diar` subcommand wraps one of them.

Every step reads manifests/files, calls the library (:mod:`cimc.diar.pipeline`, :mod:`cimc.diar.scoring`)
and writes its outputs atomically, with the resolved config beside them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping

from cimc.config import save_config
from cimc.data.layout import read_cuts
from cimc.diar.pipeline import ClusteringConfig, DiarizationConfig, diarize, speech_activity, subsegment_cuts
from cimc.diar.rttm import group_by_recording, read_rttm, write_rttm
from cimc.diar.scoring import format_table, score_diarization
from cimc.diar.segments import read_segments, write_segments
from cimc.utils import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)


def write_speech_segments(cuts_path: str | Path, config: DiarizationConfig, output: str | Path) -> dict:
    """Stage 1: speech regions of each recording cut -> Kaldi ``segments`` file ``output``."""
    regions = speech_activity(read_cuts(cuts_path), config.speech)
    write_segments(regions, output)
    save_config(config, Path(output).parent / "config.yaml")
    total = sum(e - s for spans in regions.values() for s, e in spans)
    logger.info("%d recordings, %d speech segments, %.1f s of speech (%s) -> %s", len(regions),
                sum(len(v) for v in regions.values()), total, config.speech.source, output)
    return regions


def write_subsegment_cuts(cuts_path: str | Path, segments_path: str | Path, config: DiarizationConfig,
                          output: str | Path) -> int:
    """Stage 2: uniform sub-segments of the speech segments -> a cuts manifest ``output``."""
    pieces = subsegment_cuts(read_cuts(cuts_path), read_segments(segments_path), config.subsegment)
    if len(pieces) == 0:
        raise ValueError(f"no sub-segments: {segments_path} has no speech")
    with atomic_path(output) as tmp:
        pieces.to_file(tmp)
    logger.info("%d sub-segments of %.2f s every %.2f s -> %s", len(pieces), config.subsegment.window,
                config.subsegment.shift, output)
    return len(pieces)


def run_clustering(embeddings: str | Path, method: str, config: DiarizationConfig, output_dir: str | Path,
                   ref_rttm: str | Path | None = None) -> Path:
    """Stage 3: cluster each recording's sub-segment embeddings with ``method``.

    Writes ``labels.txt`` (``<sub-segment> <label>``), ``rttm`` (merged turns) and ``config.yaml``.
    :return: the path of the hypothesis RTTM.
    """
    from cimc.vectors import load_vectors

    output_dir = Path(output_dir)
    ids, vectors = load_vectors(embeddings)
    reference = group_by_recording(read_rttm(ref_rttm)) if ref_rttm else None
    clustering: ClusteringConfig = config.clustering
    turns, labels = diarize(ids, vectors, method, clustering, reference)
    write_text_atomic(output_dir / "labels.txt", "".join(f"{seg} {label}\n" for seg, label in labels.items()))
    write_rttm(turns, output_dir / "rttm")
    save_config(config, output_dir / "config.yaml")
    counts = {rec: len({t.speaker for t in group}) for rec, group in group_by_recording(turns).items()}
    logger.info("%s: %d recordings, speakers found per recording: %s", method, len(counts), counts)
    return output_dir / "rttm"


def run_tuning(embeddings: str | Path, ref_rttm: str | Path, method: str, field: str, values: list[float],
               config: DiarizationConfig, output_dir: str | Path) -> str:
    """Tune ``field`` of ``method`` on development embeddings for DER.

    Writes ``tuning.txt`` (table) and ``best_override.txt``: one ``clustering.methods.M.F=V`` line that
    `cimc diar cluster` takes as an override on the evaluation set.
    :return: the override line.
    """
    from cimc.diar.tuning import format_trials, tune_parameter
    from cimc.vectors import load_vectors

    output_dir = Path(output_dir)
    ids, vectors = load_vectors(embeddings)
    reference = group_by_recording(read_rttm(ref_rttm))
    best, trials = tune_parameter(ids, vectors, method, config.clustering, reference, field, values, config.collar)
    table = format_trials(method, field, trials, best)
    write_text_atomic(output_dir / "tuning.txt", table)
    override = f"clustering.methods.{method}.{field}={best:g}"
    write_text_atomic(output_dir / "best_override.txt", override + "\n")
    logger.info("tuned on %d development recordings:\n%s", len(reference), table)
    return override


def run_scoring(ref_rttm: str | Path, hypotheses: Mapping[str, str | Path], output_dir: str | Path,
                collar: float = 0.25, plot_recording: str | None = None) -> str:
    """Stage 4: DER / JER of each system, with and without overlapped speech; table, JSON and PNGs.

    Writes ``results.txt`` (markdown table), ``results.json`` and, for ``plot_recording`` (default:
    the first reference recording), ``timeline_<system>.png``.
    :return: the table.
    """
    from cimc.diar.plot import plot_timeline

    output_dir = Path(output_dir)
    reference = group_by_recording(read_rttm(ref_rttm))
    rows, results = [], {}
    for name, path in hypotheses.items():
        hypothesis = group_by_recording(read_rttm(path))
        results[name] = {}
        for condition, skip in (("with", False), ("without", True)):
            total, per_rec = score_diarization(reference, hypothesis, collar=collar, skip_overlap=skip)
            rows.append((name, condition, total))
            results[name][f"{condition}_overlap"] = {"total": vars(total),
                                                     "recordings": {r: vars(s) for r, s in per_rec.items()}}
        rec = plot_recording or next(iter(reference))
        if rec not in reference:
            raise ValueError(f"--plot-recording {rec} is not in {ref_rttm}")
        plot_timeline(reference[rec], hypothesis.get(rec, []), output_dir / f"timeline_{name}.png",
                      title=f"{rec}: reference (top) vs {name} (bottom)")
    table = f"collar {collar} s each side; {len(reference)} recordings\n\n" + format_table(rows)
    write_text_atomic(output_dir / "results.txt", table)
    write_text_atomic(output_dir / "results.json", json.dumps(results, indent=1))
    return table
