"""VoxConverse data preparation through ``lhotse.recipes.prepare_voxconverse`` from a local copy.

Expected layout (what ``lhotse download voxconverse`` leaves: the audio zips plus the annotation
repository github.com/joonson/voxconverse merged in)::

    CORPUS/dev/<id>.wav   CORPUS/dev/<id>.rttm    (216 recordings)
    CORPUS/test/<id>.wav  CORPUS/test/<id>.rttm   (232 recordings)

The standard scoring (the VoxConverse challenge, dscore) uses a 0.25 s collar and keeps overlapped
speech; our score stage reports both with and without overlap.
"""
from __future__ import annotations

import logging
from pathlib import Path

from cimc.diar.rttm import recording_cuts, turns_from_supervisions, write_rttm
from cimc.utils import atomic_path, name_some

logger = logging.getLogger(__name__)

PARTS = ("dev", "test")


def check_layout(corpus_dir: str | Path) -> dict[str, int]:
    """Number of wav files per part; raises naming what is missing (a part folder, an RTTM per wav)."""
    corpus_dir = Path(corpus_dir)
    counts = {}
    for part in PARTS:
        folder = corpus_dir / part
        if not folder.is_dir():
            raise FileNotFoundError(f"VoxConverse {part} folder {folder} does not exist (expected {part}/<id>.wav + .rttm)")
        wavs = sorted(folder.glob("*.wav"))
        if not wavs:
            raise FileNotFoundError(f"no .wav files in {folder}")
        missing = [w.with_suffix(".rttm").name for w in wavs if not w.with_suffix(".rttm").is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(wavs)} recordings in {folder} have no RTTM: "
                                    f"{name_some(missing)}; copy dev/ and test/ of github.com/joonson/voxconverse beside the audio")
        counts[part] = len(wavs)
    return counts


def prepare_voxconverse(corpus_dir: str | Path, output_dir: str | Path) -> dict[str, int]:
    """Write ``{part}_{recordings,supervisions,cuts}.jsonl.gz`` and ``{part}_ref.rttm`` for dev and test.

    Cuts follow the recipes' contract: one cut per recording, cut id == recording id, one supervision
    per reference turn (speaker = the corpus's speaker label).
    :return: number of recordings per part.
    """
    from lhotse.recipes import prepare_voxconverse as lhotse_prepare_voxconverse

    check_layout(corpus_dir)
    output_dir = Path(output_dir)
    manifests = lhotse_prepare_voxconverse(corpus_dir, output_dir=None, split_test=False)
    counts = {}
    for part in PARTS:
        recordings, supervisions = manifests[part]["recordings"], manifests[part]["supervisions"]
        outputs = {"recordings": recordings, "supervisions": supervisions,
                   "cuts": recording_cuts(recordings, supervisions)}
        for name, manifest in outputs.items():
            with atomic_path(output_dir / f"{part}_{name}.jsonl.gz") as tmp:
                manifest.to_file(tmp)
        write_rttm(turns_from_supervisions(supervisions), output_dir / f"{part}_ref.rttm")
        counts[part] = len(recordings)
        logger.info("VoxConverse %s: %d recordings, %d turns, %.1f h", part, len(recordings), len(supervisions),
                    sum(r.duration for r in recordings) / 3600)
    return counts
