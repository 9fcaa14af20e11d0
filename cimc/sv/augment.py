"""Waveform augmentation (additive noise, reverberation) and SpecAugment-style masking.

Waveforms are 1-D float arrays of samples. Real noises / RIRs come from Lhotse CutSets (MUSAN,
RIRS_NOISES); without them, :func:`synthetic_noise` and :func:`simulated_rir` stand in, so the
recipe runs anywhere.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.signal import fftconvolve, lfilter

from cimc.data.layout import read_cuts
from cimc.sv.config import AugmentConfig

logger = logging.getLogger(__name__)


def fit_length(samples: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A ``length``-sample window of ``samples``: a random crop if longer, repeated end to end if shorter.

    An empty input becomes silence rather than a crash.
    """
    if samples.size == 0:
        return np.zeros(length, dtype=np.float32)
    if samples.size < length:
        samples = np.tile(samples, -(-length // samples.size))
    start = int(rng.integers(0, samples.size - length + 1))
    return samples[start : start + length]


def synthetic_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink-ish or brown-ish Gaussian noise of ``length`` samples (unit variance)."""
    white = rng.standard_normal(length)
    colour = rng.integers(3)
    if colour == 1:  # one-pole low-pass: energy falling with frequency, roughly 1/f over speech bands
        white = lfilter([1.0], [1.0, -0.9], white)
    elif colour == 2:  # near-integrator: brown noise
        white = lfilter([1.0], [1.0, -0.995], white)
    return (white / (white.std() + 1e-8)).astype(np.float32)


def simulated_rir(sampling_rate: int, rt60: float, rng: np.random.Generator, drr_db: float = 3.0) -> np.ndarray:
    """A room impulse response: a unit direct-path impulse, then Gaussian noise decaying 60 dB in ``rt60`` s.

    The tail's energy is ``drr_db`` below the direct path's (direct-to-reverberant ratio).
    """
    length = max(int(rt60 * sampling_rate), 2)
    t = np.arange(length) / sampling_rate
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    tail[0] = 0.0
    rir = tail * np.sqrt(10 ** (-drr_db / 10) / (np.sum(tail**2) + 1e-12))
    rir[0] = 1.0
    return rir.astype(np.float32)


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with g chosen so that the power ratio is ``snr_db``; lengths must match."""
    p_speech = float(np.mean(speech**2)) + 1e-10
    p_noise = float(np.mean(noise**2)) + 1e-10
    gain = np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return (speech + gain * noise).astype(np.float32)


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` aligned on its strongest tap, keeping the length and the input's power."""
    delay = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(speech, rir)[delay : delay + speech.size]
    scale = np.sqrt((np.mean(speech**2) + 1e-10) / (np.mean(wet**2) + 1e-10))
    return (wet * scale).astype(np.float32)


class WaveformAugmenter:
    """Applies noise or reverberation (or nothing) to training crops, per :class:`AugmentConfig`."""

    def __init__(self, config: AugmentConfig, sampling_rate: int) -> None:
        self.config = config
        self.sampling_rate = sampling_rate
        self.noises = self._load(config.noise_cuts, "noise")
        self.rirs = self._load(config.rir_cuts, "RIR")

    @staticmethod
    def _load(path: str, what: str) -> list | None:
        if not path:
            return None
        cuts = read_cuts(path, what=f"augment: {what} manifest")
        logger.info("augment: %d %s cuts from %s", len(cuts), what, path)
        return cuts

    def _real(self, cuts: list, rng: np.random.Generator) -> np.ndarray:
        cut = cuts[int(rng.integers(len(cuts)))]
        if cut.sampling_rate != self.sampling_rate:
            cut = cut.resample(self.sampling_rate)
        return cut.load_audio()[0].astype(np.float32)

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented copy of (S,) ``samples`` (or the input itself when no augmentation is drawn)."""
        if rng.random() >= self.config.prob:
            return samples
        if rng.random() < 0.5:
            noise = self._real(self.noises, rng) if self.noises else synthetic_noise(samples.size, rng)
            snr = rng.uniform(*self.config.snr_db)
            return add_noise(samples, fit_length(noise, samples.size, rng), snr)
        rir = self._real(self.rirs, rng) if self.rirs else simulated_rir(
            self.sampling_rate, rng.uniform(*self.config.rt60), rng, rng.uniform(0.0, 10.0))
        return reverberate(samples, rir)


def spec_augment(feats: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment-style masking (Park et al. 2019) of (B, T, F) features, in place; returns ``feats``.

    Each utterance gets ``time_masks`` spans of 0..``max_time_mask`` frames and ``freq_masks`` bands
    of 0..``max_freq_mask`` bins set to zero (the mean after CMN).
    """
    batch, frames, bins = feats.shape
    positions = {"time": torch.arange(frames, device=feats.device), "freq": torch.arange(bins, device=feats.device)}
    for axis, count, widest, size in (
        ("time", config.time_masks, config.max_time_mask, frames),
        ("freq", config.freq_masks, config.max_freq_mask, bins),
    ):
        for _ in range(count):
            width = torch.randint(0, min(widest, size) + 1, (batch, 1), generator=generator).to(feats.device)
            start = (torch.rand((batch, 1), generator=generator).to(feats.device) * (size - width + 1)).long()
            idx = positions[axis][None, :]
            mask = (idx >= start) & (idx < start + width)  # (B, size)
            feats.masked_fill_(mask[:, :, None] if axis == "time" else mask[:, None, :], 0.0)
    return feats
