"""A tiny speaker-labelled corpus built from arithmetic, for tests and benchmarks of stages 6-7.

Each "speaker" is :func:`cimc.testing.voxceleb_layout.voice` with its own pitch and spectral tilt, so
a network can learn to tell speakers apart within seconds of CPU time. Not used by the recipes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def make_toy_cuts(
    out_dir: str | Path,
    num_speakers: int = 4,
    utts_per_speaker: int = 4,
    seconds: float | tuple[float, float] = 1.5,
    seed: int = 0,
):
    """Write ``spkS-uttU.wav`` files under ``out_dir`` and return a Lhotse CutSet of them.

    Cut id == recording id == supervision id; ``supervision.speaker`` is ``spkS``.

    :param seconds: one duration, or a (low, high) range drawn per utterance.
    """
    import soundfile as sf
    from lhotse import CutSet, Recording, SupervisionSegment

    from cimc.testing.voxceleb_layout import SR, voice

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    low, high = (seconds, seconds) if isinstance(seconds, (int, float)) else seconds
    cuts = []
    for speaker in range(num_speakers):
        for utt in range(utts_per_speaker):
            uid = f"spk{speaker}-utt{utt}"
            path = out_dir / f"{uid}.wav"
            f0, tilt = 90.0 + 23.0 * speaker, 0.5 + 0.3 * (speaker % 4)
            samples = voice(f0, tilt, rng.uniform(low, high), rng)
            sf.write(path, samples + 3e-3 * rng.standard_normal(samples.size).astype(np.float32), SR)
            recording = Recording.from_file(path, recording_id=uid)
            cut = recording.to_cut()
            cut.supervisions = [
                SupervisionSegment(id=uid, recording_id=uid, start=0.0, duration=recording.duration, speaker=f"spk{speaker}")
            ]
            cuts.append(cut)
    return CutSet.from_cuts(cuts)
