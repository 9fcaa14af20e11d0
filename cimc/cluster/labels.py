"""Cluster labels on disk: ``labels.npy``, ``utt label`` text (Kaldi utt2spk style), and Lhotse cuts.

The cuts form is what stage 6 trains on: each supervision's ``speaker`` becomes the pseudo-label
(``str(label)``) and the true speaker is kept in ``supervision.custom["true_speaker"]``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from cimc.data.layout import iter_cuts
from cimc.utils import atomic_path, name_some, write_text_atomic

logger = logging.getLogger(__name__)

TRUE_SPEAKER_KEY = "true_speaker"


def write_labels(out_dir: str | Path, ids: Sequence[str], labels: np.ndarray) -> None:
    """Write ``out_dir/labels.npy`` ((N,) int64, row order of ``ids``) and ``out_dir/labels.txt`` (``utt label``)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1 or labels.size != len(ids):
        raise ValueError(f"{len(ids)} utterance ids but labels of shape {labels.shape}")
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "labels.npy") as tmp:
        np.save(tmp, labels)
    write_text_atomic(out_dir / "labels.txt", "".join(f"{u} {l}\n" for u, l in zip(ids, labels)))


def read_label_file(path: str | Path) -> dict[str, str]:
    """Read ``utt label`` lines (Kaldi utt2spk, labels.txt) into {utt: label}.

    Blank lines are skipped; a line without exactly two fields or a repeated utterance raises
    ``ValueError`` naming the file and line, a binary file (not UTF-8 text) one naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist")
    labels: dict[str, str] = {}
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 2:
                    raise ValueError(f"{path}:{lineno}: expected 'utterance label', got {line.strip()!r}")
                utt, label = fields
                if utt in labels:
                    raise ValueError(f"{path}:{lineno}: utterance {utt!r} appears twice")
                labels[utt] = label
    except UnicodeDecodeError as e:  # e.g. labels.npy given for labels.txt; Python's message names no file
        hint = "; a .npy holds no utterance ids: give the labels.txt beside it" if path.suffix == ".npy" else ""
        raise ValueError(f"{path}: not a text file of 'utterance label' lines (not UTF-8 text){hint}") from e
    if not labels:
        raise ValueError(f"{path}: no labels")
    return labels


def join_labels(ref: dict[str, str], hyp: dict[str, str], ref_name: str = "ref",
                hyp_name: str = "hyp") -> tuple[list[str], list[str], list[str]]:
    """Utterances present in both, with their labels: (utts, ref labels, hyp labels), sorted by utterance.

    Utterances present in only one are logged by count and name; none in common raises ``ValueError``.
    """
    common = sorted(ref.keys() & hyp.keys())
    only_ref = sorted(ref.keys() - hyp.keys())
    only_hyp = sorted(hyp.keys() - ref.keys())
    if only_ref:
        logger.warning("%d utterances of %s are not in %s (ignored): %s", len(only_ref), ref_name, hyp_name,
                       name_some(sorted(only_ref)))
    if only_hyp:
        logger.warning("%d utterances of %s are not in %s (ignored): %s", len(only_hyp), hyp_name, ref_name,
                       name_some(sorted(only_hyp)))
    if not common:
        raise ValueError(f"{ref_name} and {hyp_name} have no utterance in common "
                         f"(e.g. {name_some(sorted(ref), 3)} vs {name_some(sorted(hyp), 3)})")
    return common, [ref[u] for u in common], [hyp[u] for u in common]


def whole_cut_supervision(cut, speaker: str):
    """A supervision spanning the whole ``cut`` with ``speaker``: where a cut had none, the pseudo-label needs one."""
    from lhotse import SupervisionSegment

    return SupervisionSegment(id=cut.id, recording_id=cut.recording_id, start=0.0, duration=cut.duration,
                              channel=cut.channel, speaker=speaker, custom={TRUE_SPEAKER_KEY: None})


def write_pseudo_label_cuts(cuts_path: str | Path, ids: Sequence[str], labels: np.ndarray,
                            output: str | Path) -> int:
    """Copy the cuts at ``cuts_path`` to ``output`` with pseudo-labels as supervision speakers.

    Streams the manifest (memory O(N) for the label map only). Cuts without a label (e.g. dropped by
    an earlier stage) are left out with a warning; a label whose utterance has no cut is an error. A cut
    without supervisions (an unlabelled corpus) gets one spanning it, so stage 6 finds its label.

    :param ids: (N,) utterance ids (== cut ids); :param labels: (N,) int cluster labels.
    :return: the number of cuts written.
    """
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    label_of = {u: str(int(l)) for u, l in zip(ids, labels)}
    seen: set[str] = set()
    dropped: list[str] = []
    with atomic_path(output) as tmp:
        with CutSet.open_writer(tmp) as writer:
            for cut in iter_cuts(cuts_path):
                if cut.id not in label_of:
                    dropped.append(cut.id)
                    continue
                seen.add(cut.id)
                supervisions = [
                    fastcopy(s, speaker=label_of[cut.id], custom={**(s.custom or {}), TRUE_SPEAKER_KEY: s.speaker})
                    for s in cut.supervisions
                ] or [whole_cut_supervision(cut, label_of[cut.id])]  # an unlabelled corpus may have none
                writer.write(fastcopy(cut, supervisions=supervisions))
        missing = sorted(label_of.keys() - seen)
        if missing:
            raise ValueError(f"{len(missing)} labelled utterances have no cut in {cuts_path}: {name_some(sorted(missing))}")
    if dropped:
        logger.warning("%d cuts of %s have no cluster label and were left out: %s", len(dropped), cuts_path,
                       name_some(sorted(dropped)))
    return len(seen)
