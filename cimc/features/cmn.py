"""Sliding-window cepstral mean (and variance) normalisation, Kaldi ``apply-cmvn-sliding`` semantics.

For frame t the window holds ``window`` frames: centred ``[t - window//2, t - window//2 + window)``
when ``center``, else the past ``[t - window, t]`` (extended to end at frame ``min_window`` at the start).
A window that runs off either end of the utterance is shifted back inside it and then clipped, so
an utterance shorter than the window is normalised by its global mean (feature-functions.cc)::

    frames     0 1 2 3 4 5 6 7 8 9          window = 4, center = true
    t = 0     [0 1 2 3]                     shifted right, not shrunk
    t = 5          [3 4 5 6]
    t = 9                [6 7 8 9]          shifted left
"""
from __future__ import annotations

import numpy as np

from cimc.features.config import CmnConfig


def cmn_windows(num_frames: int, config: CmnConfig = CmnConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) frame of each frame's normalisation window, both (T,) int."""
    frames = np.arange(num_frames)
    if config.center:
        start = frames - config.window // 2
        end = start + config.window
    else:
        start = frames - config.window
        end = frames + 1
    # Shift a window that starts before frame 0 to the right.
    shift = np.minimum(start, 0)
    end = end - shift
    start = start - shift
    if not config.center:
        # Kaldi resets the end after the shift: the past window only grows to min_window frames.
        end = np.maximum(frames + 1, config.min_window)
    # Shift a window that ends after the last frame to the left, then clip at frame 0.
    overrun = np.maximum(end - num_frames, 0)
    start = np.maximum(start - overrun, 0)
    end = end - overrun
    return start, end


def sliding_cmn(features: np.ndarray, config: CmnConfig = CmnConfig()) -> np.ndarray:
    """Subtract from each frame the mean of its window (and divide by the std if ``normalize_variance``).

    :param features: (T, F) features.
    :return: (T, F) float32 normalised features.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"sliding_cmn expects (T, F) features, got shape {features.shape}")
    num_frames = features.shape[0]
    if num_frames == 0:
        return features.astype(np.float32)
    x = features.astype(np.float64)
    start, end = cmn_windows(num_frames, config)
    count = (end - start)[:, None].astype(np.float64)
    # Running sums in float64 (Kaldi accumulates in double too).
    cumsum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    mean = (cumsum[end] - cumsum[start]) / count
    out = x - mean
    if config.normalize_variance:
        cumsq = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x * x, axis=0)])
        variance = np.maximum((cumsq[end] - cumsq[start]) / count - mean * mean, 1e-10)
        out = out / np.sqrt(variance)
        out[(count == 1)[:, 0]] = 0.0  # Kaldi: a one-frame window normalises to zero
    return out.astype(np.float32)
