"""The i-vector front end: stored MFCCs -> + deltas + delta-deltas -> sliding CMN -> voiced frames.

Kaldi's sid scripts build the same pipeline from ``add-deltas | apply-cmvn-sliding |
select-voiced-frames``; deltas come before frame selection so that they never straddle a removed
silence.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from cimc.ivector.config import FrontEndConfig
from cimc.utils import name_some

logger = logging.getLogger(__name__)


def delta_filters(order: int, window: int) -> list[np.ndarray]:
    """Kaldi's delta regression filters: entry i (length 2*i*window + 1) gives the i-th order delta.

    Order 1 is ``sum_n n * x[t+n] / sum_n n^2`` over n in [-window, window]; order i convolves order
    i - 1 with the same kernel.
    """
    filters = [np.ones(1)]
    kernel = np.arange(-window, window + 1, dtype=np.float64)
    for _ in range(order):
        filters.append(np.convolve(filters[-1], kernel) / float((kernel**2).sum()))
    return filters


def add_deltas(frames: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Append delta (and delta-delta, ...) features, as Kaldi's ``add-deltas``.

    Frames beyond either end repeat the edge frame.

    :param frames: (T, F) features.
    :return: (T, F * (order + 1)) float32: statics, then deltas, then delta-deltas.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if order == 0 or len(frames) == 0:
        return frames.reshape(len(frames), -1) if order == 0 else np.zeros((0, frames.shape[1] * (order + 1)), np.float32)
    num_frames = len(frames)
    blocks = []
    for taps in delta_filters(order, window):
        half = (len(taps) - 1) // 2
        index = np.clip(np.arange(num_frames)[:, None] + np.arange(-half, half + 1)[None, :], 0, num_frames - 1)
        # (T, taps, F) weighted over the taps; correlation, not convolution: kernel is antisymmetric.
        blocks.append(np.einsum("tkf,k->tf", frames[index], taps.astype(np.float32)))
    return np.concatenate(blocks, axis=1)


@dataclass
class Utterance:
    """One utterance's front-end frames.

    :param id: the cut / utterance id.
    :param frames: (T, D) float32 voiced frames with deltas (T may be 0).
    """

    id: str
    frames: np.ndarray


def utterance_frames(cut, config: FrontEndConfig) -> np.ndarray:
    """Front-end frames (T, D) of a cut that carries stage 1's stored features and VAD."""
    from cimc.features.frames import load_frames, load_vad, select_voiced

    frames = load_frames(cut, apply_vad=False, cmn=config.cmn)
    if config.num_ceps:
        if config.num_ceps > frames.shape[1]:
            raise ValueError(f"cut {cut.id}: frontend.num_ceps={config.num_ceps} but the stored features have {frames.shape[1]}")
        frames = frames[:, : config.num_ceps]
    frames = add_deltas(frames, config.delta_order, config.delta_window)
    if config.apply_vad:
        voiced = load_vad(cut)
        if not voiced.any():
            # Kaldi's select-voiced-frames leaves nothing; the caller lists the utterance as short.
            return frames[:0]
        frames = select_voiced(frames, voiced, cut.id)
    return frames


def split_for_job(items: Sequence, job: int, num_jobs: int) -> list:
    """The ``job``-th (1-based) of ``num_jobs`` contiguous, near-equal slices of ``items``."""
    if not 1 <= job <= num_jobs:
        raise ValueError(f"job {job} is outside 1..{num_jobs}")
    bounds = np.linspace(0, len(items), num_jobs + 1).round().astype(int)
    return list(items[bounds[job - 1] : bounds[job]])


def iter_utterances(cuts: Iterable, config: FrontEndConfig, desc: str = "utterances") -> Iterator[Utterance]:
    """Front-end frames of each cut, with a progress bar; short utterances are yielded too (callers decide)."""
    from tqdm import tqdm

    cuts = list(cuts)
    for cut in tqdm(cuts, desc=desc, unit="utt", mininterval=5, disable=len(cuts) < 50):
        yield Utterance(cut.id, utterance_frames(cut, config))


def report_short(short: dict[str, int], min_frames: int, where: str) -> None:
    """Warn about utterances with fewer than ``min_frames`` voiced frames (``{id: frames}``)."""
    if short:
        listed = name_some(f"{u} ({n})" for u, n in short.items())
        logger.warning(
            "%s: %d utterance(s) have fewer than %d voiced frames and get a zero i-vector: %s%s",
            where, len(short), min_frames, listed, " ..." if len(short) > 10 else "",
        )
