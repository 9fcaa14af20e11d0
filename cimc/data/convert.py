"""One-time conversion of VoxCeleb2's m4a (AAC) files to 16 kHz 16-bit mono wav with ffmpeg.

Cost: about 1.09 M files; ffmpeg decodes one in ~30 ms, so ~9 core-hours, parallel over ``num_jobs``.
Reruns skip files already converted (each wav is written to a temporary name and renamed on
success, so a half-written wav is never mistaken for a finished one).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from cimc.utils import name_some

logger = logging.getLogger(__name__)


def _convert_one(source: Path, target: Path, ffmpeg: str, sampling_rate: int) -> str | None:
    """Convert one file; return None on success, else a message naming it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.wav")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(source), "-ac", "1", "-ar", str(sampling_rate),
           "-acodec", "pcm_s16le", str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
        tmp.unlink(missing_ok=True)
        return f"{source}: ffmpeg exit {result.returncode} {result.stderr.strip()[:200]}"
    tmp.replace(target)
    return None


def convert_m4a(input_dir: str | Path, output_dir: str | Path, num_jobs: int = 1, sampling_rate: int = 16000,
                ffmpeg: str = "ffmpeg") -> tuple[int, int, list[str]]:
    """Convert every ``input_dir/**/*.m4a`` to ``output_dir/<same relative path>.wav``.

    :return: (converted, skipped because already there, failure messages).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"m4a folder {input_dir} does not exist")
    if shutil.which(ffmpeg) is None:
        raise FileNotFoundError(f"{ffmpeg!r} is not on PATH; install ffmpeg (e.g. apt-get install ffmpeg)")
    sources = sorted(input_dir.rglob("*.m4a"))
    if not sources:
        raise FileNotFoundError(f"no .m4a files under {input_dir}")
    jobs = [(s, output_dir / s.relative_to(input_dir).with_suffix(".wav")) for s in sources]
    todo = [(s, t) for s, t in jobs if not t.is_file()]
    skipped = len(jobs) - len(todo)
    # Threads suffice: the work happens in the ffmpeg processes.
    with ThreadPoolExecutor(max(1, num_jobs)) as pool:
        results = list(tqdm(pool.map(lambda job: _convert_one(*job, ffmpeg, sampling_rate), todo),
                            total=len(todo), desc="m4a -> wav"))
    failures = [r for r in results if r is not None]
    if failures:
        logger.warning("%d of %d files failed to convert: %s", len(failures), len(todo), name_some(failures, sep="; "))
    logger.info("converted %d, skipped %d already converted, %d failed -> %s",
                len(todo) - len(failures), skipped, len(failures), output_dir)
    return len(todo) - len(failures), skipped, failures
