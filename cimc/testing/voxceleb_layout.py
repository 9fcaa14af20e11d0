"""A tiny folder with VoxCeleb's layout, for testing egs/voxceleb without the corpus.

Each speaker is a fixed "voice" (fundamental frequency and spectral tilt of a harmonic source);
utterances are 0.2 s of low noise, syllable-like bursts of that voice, 0.2 s of low noise::

    VOXCELEB1/wav/id1027X/sessK/0000N.wav  test speakers (named in the trial lists)
    VOXCELEB1/wav/id10001/...              a VoxCeleb1-dev speaker, which Stage 0 must ignore
    VOXCELEB1/veri_test.txt, veri_test2.txt, vox1_meta.csv
    VOXCELEB2/dev/wav/id000XX/sessK/0000N.wav
    VOXCELEB2/test/wav/id09999/...         a VoxCeleb2-test speaker, which Stage 0 must ignore
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def voice(f0: float, tilt: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """(S,) float32 waveform: harmonics of ``f0`` (amplitude k**-tilt) gated into 0.25 s syllables."""
    num = int(seconds * SR)
    t = np.arange(num) / SR
    wobble = f0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(wobble) / SR
    source = sum(k ** -tilt * np.sin(k * phase) for k in range(1, 12))
    envelope = np.repeat(rng.uniform(0.3, 1.0, size=num // 4000 + 1), 4000)[:num]
    envelope *= np.abs(np.sin(np.pi * t / 0.25))
    return (0.2 * source * envelope / np.max(np.abs(source))).astype(np.float32)


def write_utterance(path: Path, f0: float, tilt: float, seconds: float, rng: np.random.Generator) -> None:
    """One 16-bit wav: low-noise pad, ``seconds`` of the voice plus noise, low-noise pad."""
    pad = (rng.standard_normal(int(0.2 * SR)) * 1e-3).astype(np.float32)
    speech = voice(f0, tilt, seconds, rng) + (rng.standard_normal(int(seconds * SR)) * 3e-3).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate([pad, speech, pad]), SR, subtype="PCM_16")


def _speaker_files(root: Path, speaker: str, utts: int, f0: float, tilt: float, seconds: float,
                   rng: np.random.Generator) -> list[str]:
    relative = []
    for n in range(utts):
        rel = f"{speaker}/sess{n % 2}/{n + 1:05d}.wav"
        write_utterance(root / rel, f0, tilt, seconds * rng.uniform(0.8, 1.2), rng)
        relative.append(rel)
    return relative


def build_voxceleb_layout(root: str | Path, num_train_speakers: int = 4, num_test_speakers: int = 3,
                          utts_per_speaker: int = 4, seconds: float = 1.5, seed: int = 0) -> dict[str, Path]:
    """Create the tiny corpus under ``root``; return its ``voxceleb1``, ``voxceleb2`` and ``trials`` paths.

    The trial lists hold every pair of test utterances in the official format; ``veri_test2.txt``
    (cleaned) is ``veri_test.txt`` (original) less its last trial, so the two lists differ as the real ones do.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    vox1, vox2 = root / "VoxCeleb1", root / "VoxCeleb2"
    voices = iter(zip(rng.uniform(90, 260, 1000), rng.uniform(0.5, 2.0, 1000)))
    for i in range(num_train_speakers):
        _speaker_files(vox2 / "dev" / "wav", f"id{12 + i:05d}", utts_per_speaker, *next(voices), seconds, rng)
    _speaker_files(vox2 / "test" / "wav", "id09999", 2, *next(voices), seconds, rng)
    _speaker_files(vox1 / "wav", "id10001", 2, *next(voices), seconds, rng)
    test_files = []
    for i in range(num_test_speakers):
        test_files += _speaker_files(vox1 / "wav", f"id{10270 + i}", utts_per_speaker, *next(voices), seconds, rng)
    lines = [f"{int(a.split('/')[0] == b.split('/')[0])} {a} {b}\n" for a, b in itertools.combinations(test_files, 2)]
    (vox1 / "veri_test.txt").write_text("".join(lines))
    (vox1 / "veri_test2.txt").write_text("".join(lines[:-1]))
    (vox1 / "vox1_meta.csv").write_text(
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        + "".join(f"id{10270 + i}\tName_{i}\t{'mf'[i % 2]}\tUSA\ttest\n" for i in range(num_test_speakers))
        + "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
    )
    return {"voxceleb1": vox1, "voxceleb2": vox2, "trials": vox1 / "veri_test2.txt"}
