"""Build Lhotse recordings from audio files, naming and counting every file that cannot be used.

Reading the header of each file costs about a millisecond (wav) to tens of milliseconds (m4a via an
ffmpeg-based backend); at VoxCeleb2's 1.09 M files spread it over ``num_jobs`` processes.
"""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from cimc.utils import name_some

logger = logging.getLogger(__name__)


def _read_one(item: tuple[str, str]):
    """(recording or None, problem or None) for one (id, path)."""
    from lhotse import Recording

    recording_id, path = item
    try:
        recording = Recording.from_file(path, recording_id=recording_id)
    except Exception as error:  # any backend failure means "unreadable"; the message is kept
        return None, f"{path}: unreadable audio ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    if recording.num_samples == 0:
        return None, f"{path}: empty audio (0 samples)"
    return recording, None


def recordings_from_files(items: Sequence[tuple[str, str | Path]], num_jobs: int = 1, desc: str = "audio"):
    """Read the header of every file; return the usable recordings and the problems.

    :param items: (recording id, audio path) pairs.
    :return: (RecordingSet in input order, list of "path: problem" strings). The problems are also
        logged as one warning that counts them and names the first ten.
    """
    from lhotse import RecordingSet

    pairs = [(rid, str(path)) for rid, path in items]
    if num_jobs > 1 and len(pairs) > 1:
        chunksize = max(1, len(pairs) // (num_jobs * 20))
        with ProcessPoolExecutor(num_jobs) as pool:
            results = list(tqdm(pool.map(_read_one, pairs, chunksize=chunksize), total=len(pairs), desc=desc))
    else:
        results = [_read_one(p) for p in tqdm(pairs, desc=desc)]
    recordings = [r for r, _ in results if r is not None]
    problems = [p for _, p in results if p is not None]
    if problems:
        logger.warning(
            "%s: %d of %d audio files cannot be used and are left out: %s",
            desc, len(problems), len(pairs), name_some(problems, sep="; "),
        )
    return RecordingSet.from_recordings(recordings), problems
