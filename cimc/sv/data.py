"""Training data for the embedding network: (pseudo-)labelled cuts -> random crops -> features.

Labels are each cut's ``supervision.speaker``: stage 4's pseudo-label, or the true speaker for the
supervised upper bound. A dataset item is one crop of ``crop_seconds[1]`` seconds; the collate
function then cuts the whole batch down to one random length in ``crop_seconds`` (2-3 s), so crop
lengths vary between batches while each batch stays one tensor.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from cimc.sv.augment import WaveformAugmenter, fit_length
from cimc.sv.config import AugmentConfig, FeatureConfig

logger = logging.getLogger(__name__)

FRAME_SHIFT_S = 0.01  # 10 ms, the stage-1 (Kaldi) frame shift


def speaker_of(cut) -> str:
    """The label of a cut: its first supervision's speaker; a cut without one is named in the error."""
    if not cut.supervisions or cut.supervisions[0].speaker is None:
        raise ValueError(f"cut {cut.id} has no supervision with a speaker label")
    return str(cut.supervisions[0].speaker)


def label_index(cuts: Sequence) -> dict[str, int]:
    """Map each distinct label (sorted) to 0..C-1."""
    return {label: i for i, label in enumerate(sorted({speaker_of(c) for c in cuts}))}


def split_heldout(cuts: Sequence, fraction: float, minimum: int, seed: int) -> tuple[list, list]:
    """Random (train, held-out) split of the utterances for model selection.

    Held-out utterances share the training labels, so their pseudo-label loss/accuracy is measured
    with the same classifier head.
    """
    cuts = list(cuts)
    count = max(int(round(fraction * len(cuts))), minimum) if fraction > 0 else 0
    if count >= len(cuts):
        raise ValueError(f"held-out part ({count} utterances) would leave nothing of {len(cuts)} to train on")
    order = np.random.default_rng(seed).permutation(len(cuts))
    heldout = {int(i) for i in order[:count]}
    return [c for i, c in enumerate(cuts) if i not in heldout], [c for i, c in enumerate(cuts) if i in heldout]


def make_feature_fn(config: FeatureConfig) -> Callable[[np.ndarray, int], np.ndarray]:
    """``fn(samples (S,), sampling_rate) -> (T, F) float32``: stage 1's extractor, then sliding CMN."""
    from cimc.features import make_extractor, sliding_cmn

    extractor = make_extractor(config.extractor_config)

    def compute(samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        return sliding_cmn(extractor.extract(samples, sampling_rate), config.cmn)

    return compute


def feature_dim(config: FeatureConfig) -> int:
    """F of :func:`make_feature_fn`'s output."""
    from cimc.features import make_extractor

    return int(make_extractor(config.extractor_config).feature_dim(config.extractor_config.sampling_rate))


def resample_to(cut, sampling_rate: int):
    """``cut`` at ``sampling_rate`` (the extractor refuses other rates)."""
    return cut if cut.sampling_rate == sampling_rate else cut.resample(sampling_rate)


class CropDataset(torch.utils.data.Dataset):
    """Item i: (features (T, F) float32 tensor of one ``seconds``-long crop of cut i, label int).

    :param train: random crop position and waveform augmentation; otherwise the crop starts at 0 and
        is not augmented (held-out evaluation), so it is the same every epoch.
    """

    def __init__(
        self,
        cuts: Sequence,
        labels: dict[str, int],
        features: FeatureConfig,
        seconds: float,
        train: bool,
        augment: AugmentConfig | None = None,
    ) -> None:
        self.cuts = list(cuts)
        self.targets = [labels[speaker_of(c)] for c in self.cuts]
        self.features_config = features
        self.seconds = seconds
        self.train = train
        self.augment_config = augment
        self._feature_fn = None
        self._augmenters: dict[int, WaveformAugmenter] = {}
        self._rng: np.random.Generator | None = None
        self._rng_seed: int | None = None

    def __len__(self) -> int:
        return len(self.cuts)

    def _generator(self) -> np.random.Generator:
        # torch gives each DataLoader worker (and each epoch's workers) its own initial seed.
        seed = torch.initial_seed() % 2**32
        if self._rng is None or seed != self._rng_seed:
            self._rng, self._rng_seed = np.random.default_rng(seed), seed
        return self._rng

    def load_crop(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """(samples of exactly ``seconds`` s, sampling rate) from cut ``index``; short cuts are repeated."""
        cut = resample_to(self.cuts[index], self.features_config.extractor_config.sampling_rate)
        sr = cut.sampling_rate
        length = int(round(self.seconds * sr))
        if cut.duration > self.seconds + 0.05:
            # Read only the window we need (VoxCeleb utterances average 8 s).
            offset = rng.uniform(0, cut.duration - self.seconds) if self.train else 0.0
            cut = cut.truncate(offset=offset, duration=self.seconds)
        try:
            audio = cut.load_audio()
        except Exception as error:
            raise RuntimeError(f"cut {self.cuts[index].id}: cannot load audio: {error}") from error
        samples = np.asarray(audio, dtype=np.float32).reshape(audio.shape[0], -1)[0]
        # Held-out crops use a per-utterance seed, so they are the same every epoch.
        return fit_length(samples, length, rng if self.train else np.random.default_rng(index)), sr

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = self._generator()
        samples, sr = self.load_crop(index, rng)
        if self.train and self.augment_config is not None:
            if sr not in self._augmenters:
                self._augmenters[sr] = WaveformAugmenter(self.augment_config, sr)
            samples = self._augmenters[sr](samples, rng)
        if self._feature_fn is None:
            self._feature_fn = make_feature_fn(self.features_config)
        return torch.from_numpy(self._feature_fn(samples, sr)), self.targets[index]


@dataclass
class RandomLengthCollate:
    """Stack items, trimming all to one length drawn uniformly in ``[min_frames, max_frames]``.

    Each item is trimmed at a random start, so its window still moves within the longer crop.
    """

    min_frames: int
    max_frames: int
    random: bool = True

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        shortest = min(feats.shape[0] for feats, _ in batch)
        if self.random:
            length = int(torch.randint(self.min_frames, self.max_frames + 1, ()).item())
        else:
            length = self.max_frames
        length = min(length, shortest)
        out = []
        for feats, _ in batch:
            start = int(torch.randint(0, feats.shape[0] - length + 1, ()).item()) if self.random else 0
            out.append(feats[start : start + length])
        return torch.stack(out), torch.tensor([label for _, label in batch], dtype=torch.long)


def crop_frames(seconds: float) -> int:
    """Frames of a ``seconds``-long crop at the 10 ms shift (Kaldi ``--snip-edges=false``)."""
    return max(int(seconds / FRAME_SHIFT_S), 1)
