"""Speaker turns and their file format, RTTM (NIST Rich Transcription Time Marked).

One line per turn, ten space-separated fields, times in seconds::

    SPEAKER <recording> <channel> <start> <duration> <NA> <NA> <speaker> <NA> <NA>

:class:`Turn` is the in-memory form used by every diarization step; it converts to a
``pyannote.core.Annotation`` (scoring) and to and from a Lhotse ``SupervisionSet`` (manifests).
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from cimc.utils import name_some, write_text_atomic


@dataclasses.dataclass(frozen=True, order=True)
class Turn:
    """One speaker speaking in one recording from ``start`` for ``duration`` seconds."""

    recording_id: str
    start: float  # seconds
    duration: float  # seconds
    speaker: str
    channel: int = 1

    @property
    def end(self) -> float:
        """``start + duration`` in seconds."""
        return self.start + self.duration


class RttmError(ValueError):
    """A malformed RTTM line; the message names the file and line."""


def parse_rttm_line(line: str, where: str) -> Turn | None:
    """The turn on one RTTM line, or None for a blank line, a comment or a non-SPEAKER record."""
    fields = line.split()
    if not fields or fields[0].startswith("#") or fields[0] != "SPEAKER":
        return None
    if len(fields) < 8:
        raise RttmError(f"{where}: expected 10 fields 'SPEAKER rec chan start dur <NA> <NA> spk <NA> <NA>', "
                        f"got {len(fields)}: {line.strip()!r}")
    try:
        start, duration = float(fields[3]), float(fields[4])
        channel = int(fields[2]) if fields[2] not in ("<NA>", "NA") else 1
    except ValueError as error:
        raise RttmError(f"{where}: bad number in {line.strip()!r} ({error})") from None
    if start < 0 or duration < 0:
        raise RttmError(f"{where}: negative start or duration in {line.strip()!r}")
    return Turn(fields[1], start, duration, fields[7], channel)


def read_rttm(path: str | Path) -> list[Turn]:
    """All SPEAKER turns of an RTTM file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RTTM file {path} does not exist")
    turns = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            turn = parse_rttm_line(line, f"{path}:{number}")
            if turn is not None:
                turns.append(turn)
    return turns


def format_rttm(turns: Iterable[Turn]) -> str:
    """RTTM text of ``turns``, sorted by recording then start time (times to the millisecond)."""
    lines = [
        f"SPEAKER {t.recording_id} {t.channel} {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in sorted(turns, key=lambda t: (t.recording_id, t.start, t.speaker))
    ]
    return "".join(lines)


def write_rttm(turns: Iterable[Turn], path: str | Path) -> None:
    """Write ``turns`` as RTTM to ``path`` (atomically)."""
    write_text_atomic(path, format_rttm(turns))


def group_by_recording(turns: Iterable[Turn]) -> dict[str, list[Turn]]:
    """Turns of each recording, sorted by start time."""
    groups: dict[str, list[Turn]] = defaultdict(list)
    for turn in turns:
        groups[turn.recording_id].append(turn)
    return {rec: sorted(group, key=lambda t: (t.start, t.speaker)) for rec, group in sorted(groups.items())}


def to_annotation(turns: Sequence[Turn], uri: str) -> Any:
    """A ``pyannote.core.Annotation`` of one recording's turns (turns of zero length are skipped)."""
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri=uri)
    for index, turn in enumerate(turns):
        if turn.duration > 0:
            annotation[Segment(turn.start, turn.end), index] = turn.speaker
    return annotation


def turns_from_supervisions(supervisions: Iterable[Any]) -> list[Turn]:
    """Turns of Lhotse ``SupervisionSegment`` objects (each must have a speaker)."""
    turns = []
    for sup in supervisions:
        if sup.speaker is None:
            raise ValueError(f"supervision {sup.id} of recording {sup.recording_id} has no speaker")
        turns.append(Turn(sup.recording_id, float(sup.start), float(sup.duration), sup.speaker))
    return turns


def supervisions_from_turns(turns: Iterable[Turn]) -> Any:
    """A Lhotse ``SupervisionSet`` with one supervision per turn, ids ``<recording>-<index:05d>``."""
    from lhotse import SupervisionSegment, SupervisionSet

    segments = []
    for rec, group in group_by_recording(turns).items():
        for index, turn in enumerate(group):
            segments.append(SupervisionSegment(id=f"{rec}-{index:05d}", recording_id=rec, start=turn.start,
                                               duration=turn.duration, channel=0, speaker=turn.speaker))
    return SupervisionSet.from_segments(segments)


def recording_cuts(recordings: Any, supervisions: Any) -> Any:
    """A Lhotse ``CutSet`` with one cut per recording, cut id == recording id, holding its supervisions."""
    from lhotse import CutSet, MonoCut

    by_recording = defaultdict(list)
    for sup in supervisions:
        by_recording[sup.recording_id].append(sup)
    unknown = sorted(set(by_recording) - set(recordings.ids))
    if unknown:
        raise ValueError(f"{len(unknown)} supervision recording id(s) have no recording: {name_some(unknown)}")
    return CutSet.from_cuts(
        MonoCut(id=rec.id, start=0.0, duration=rec.duration, channel=0, recording=rec,
                supervisions=sorted(by_recording[rec.id], key=lambda s: s.start))
        for rec in recordings
    )
