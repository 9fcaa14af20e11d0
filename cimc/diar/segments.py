"""Time segments of the diarization pipeline: speech regions, uniform sub-segments, labelled turns.

All times are in seconds. A *region* is an interval of speech (from a VAD or the reference); it is cut
into overlapping fixed-length *sub-segments*, each gets one embedding and one cluster label, and
consecutive sub-segments with the same label are merged back into speaker turns::

    speech region    |=================================|
    sub-segments     [----a----]
    (1.5 s / 0.75 s)      [----a----]
                               [----b----]
                                    [----b----]
    turns            [---a---------)[------b-----------]   overlaps split at their midpoint
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from cimc.diar.rttm import Turn

_EPS = 1e-6  # seconds; boundaries closer than this are the same boundary


def merge_intervals(intervals: Iterable[tuple[float, float]], max_gap: float = 0.0) -> list[tuple[float, float]]:
    """Union of ``(start, end)`` intervals, also joining those separated by at most ``max_gap`` seconds.

    >>> merge_intervals([(3.0, 4.0), (0.0, 1.0), (0.5, 2.0), (2.1, 2.5)], max_gap=0.2)
    [(0.0, 2.5), (3.0, 4.0)]
    """
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + max_gap + _EPS:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(float(s), float(e)) for s, e in merged]


def regions_from_turns(turns: Iterable[Turn]) -> list[tuple[float, float]]:
    """Speech regions of reference turns (the "oracle speech activity" option): their union."""
    return merge_intervals((t.start, t.end) for t in turns if t.duration > 0)


def regions_from_vad(voiced: np.ndarray, frame_shift: float = 0.01, min_speech: float = 0.2,
                     min_silence: float = 0.3) -> list[tuple[float, float]]:
    """Speech regions from per-frame VAD decisions.

    Frame ``t`` covers ``[t * frame_shift, (t + 1) * frame_shift)``. Pauses shorter than ``min_silence``
    are bridged (a breath is not a turn boundary), then regions shorter than ``min_speech`` dropped.

    :param voiced: (T,) bool, one decision per frame.
    >>> regions_from_vad(np.array([0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1], bool), 0.1, min_speech=0.15, min_silence=0.15)
    [(0.1, 0.7)]
    """
    voiced = np.asarray(voiced, dtype=bool)
    padded = np.concatenate([[False], voiced, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    runs = [(s * frame_shift, e * frame_shift) for s, e in zip(edges[::2], edges[1::2])]
    bridged = merge_intervals(runs, max_gap=min_silence)
    return [(round(s, 6), round(e, 6)) for s, e in bridged if e - s >= min_speech - _EPS]


def uniform_subsegments(regions: Sequence[tuple[float, float]], window: float = 1.5,
                        shift: float = 0.75) -> np.ndarray:
    """Cut each region into windows of ``window`` seconds every ``shift`` seconds.

    The last window of a region ends at the region's end (it may be shorter); a region shorter than
    ``window`` is one sub-segment. Windows never cross a region boundary.

    :return: (N, 2) float64 ``[start, end]`` rows, sorted by start.

    >>> uniform_subsegments([(0.0, 3.2), (5.0, 5.5)]).tolist()
    [[0.0, 1.5], [0.75, 2.25], [1.5, 3.0], [2.25, 3.2], [5.0, 5.5]]
    """
    if not 0 < shift <= window:
        raise ValueError(f"need 0 < shift ({shift}) <= window ({window}) seconds")
    rows = []
    for start, end in regions:
        if end - start <= 0:
            continue
        begin = start
        while begin + window < end - _EPS:
            rows.append((begin, begin + window))
            begin += shift
        rows.append((begin, end))
    return np.round(np.asarray(rows, dtype=np.float64).reshape(-1, 2), 6)


def labels_to_turns(recording_id: str, subsegments: np.ndarray, labels: Sequence, prefix: str = "spk") -> list[Turn]:
    """Speaker turns from labelled sub-segments.

    Where two consecutive sub-segments overlap, the boundary goes to the middle of the overlap
    (Kaldi's diarization/make_rttm.py rule); then touching sub-segments with the same label merge.

    :param subsegments: (N, 2) ``[start, end]`` seconds, as :func:`uniform_subsegments` returns.
    :param labels: (N,) cluster labels; the speaker name is ``f"{prefix}{label}"``.

    >>> labels_to_turns("r", np.array([[0, 1.5], [0.75, 2.25], [1.5, 3.0], [4, 5]]), [0, 0, 1, 1])
    ... # doctest: +NORMALIZE_WHITESPACE
    [Turn(recording_id='r', start=0.0, duration=1.875, speaker='spk0', channel=1),
     Turn(recording_id='r', start=1.875, duration=1.125, speaker='spk1', channel=1),
     Turn(recording_id='r', start=4.0, duration=1.0, speaker='spk1', channel=1)]
    """
    subsegments = np.asarray(subsegments, dtype=np.float64).reshape(-1, 2)
    if len(labels) != len(subsegments):
        raise ValueError(f"{recording_id}: {len(labels)} labels for {len(subsegments)} sub-segments")
    order = np.argsort(subsegments[:, 0], kind="stable")
    bounds = subsegments[order].copy()
    names = [f"{prefix}{labels[i]}" for i in order]
    for i in range(len(bounds) - 1):
        if bounds[i + 1, 0] < bounds[i, 1]:
            middle = (bounds[i + 1, 0] + bounds[i, 1]) / 2
            bounds[i, 1] = bounds[i + 1, 0] = middle
    turns: list[list] = []
    for (start, end), name in zip(bounds, names):
        if turns and turns[-1][2] == name and start <= turns[-1][1] + _EPS:
            turns[-1][1] = max(turns[-1][1], end)
        else:
            turns.append([start, end, name])
    return [Turn(recording_id, round(float(s), 3), round(float(e - s), 3), name) for s, e, name in turns if e > s]


def write_segments(regions: dict[str, Sequence[tuple[float, float]]], path) -> None:
    """Kaldi ``segments`` file: ``<segment-id> <recording-id> <start> <end>``, ids ``<rec>-<start ms>-<end ms>``."""
    from cimc.utils import write_text_atomic

    lines = [f"{segment_id(rec, s, e)} {rec} {s:.3f} {e:.3f}\n"
             for rec, spans in sorted(regions.items()) for s, e in spans]
    write_text_atomic(path, "".join(lines))


def segment_id(recording_id: str, start: float, end: float) -> str:
    """Kaldi-style sortable id of a piece of a recording: ``<rec>-<start ms:08d>-<end ms:08d>``."""
    return f"{recording_id}-{int(round(start * 1000)):08d}-{int(round(end * 1000)):08d}"


def read_segments(path) -> dict[str, list[tuple[str, float, float]]]:
    """Recording id -> ``[(segment id, start, end), ...]`` (sorted by start) from a Kaldi ``segments`` file."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"segments file {path} does not exist")
    regions: dict[str, list[tuple[str, float, float]]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            seg, rec, start, end = fields[0], fields[1], float(fields[2]), float(fields[3])
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{number}: expected '<segment> <recording> <start> <end>', got {line!r}") from None
        if end <= start:
            raise ValueError(f"{path}:{number}: segment {seg} ends ({end}) before it starts ({start})")
        regions.setdefault(rec, []).append((seg, start, end))
    return {rec: sorted(spans, key=lambda x: x[1]) for rec, spans in sorted(regions.items())}
