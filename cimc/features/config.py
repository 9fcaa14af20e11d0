"""Typed configs of Stage 1: the MFCC / fbank extractors, the energy VAD, sliding-window CMN.

Field names follow Kaldi's options (``--num-mel-bins`` is ``num_mel_bins``), with times in seconds
as in Lhotse. Defaults are the paper's front end: 40-dim MFCC from 40 mel bins, 25 ms Hamming
window, 10 ms shift; the rest are Kaldi's defaults except ``dither`` (0, so features are
reproducible bit for bit) and ``high_freq`` (-400, i.e. 7.6 kHz at 16 kHz, as Kaldi's voxceleb recipe).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Kaldi's FeatureWindowFunction names (feature-window.cc).
WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "sine", "blackman")
FEATURE_TYPES = ("mfcc", "fbank")


@dataclass
class _FrameConfig:
    """Framing and waveform options shared by MFCC and fbank (Kaldi ``FrameExtractionOptions``)."""

    sampling_rate: int = 16000  # Hz; audio at another rate is refused, not silently resampled
    frame_length: float = 0.025  # seconds
    frame_shift: float = 0.01  # seconds
    window_type: str = "hamming"
    dither: float = 0.0  # Kaldi's default is 1.0 (in 16-bit units); 0 keeps features deterministic
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    round_to_power_of_two: bool = True
    low_freq: float = 20.0  # Hz
    high_freq: float = -400.0  # Hz; <= 0 means Nyquist + high_freq
    num_mel_bins: int = 40
    use_energy: bool = True  # MFCC: C0 replaced by log energy; fbank: log energy prepended as column 0
    raw_energy: bool = True  # energy before pre-emphasis and windowing
    energy_floor: float = 0.0
    # Kaldi reads 16-bit PCM as integers; Lhotse loads floats in [-1, 1]. Scaling by 2**15 makes the
    # features, and hence Kaldi's VAD thresholds (log-energy 5.5 ...), equal to Kaldi's.
    waveform_scale: float = 32768.0

    def __post_init__(self) -> None:
        if self.window_type not in WINDOW_TYPES:
            raise ValueError(f"window_type {self.window_type!r} is not one of {WINDOW_TYPES}")
        if not 0 < self.frame_shift <= self.frame_length:
            raise ValueError(f"need 0 < frame_shift ({self.frame_shift}) <= frame_length ({self.frame_length}) seconds")
        if self.num_mel_bins < 3:
            raise ValueError(f"num_mel_bins must be >= 3, got {self.num_mel_bins}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (Lhotse serialises extractor configs with it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of :meth:`to_dict` (Lhotse's ``FeatureExtractor.from_dict`` calls it)."""
        return cls(**data)


@dataclass
class MfccConfig(_FrameConfig):
    """MFCC (Kaldi ``compute-mfcc-feats``). Output dim = ``num_ceps``."""

    num_ceps: int = 40
    cepstral_lifter: float = 22.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.num_ceps <= self.num_mel_bins:
            raise ValueError(f"num_ceps ({self.num_ceps}) must lie in [1, num_mel_bins={self.num_mel_bins}]")


@dataclass
class FbankConfig(_FrameConfig):
    """Log mel filterbank (Kaldi ``compute-fbank-feats``). Output dim = ``num_mel_bins`` (+1 with energy)."""

    num_mel_bins: int = 80
    use_energy: bool = False


@dataclass
class VadConfig:
    """Energy VAD, Kaldi ``compute-vad`` options; the defaults are Kaldi's.

    A frame is voiced when at least ``proportion_threshold`` of the frames in
    ``[t - frames_context, t + frames_context]`` have log-energy above
    ``energy_threshold + energy_mean_scale * mean(log-energy of the utterance)``.
    Kaldi's voxceleb recipe uses threshold 5.5, mean scale 0.5, context 2, proportion 0.12 (conf/).
    """

    energy_threshold: float = 5.0
    energy_mean_scale: float = 0.5
    frames_context: int = 0
    proportion_threshold: float = 0.6

    def __post_init__(self) -> None:
        if self.energy_mean_scale < 0:
            raise ValueError(f"energy_mean_scale must be >= 0, got {self.energy_mean_scale}")
        if self.frames_context < 0:
            raise ValueError(f"frames_context must be >= 0, got {self.frames_context}")
        if not 0 < self.proportion_threshold < 1:
            raise ValueError(f"proportion_threshold must lie in (0, 1), got {self.proportion_threshold}")


@dataclass
class CmnConfig:
    """Sliding-window mean (and optionally variance) normalisation, Kaldi ``apply-cmvn-sliding``.

    Defaults are those of Kaldi's speaker-id recipes (``--cmn-window=300 --center=true --norm-vars=false``).
    ``min_window`` only matters when ``center`` is false (Kaldi's semantics).
    """

    window: int = 300  # frames
    center: bool = True
    min_window: int = 100  # frames
    normalize_variance: bool = False

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_window < 1:
            raise ValueError(f"window ({self.window}) and min_window ({self.min_window}) must be >= 1 frame")


@dataclass
class FeaturePipelineConfig:
    """What ``cimc compute-feats`` reads from conf/mfcc.yaml or conf/fbank.yaml.

    ``feature_type`` picks which of ``mfcc`` / ``fbank`` is used; the VAD decisions are stored with
    the features, CMN is applied when frames are loaded (:func:`cimc.features.load_frames`).
    """

    feature_type: str = "mfcc"
    mfcc: MfccConfig = field(default_factory=MfccConfig)
    fbank: FbankConfig = field(default_factory=FbankConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    # lilcom quantisation step 2**tick_power; -5 is Lhotse's default (error < 0.016 absolute)
    lilcom_tick_power: int = -5

    def __post_init__(self) -> None:
        if self.feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type {self.feature_type!r} is not one of {FEATURE_TYPES}")

    @property
    def extractor_config(self) -> MfccConfig | FbankConfig:
        """The config of the chosen extractor."""
        return self.mfcc if self.feature_type == "mfcc" else self.fbank
