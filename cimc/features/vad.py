"""Energy-based voice activity detection with the semantics of Kaldi's ``compute-vad``.

Kaldi (ivector/voice-activity-detection.cc) thresholds column 0 of the MFCCs, which is the frame
log-energy when ``--use-energy=true`` (its default). Frame t is voiced when at least
``proportion_threshold`` of the frames in ``[t - c, t + c]`` (clipped to the utterance) have
log-energy strictly above ``energy_threshold + energy_mean_scale * mean(log-energy)``. (Kaldi before
April 2016, PR #697, tested frame t for every frame of the window, so the context had no effect.)::

    log-energy  ____/^^^^^^^^\\____/^^^\\___
    threshold   - - - - - - - - - - - - - -
    voiced      0000111111111100000111100000
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from cimc.features.config import FbankConfig, MfccConfig, VadConfig


def compute_vad(log_energy: np.ndarray, config: VadConfig = VadConfig()) -> np.ndarray:
    """Voiced/unvoiced decision per frame.

    :param log_energy: (T,) natural-log frame energies (Kaldi scale: 16-bit sample units).
    :param config: thresholds, see :class:`VadConfig`.
    :return: (T,) bool, True for voiced frames.
    """
    log_energy = np.asarray(log_energy, dtype=np.float64)
    if log_energy.ndim != 1:
        raise ValueError(f"compute_vad expects a (T,) log-energy vector, got shape {log_energy.shape}")
    num_frames = log_energy.shape[0]
    if num_frames == 0:
        return np.zeros(0, dtype=bool)
    threshold = config.energy_threshold
    if config.energy_mean_scale != 0.0:
        threshold += config.energy_mean_scale * log_energy.mean()
    above = np.concatenate([[0], np.cumsum(log_energy > threshold)])
    frames = np.arange(num_frames)
    first = np.maximum(frames - config.frames_context, 0)
    last = np.minimum(frames + config.frames_context, num_frames - 1)
    num_above = above[last + 1] - above[first]
    num_context = last - first + 1
    return num_above >= num_context * config.proportion_threshold


def vad_log_energy(features: np.ndarray, config: MfccConfig | FbankConfig) -> np.ndarray:
    """The (T,) log-energy the VAD thresholds, taken from (T, F) features made with ``config``.

    MFCC and fbank with ``use_energy``: column 0, as Kaldi's ``compute-vad``. Fbank without an energy
    column: log of the summed mel energies (log-sum-exp over bins), the nearest stand-in.
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] == 0:
        raise ValueError(f"expected (T, F) features, got shape {features.shape}")
    if isinstance(config, MfccConfig) or config.use_energy:
        return features[:, 0].astype(np.float64)
    return logsumexp(features.astype(np.float64), axis=1)
