"""The Stage 0 data layout every recipe shares, written from Lhotse recordings and supervisions.

Under ``output_dir`` (``$data`` in run.sh), for a part such as ``train``::

    manifests/{part}_recordings.jsonl.gz   Lhotse RecordingSet
    manifests/{part}_supervisions.jsonl.gz Lhotse SupervisionSet (speaker = true speaker id)
    manifests/{part}_cuts.jsonl.gz         one MonoCut per utterance
    kaldi/{part}/wav.scp utt2spk spk2utt   Kaldi data dir (+ segments, spk2gender when known)

Every stage reads cut manifests through :func:`read_cuts` / :func:`iter_cuts`, whose errors name the file.
Cut id == supervision id == utterance id, and == recording id unless the corpus has Kaldi
``segments`` (several utterances per recording). The trials live in ``output_dir/trials.txt``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from cimc.utils import atomic_path, check_unique, name_some, write_text_atomic

logger = logging.getLogger(__name__)


# What Lhotse raises for a file that is not a manifest or is damaged (a truncated .gz is EOFError, a
# line that is not a cut TypeError, a wrong suffix AssertionError); each becomes an error naming the file.
_MANIFEST_ERRORS = (ValueError, TypeError, KeyError, AssertionError, EOFError, OSError)


def open_cuts(path: str | Path, what: str = "cuts manifest"):
    """The Lhotse CutSet at ``path``, lazy for .jsonl / .jsonl.gz (the first line is read to tell its type).

    Raises an error naming the file when it is missing, empty, not a Lhotse manifest, or a manifest of
    recordings or supervisions rather than cuts. Iterate with :func:`iter_cuts` to have a file damaged
    further on (e.g. a truncated .gz) named too. ``what`` names the file's role in the messages.
    """
    from lhotse import CutSet, load_manifest, load_manifest_lazy

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        manifest = load_manifest_lazy(path) if path.name.endswith((".jsonl", ".jsonl.gz")) else load_manifest(path)
    except _MANIFEST_ERRORS as err:
        raise ValueError(f"{what} {path} is not a Lhotse manifest ({type(err).__name__}: {err})") from err
    if manifest is None:
        raise ValueError(f"{what} {path} holds no cuts")
    if not isinstance(manifest, CutSet):
        raise ValueError(f"{what} {path} holds a {type(manifest).__name__}, not cuts "
                         f"(Stage 0 writes them as manifests/<part>_cuts.jsonl.gz)")
    return manifest


def iter_cuts(path: str | Path, what: str = "cuts manifest") -> Iterator:
    """Stream the cuts of ``path`` in file order (memory O(1)); see :func:`open_cuts` for the errors."""
    cuts = iter(open_cuts(path, what))
    count = 0
    while True:
        try:
            cut = next(cuts)
        except StopIteration:
            break
        except _MANIFEST_ERRORS as err:
            raise ValueError(f"{what} {path}: unreadable after its first {count} cuts "
                             f"({type(err).__name__}: {err})") from err
        count += 1
        yield cut
    if count == 0:
        raise ValueError(f"{what} {path} holds no cuts")


def read_cuts(path: str | Path, what: str = "cuts manifest") -> list:
    """All cuts of ``path`` in file order; see :func:`open_cuts` for the errors."""
    return list(iter_cuts(path, what))


def make_cuts(recordings, supervisions):
    """One MonoCut per supervision, spanning exactly that supervision.

    :param recordings: a Lhotse RecordingSet.
    :param supervisions: a SupervisionSet whose every segment has a speaker and a known recording.
    :return: a CutSet with cut id == supervision id, in supervision order.
    """
    from lhotse import CutSet, MonoCut
    from lhotse.utils import fastcopy

    check_unique((s.id for s in supervisions), "utterance")
    # Lhotse's RecordingSet looks ids up by scanning (O(N) each); VoxCeleb2 has 1.09 M: use a dict.
    by_id = {r.id: r for r in recordings}
    missing = [s.id for s in supervisions if s.recording_id not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} utterance(s) refer to unknown recordings: {name_some(missing)}")
    no_speaker = [s.id for s in supervisions if not s.speaker]
    if no_speaker:
        raise ValueError(f"{len(no_speaker)} utterance(s) have no speaker: {name_some(no_speaker)}")
    cuts = []
    for sup in supervisions:
        channel = sup.channel if isinstance(sup.channel, int) else 0
        cuts.append(MonoCut(
            id=sup.id, start=sup.start, duration=sup.duration, channel=channel,
            recording=by_id[sup.recording_id], supervisions=[fastcopy(sup, start=0.0)],
        ))
    return CutSet.from_cuts(cuts)


def wav_scp_entry(recording) -> str:
    """The wav.scp value for ``recording``: a path, or a pipe that decodes it (as Kaldi's recipes do)."""
    source = recording.sources[0]
    if source.type == "command":
        return f"{source.source} |"
    if source.type != "file":
        raise ValueError(f"recording {recording.id}: a {source.type!r} audio source cannot go into wav.scp")
    path = source.source
    if Path(path).suffix.lower() in {".m4a", ".mp4", ".aac"}:
        return f"ffmpeg -v 8 -i {path} -f wav -acodec pcm_s16le - |"
    return path


def write_kaldi_dir(kaldi_dir: str | Path, recordings, supervisions) -> None:
    """Kaldi data dir (sorted, as Kaldi's validate_data_dir.sh wants) for the given manifests."""
    kaldi_dir = Path(kaldi_dir)
    sups = sorted(supervisions, key=lambda s: s.id)
    utt2spk = "".join(f"{s.id} {s.speaker}\n" for s in sups)
    spk2utt_map: dict[str, list[str]] = defaultdict(list)
    for s in sups:
        spk2utt_map[s.speaker].append(s.id)
    segmented = any(s.id != s.recording_id or s.start > 0 for s in sups)
    used = {s.recording_id for s in sups}
    wav_scp = sorted((r.id, wav_scp_entry(r)) for r in recordings if r.id in used)
    write_text_atomic(kaldi_dir / "wav.scp", "".join(f"{rid} {entry}\n" for rid, entry in wav_scp))
    write_text_atomic(kaldi_dir / "utt2spk", utt2spk)
    write_text_atomic(kaldi_dir / "spk2utt", "".join(f"{k} {' '.join(v)}\n" for k, v in sorted(spk2utt_map.items())))
    if segmented:
        write_text_atomic(
            kaldi_dir / "segments",
            "".join(f"{s.id} {s.recording_id} {s.start:.3f} {s.start + s.duration:.3f}\n" for s in sups),
        )
    genders = {s.speaker: s.gender.lower()[0] for s in sups if s.gender}
    if genders and len(genders) == len(spk2utt_map):
        write_text_atomic(kaldi_dir / "spk2gender", "".join(f"{k} {v}\n" for k, v in sorted(genders.items())))


def write_data_layout(output_dir: str | Path, part: str, recordings, supervisions):
    """Write the manifests and the Kaldi dir of ``part`` under ``output_dir``; return its CutSet."""
    output_dir = Path(output_dir)
    cuts = make_cuts(recordings, supervisions)
    manifests = output_dir / "manifests"
    for manifest, kind in ((recordings, "recordings"), (supervisions, "supervisions"), (cuts, "cuts")):
        with atomic_path(manifests / f"{part}_{kind}.jsonl.gz") as tmp:
            manifest.to_file(tmp)
    write_kaldi_dir(output_dir / "kaldi" / part, recordings, supervisions)
    speakers = {s.speaker for s in supervisions}
    hours = sum(c.duration for c in cuts) / 3600
    logger.info("%s: %d utterances, %d speakers, %.2f h -> %s", part, len(cuts), len(speakers), hours, output_dir)
    return cuts
