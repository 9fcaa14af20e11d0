"""Tune one numeric clustering parameter (e.g. AHC's distance threshold) for DER on a development set.

The threshold that suits one embedding extractor is wrong for another, so recipes tune it on
development conversations with disjoint speakers and apply the best value to the evaluation set.
"""
from __future__ import annotations

import copy
import logging
from typing import Mapping, Sequence

import numpy as np

from cimc.diar.pipeline import ClusteringConfig, diarize
from cimc.diar.rttm import Turn, group_by_recording
from cimc.diar.scoring import score_diarization

logger = logging.getLogger(__name__)


def tune_parameter(ids: Sequence[str], vectors: np.ndarray, method: str, config: ClusteringConfig,
                   reference: Mapping[str, list[Turn]], field: str, values: Sequence[float],
                   collar: float = 0.25) -> tuple[float, list[tuple[float, float, float]]]:
    """Try each of ``values`` for ``config.methods[method][field]``; keep the lowest DER.

    :param ids: (N,) sub-segment ids of the development recordings; ``vectors`` (N, D) their embeddings.
    :param reference: development reference turns by recording.
    :return: the best value, and ``(value, DER %, mean speakers per recording)`` for every value tried.
    """
    if not values:
        raise ValueError("no values to try")
    trials = []
    for value in values:
        trial = copy.deepcopy(config)
        trial.methods = {**trial.methods, method: {**(trial.methods.get(method) or {}), field: value}}
        turns, _ = diarize(ids, vectors, method, trial, reference)
        hypothesis = group_by_recording(turns)
        total, _ = score_diarization(reference, hypothesis, collar=collar)
        speakers = float(np.mean([len({t.speaker for t in group}) for group in hypothesis.values()]))
        trials.append((float(value), total.der, speakers))
        logger.info("%s %s=%g: DER %.2f %%, %.1f speakers per recording", method, field, value, total.der, speakers)
    best = min(trials, key=lambda row: row[1])[0]
    return best, trials


def format_trials(method: str, field: str, trials: Sequence[tuple[float, float, float]], best: float) -> str:
    """Markdown table of the tuning run, the chosen row marked."""
    lines = [f"| {method} {field} | DER % | speakers / recording | |", "| --- | --- | --- | --- |"]
    for value, der, speakers in trials:
        lines.append(f"| {value:g} | {der:.2f} | {speakers:.2f} | {'best' if value == best else ''} |")
    return "\n".join(lines) + "\n"
