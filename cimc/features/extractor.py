"""Kaldi-compatible MFCC / fbank extractors backed by kaldi-native-fbank, registered with Lhotse.

Lhotse ships torch re-implementations of Kaldi's features; kaldi-native-fbank is the C++ port of
Kaldi's own code, so our features equal ``compute-mfcc-feats`` (Lhotse's agree to ~1e-3) and need
no torch. It is not the faster one: per core it runs at ~0.008 x real time, Lhotse's batched torch
FFT at ~0.003 (bench/features.py); extraction is a one-off ~17 core-hours for VoxCeleb2-dev.
Registering the classes with :func:`lhotse.features.register_extractor` lets
``CutSet.compute_and_store_features(extractor, ..., num_jobs=nj)`` use them, and the same object
computes features on the fly for augmented audio: ``make_extractor(MfccConfig()).extract(samples, 16000)``.
"""
from __future__ import annotations

from typing import Any

import kaldi_native_fbank as knf
import numpy as np
from lhotse.features.base import FeatureExtractor, register_extractor

from cimc.features.config import FbankConfig, MfccConfig, _FrameConfig


def _fill_frame_options(options: Any, config: _FrameConfig) -> None:
    """Copy the framing/mel fields of ``config`` into a knf ``MfccOptions``/``FbankOptions`` in place."""
    frame = options.frame_opts
    frame.samp_freq = float(config.sampling_rate)
    frame.frame_length_ms = config.frame_length * 1000.0
    frame.frame_shift_ms = config.frame_shift * 1000.0
    frame.window_type = config.window_type
    frame.dither = config.dither
    frame.preemph_coeff = config.preemph_coeff
    frame.remove_dc_offset = config.remove_dc_offset
    frame.round_to_power_of_two = config.round_to_power_of_two
    # Lhotse derives the frame count from the duration assuming Kaldi's --snip-edges=false.
    frame.snip_edges = False
    mel = options.mel_opts
    mel.num_bins = config.num_mel_bins
    mel.low_freq = config.low_freq
    mel.high_freq = config.high_freq
    options.use_energy = config.use_energy
    options.raw_energy = config.raw_energy
    options.energy_floor = config.energy_floor


def knf_options(config: MfccConfig | FbankConfig) -> Any:
    """The kaldi-native-fbank options object equivalent to ``config``."""
    if isinstance(config, MfccConfig):
        options = knf.MfccOptions()
        options.num_ceps = config.num_ceps
        options.cepstral_lifter = config.cepstral_lifter
    else:
        options = knf.FbankOptions()
    _fill_frame_options(options, config)
    return options


class _KnfExtractor(FeatureExtractor):
    """Shared body of the MFCC and fbank extractors; subclasses set ``name``, ``config_type``, ``_online``."""

    _online: Any = None

    @property
    def frame_shift(self) -> float:
        """Seconds between frames."""
        return self.config.frame_shift

    def feature_dim(self, sampling_rate: int) -> int:
        """Columns of :meth:`extract`'s output."""
        if isinstance(self.config, MfccConfig):
            return self.config.num_ceps
        return self.config.num_mel_bins + int(self.config.use_energy)

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        """Features of one mono signal.

        :param samples: (S,) or (1, S) float waveform in [-1, 1] (Lhotse's convention).
        :param sampling_rate: Hz; must equal ``config.sampling_rate``.
        :return: (T, F) float32, T = round(S / shift) frames (Kaldi ``--snip-edges=false``).
        """
        if sampling_rate != self.config.sampling_rate:
            raise ValueError(
                f"{self.name} is configured for {self.config.sampling_rate} Hz audio but got {sampling_rate} Hz; "
                "resample the cuts (CutSet.resample) or change sampling_rate in the config"
            )
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 2 and samples.shape[0] == 1:
            samples = samples[0]
        if samples.ndim != 1:
            raise ValueError(f"{self.name} expects mono audio of shape (S,) or (1, S), got {samples.shape}")
        computer = self._online(knf_options(self.config))
        computer.accept_waveform(float(sampling_rate), samples * np.float32(self.config.waveform_scale))
        computer.input_finished()
        num_frames = computer.num_frames_ready
        if num_frames == 0:
            return np.zeros((0, self.feature_dim(sampling_rate)), dtype=np.float32)
        return np.stack([computer.get_frame(i) for i in range(num_frames)]).astype(np.float32, copy=False)


@register_extractor
class KnfMfcc(_KnfExtractor):
    """MFCC via kaldi-native-fbank (equal to Kaldi's ``compute-mfcc-feats --snip-edges=false``)."""

    name = "knf-mfcc"
    config_type = MfccConfig
    _online = knf.OnlineMfcc


@register_extractor
class KnfFbank(_KnfExtractor):
    """Log mel filterbank via kaldi-native-fbank (Kaldi's ``compute-fbank-feats --snip-edges=false``)."""

    name = "knf-fbank"
    config_type = FbankConfig
    _online = knf.OnlineFbank


def make_extractor(config: MfccConfig | FbankConfig) -> KnfMfcc | KnfFbank:
    """The registered extractor for ``config`` (an :class:`MfccConfig` or :class:`FbankConfig`)."""
    if isinstance(config, MfccConfig):
        return KnfMfcc(config)
    if isinstance(config, FbankConfig):
        return KnfFbank(config)
    raise TypeError(f"make_extractor needs an MfccConfig or FbankConfig, got {type(config).__name__}")
