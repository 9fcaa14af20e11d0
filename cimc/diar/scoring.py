"""Diarization error rate (missed speech, false alarm, speaker confusion) and Jaccard error rate.

Computed with pyannote.metrics over all recordings together (times summed, then divided), with a
forgiveness collar around every reference boundary and optionally without the overlapped regions.

``collar`` here follows NIST md-eval and dscore (VoxConverse, DIHARD): seconds removed on EACH side of a
reference boundary, so the usual "collar 0.25" forgives 0.5 s per boundary. pyannote's own ``collar``
is the total width, so we hand it ``2 * collar``.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Mapping, Sequence

from cimc.diar.rttm import Turn, to_annotation
from cimc.utils import name_some

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DiarizationScore:
    """Error rates in percent of the scored reference speech (``speech`` seconds)."""

    der: float
    missed: float
    false_alarm: float
    confusion: float
    jer: float
    speech: float  # seconds of reference speech scored (after collars, overlap removal)


def score_diarization(reference: Mapping[str, Sequence[Turn]], hypothesis: Mapping[str, Sequence[Turn]],
                      collar: float = 0.25, skip_overlap: bool = False) -> tuple[DiarizationScore, dict[str, DiarizationScore]]:
    """Score ``hypothesis`` against ``reference`` (both: recording id -> turns).

    A reference recording without hypothesis turns counts as all missed; a hypothesis for a recording
    that has no reference is an error (it would otherwise be dropped silently).

    :param collar: seconds forgiven on each side of every reference boundary (md-eval convention).
    :param skip_overlap: score only regions where at most one reference speaker talks.
    :return: the total over all recordings and the score of each recording.
    """
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    unknown = sorted(set(hypothesis) - set(reference))
    if unknown:
        raise ValueError(f"hypothesis has {len(unknown)} recording(s) with no reference: {name_some(unknown)}")
    if collar < 0:
        raise ValueError(f"collar must be >= 0 seconds, got {collar}")
    der_metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    jer_metric = JaccardErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    per_recording = {}
    for rec, ref_turns in sorted(reference.items()):
        ref = to_annotation(ref_turns, rec)
        hyp = to_annotation(hypothesis.get(rec, []), rec)
        # Scored region: from 0 to the last turn of either side (pyannote would guess the same, noisily).
        end = max([t.end for t in ref_turns] + [t.end for t in hypothesis.get(rec, [])] + [0.0])
        uem = Timeline([Segment(0.0, end)], uri=rec)
        der = der_metric(ref, hyp, uem=uem, detailed=True)
        jer = jer_metric(ref, hyp, uem=uem)
        per_recording[rec] = _score(der, jer)
    total = _score(der_metric[:], abs(jer_metric))
    return total, per_recording


def _score(components: Mapping[str, float], jer: float) -> DiarizationScore:
    speech = components["total"]
    scale = 100.0 / speech if speech > 0 else 0.0
    missed = components["missed detection"] * scale
    false_alarm = components["false alarm"] * scale
    confusion = components["confusion"] * scale
    return DiarizationScore(der=missed + false_alarm + confusion, missed=missed, false_alarm=false_alarm,
                            confusion=confusion, jer=100.0 * jer, speech=speech)


def format_table(rows: Sequence[tuple[str, str, DiarizationScore]]) -> str:
    """Markdown table of ``(method, condition, score)`` rows, percentages to two decimals."""
    header = "| method | overlap | DER % | missed % | false alarm % | confusion % | JER % | speech s |"
    lines = [header, "|" + " --- |" * 8]
    for method, condition, s in rows:
        lines.append(f"| {method} | {condition} | {s.der:.2f} | {s.missed:.2f} | {s.false_alarm:.2f} | "
                     f"{s.confusion:.2f} | {s.jer:.2f} | {s.speech:.1f} |")
    return "\n".join(lines) + "\n"
