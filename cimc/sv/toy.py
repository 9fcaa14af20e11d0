"""A tiny speaker-labelled corpus built from arithmetic, for tests and benchmarks of stages 6-7.

Each "speaker" is a harmonic source with its own pitch and spectral tilt, so a network can learn
to tell speakers apart within seconds of CPU time. Nothing here is used by the recipes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def toy_waveform(speaker: int, seconds: float, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """(S,) float32 in [-1, 1]: harmonics of a speaker-specific f0 with jitter, plus a little noise."""
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = 90.0 + 23.0 * speaker + rng.uniform(-3, 3)
    tilt = 0.5 + 0.4 * ((speaker * 7) % 5) / 5
    wave = sum(tilt**k * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 2 * np.pi)) for k in range(8))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t)
    wave = wave * envelope + 0.05 * rng.standard_normal(t.size)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def make_toy_cuts(
    out_dir: str | Path,
    num_speakers: int = 4,
    utts_per_speaker: int = 4,
    seconds: float | tuple[float, float] = 1.5,
    sampling_rate: int = 16000,
    seed: int = 0,
):
    """Write ``spkS-uttU.wav`` files under ``out_dir`` and return a Lhotse CutSet of them.

    Cut id == recording id == supervision id; ``supervision.speaker`` is ``spkS``.

    :param seconds: one duration, or a (low, high) range drawn per utterance.
    """
    import soundfile as sf
    from lhotse import CutSet, Recording, SupervisionSegment

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    low, high = (seconds, seconds) if isinstance(seconds, (int, float)) else seconds
    cuts = []
    for speaker in range(num_speakers):
        for utt in range(utts_per_speaker):
            uid = f"spk{speaker}-utt{utt}"
            path = out_dir / f"{uid}.wav"
            sf.write(path, toy_waveform(speaker, rng.uniform(low, high), sampling_rate, rng), sampling_rate)
            recording = Recording.from_file(path, recording_id=uid)
            cut = recording.to_cut()
            cut.supervisions = [
                SupervisionSegment(id=uid, recording_id=uid, start=0.0, duration=recording.duration, speaker=f"spk{speaker}")
            ]
            cuts.append(cut)
    return CutSet.from_cuts(cuts)
