"""Whole-utterance speaker embeddings from a trained experiment (stage 7).

    cimc sv extract --exp-dir exp/sv/cimc --cuts data/manifests/test_cuts.jsonl.gz --output exp/sv/cimc/embeddings_test

Each utterance is embedded whole (no crop, no augmentation), with the features of the experiment's
saved config. Utterances longer than ``extract.max_seconds`` are split into near-equal chunks whose
embeddings are averaged, which bounds memory; very short ones are repeated to ``MIN_FRAMES``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from cimc.sv.config import FeatureConfig
from cimc.sv.data import FRAME_SHIFT_S, make_feature_fn, resample_to
from cimc.sv.model import EcapaTdnn

logger = logging.getLogger(__name__)

MIN_FRAMES = 20  # 0.2 s: below this the attentive pooling has next to nothing to weigh


class UtteranceDataset(torch.utils.data.Dataset):
    """Item i: (cut id, (T, F) features of the whole utterance)."""

    def __init__(self, cuts: Sequence, features: FeatureConfig) -> None:
        self.cuts = list(cuts)
        self.features = features
        self._feature_fn = None

    def __len__(self) -> int:
        return len(self.cuts)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor]:
        if self._feature_fn is None:
            self._feature_fn = make_feature_fn(self.features)
        cut = resample_to(self.cuts[index], self.features.extractor_config.sampling_rate)
        try:
            audio = cut.load_audio()
        except Exception as error:
            raise RuntimeError(f"cut {cut.id}: cannot load audio: {error}") from error
        samples = np.asarray(audio, dtype=np.float32).reshape(audio.shape[0], -1)[0]
        if samples.size == 0:
            raise ValueError(f"cut {cut.id} has no audio samples")
        feats = self._feature_fn(samples, cut.sampling_rate)
        if feats.shape[0] < MIN_FRAMES:
            feats = np.tile(feats, (-(-MIN_FRAMES // feats.shape[0]), 1))
        return cut.id, torch.from_numpy(feats)


@torch.no_grad()
def embed_features(encoder: EcapaTdnn, feats: torch.Tensor, max_frames: int) -> torch.Tensor:
    """(T, F) features of one utterance -> (D,) embedding; chunks of <= ``max_frames`` averaged."""
    chunks = max(1, -(-feats.shape[0] // max_frames))
    pieces = torch.tensor_split(feats, chunks, dim=0)
    return torch.stack([encoder(p[None])[0] for p in pieces]).mean(dim=0)


def extract_embeddings(
    encoder: EcapaTdnn,
    features: FeatureConfig,
    cuts: Sequence,
    device: str = "cpu",
    max_seconds: float = 60.0,
    num_workers: int = 0,
) -> tuple[list[str], np.ndarray]:
    """Embed every cut in ``cuts``.

    :return: (ids (N,), embeddings (N, D) float32) in the order of ``cuts``.
    """
    encoder = encoder.to(device).eval()
    loader = torch.utils.data.DataLoader(
        UtteranceDataset(cuts, features), batch_size=None, num_workers=num_workers
    )
    max_frames = max(int(max_seconds / FRAME_SHIFT_S), MIN_FRAMES)
    ids, rows = [], []
    for cut_id, feats in tqdm(loader, desc="extracting embeddings", total=len(cuts)):
        ids.append(cut_id)
        rows.append(embed_features(encoder, feats.to(device), max_frames).float().cpu().numpy())
    if not rows:
        raise ValueError("no cuts to extract embeddings from")
    return ids, np.stack(rows).astype(np.float32)


def subset_cuts(cuts: Sequence, max_utts: int, seed: int = 0) -> list:
    """All of ``cuts``, or a seeded random ``max_utts`` of them (e.g. a training subset for the mean/cohort)."""
    cuts = list(cuts)
    if max_utts <= 0 or max_utts >= len(cuts):
        return cuts
    keep = np.sort(np.random.default_rng(seed).choice(len(cuts), max_utts, replace=False))
    return [cuts[i] for i in keep]


def extract_to_file(exp_dir: str | Path, cuts_path: str | Path, output: str | Path, max_utts: int = 0,
                    model_file: str = "final.pt", device: str | None = None) -> Path:
    """Library side of ``cimc sv extract``: load the experiment, embed the cuts, write ``output.npy/.ids``."""
    from cimc.data.layout import read_cuts
    from cimc.sv.checkpoint import load_encoder
    from cimc.utils import resolve_device
    from cimc.vectors import save_vectors

    encoder, config = load_encoder(exp_dir, model_file)
    cuts = subset_cuts(read_cuts(cuts_path), max_utts)
    name = resolve_device(device or config.extract.device, cpu_fallback=True)
    logger.info("embedding %d utterances of %s with %s/%s on %s", len(cuts), cuts_path, exp_dir, model_file, name)
    ids, vectors = extract_embeddings(encoder, config.features, cuts, name, config.extract.max_seconds,
                                      config.extract.num_workers)
    save_vectors(output, ids, vectors)
    return Path(output)
