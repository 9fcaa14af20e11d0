"""Verification trials: Kaldi-style text ``enroll test target|nontarget``, one trial a line."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cimc.utils import name_some, write_text_atomic

LABELS = {"target": True, "nontarget": False}


@dataclass(frozen=True)
class Trial:
    """One trial: the enrolment and test utterance ids, and whether they share a speaker."""

    enroll: str
    test: str
    target: bool


def read_trials(path: str | Path) -> list[Trial]:
    """Read a Kaldi trials file; a malformed line raises ``ValueError`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trials file {path} does not exist")
    trials = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or fields[2] not in LABELS:
            raise ValueError(f"{path}:{number}: expected 'enroll test target|nontarget', got {line!r}")
        trials.append(Trial(fields[0], fields[1], LABELS[fields[2]]))
    if not trials:
        raise ValueError(f"trials file {path} holds no trials")
    return trials


def write_trials(path: str | Path, trials: Iterable[Trial]) -> None:
    """Write trials in the Kaldi text format (atomically)."""
    write_text_atomic(path, "".join(f"{t.enroll} {t.test} {'target' if t.target else 'nontarget'}\n" for t in trials))


def check_trials_known(trials: Sequence[Trial], known_ids: Iterable[str], source: str) -> None:
    """Raise ``KeyError`` naming (up to 10 of) the utterances in ``trials`` that ``known_ids`` lacks."""
    known = set(known_ids)
    missing = sorted({u for t in trials for u in (t.enroll, t.test)} - known)
    if missing:
        raise KeyError(
            f"{len(missing)} utterance(s) named in the trials have no entry in {source}: "
            f"{name_some(missing)}"
        )
