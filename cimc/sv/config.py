"""Typed configuration of stage 6-7 (ECAPA-TDNN training, extraction, scoring), loaded from YAML.

``cimc sv train --config conf/ecapa.yaml`` fills :class:`SvConfig`; the resolved config is saved as
``EXP/config.yaml`` and ``cimc sv extract`` reads it from there, so extraction uses exactly the
training-time features and model shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from cimc.features.config import CmnConfig, FbankConfig, MfccConfig


@dataclass
class FeatureConfig:
    """On-the-fly features, computed by the same kaldi-native-fbank extractor as stage 1.

    :param kind: ``mfcc`` (40-dim, the paper) or ``fbank`` (80-dim); the matching section is used.
    :param cmn: sliding mean normalisation (Kaldi ``apply-cmvn-sliding``, 300 frames).
    """

    kind: str = "mfcc"
    mfcc: MfccConfig = field(default_factory=MfccConfig)
    fbank: FbankConfig = field(default_factory=FbankConfig)
    cmn: CmnConfig = field(default_factory=CmnConfig)

    @property
    def extractor_config(self) -> MfccConfig | FbankConfig:
        if self.kind not in ("mfcc", "fbank"):
            raise ValueError(f"features.kind: unknown kind {self.kind!r}; valid kinds: ['fbank', 'mfcc']")
        return self.mfcc if self.kind == "mfcc" else self.fbank


@dataclass
class ModelConfig:
    """ECAPA-TDNN shape (see :class:`cimc.sv.model.EcapaTdnn`)."""

    channels: int = 512
    embed_dim: int = 192
    scale: int = 8
    se_bottleneck: int = 128
    attention_channels: int = 128


@dataclass
class HeadConfig:
    """Training head: ``aam`` (s, m) or ``ocsoftmax`` (alpha, m_pos, m_neg); margins ramp up over
    ``margin_warmup_epochs`` (0 = full margin from the start)."""

    name: str = "aam"
    scale: float = 30.0
    margin: float = 0.1
    alpha: float = 20.0
    margin_pos: float = 0.9
    margin_neg: float = 0.2
    margin_warmup_epochs: float = 0.0

    def options(self) -> dict[str, float]:
        """Constructor arguments of the chosen head."""
        if self.name == "aam":
            return {"scale": self.scale, "margin": self.margin}
        if self.name == "ocsoftmax":
            return {"alpha": self.alpha, "margin_pos": self.margin_pos, "margin_neg": self.margin_neg}
        raise ValueError(f"head.name: unknown head {self.name!r}; valid heads: ['aam', 'ocsoftmax']")


@dataclass
class AugmentConfig:
    """Waveform and feature augmentation of training crops.

    Noise and reverberation come from Lhotse cut manifests when given (MUSAN noise/music/babble,
    RIRS_NOISES impulse responses); otherwise from synthetic coloured noise and simulated
    exponentially decaying RIRs. Each crop gets at most one waveform augmentation.

    :param prob: probability that a crop is augmented at all; noise and reverb are equally likely.
    :param noise_cuts: Lhotse CutSet of noises (``.jsonl.gz``), or empty for synthetic noise.
    :param rir_cuts: Lhotse CutSet of room impulse responses, or empty for simulated ones.
    :param snr_db: range of the signal-to-noise ratio, dB.
    :param rt60: range of the simulated RIRs' reverberation time, seconds.
    :param time_masks / freq_masks: SpecAugment masks per crop, each up to ``max_time_mask`` frames /
        ``max_freq_mask`` bins wide.
    """

    prob: float = 0.6
    noise_cuts: str = ""
    rir_cuts: str = ""
    snr_db: tuple[float, float] = (0.0, 15.0)
    rt60: tuple[float, float] = (0.2, 0.8)
    time_masks: int = 1
    max_time_mask: int = 10
    freq_masks: int = 1
    max_freq_mask: int = 8


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    :param crop_seconds: each batch's crop length is drawn uniformly from this range (seconds);
        shorter utterances are repeated to fill it.
    :param heldout_fraction: share of training utterances kept out for model selection (pseudo-label
        loss/accuracy); the test trials are never used for it.
    :param average_last: the final-model candidates are the average of the last N epoch checkpoints
        and the best single epoch on the held-out part; the better one on held-out loss wins.
    :param lr / final_lr: learning rate after warm-up, decayed exponentially per step to ``final_lr``.
    :param amp: bf16 autocast on CUDA (ignored on CPU).
    """

    epochs: int = 40
    batch_size: int = 200
    crop_seconds: tuple[float, float] = (2.0, 3.0)
    optimizer: str = "adam"
    lr: float = 1e-3
    final_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 2e-5
    momentum: float = 0.9
    grad_clip: float = 5.0
    heldout_fraction: float = 0.02
    min_heldout: int = 1
    average_last: int = 3
    num_workers: int = 4
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    max_steps_per_epoch: int = 0


@dataclass
class ExtractConfig:
    """Whole-utterance embedding extraction; utterances over ``max_seconds`` are cut into chunks of that
    length whose embeddings are averaged (bounds memory on long recordings)."""

    max_seconds: float = 60.0
    num_workers: int = 2
    device: str = "auto"


@dataclass
class ScoreConfig:
    """Back-end: cosine scoring after subtracting the training-set mean, optional adaptive s-norm."""

    mean_subtraction: bool = True
    snorm: bool = False
    cohort_size: int = 300
    p_targets: tuple[float, ...] = (0.01, 0.05)


@dataclass
class SvConfig:
    """Everything ``cimc sv train|extract|score`` needs; one YAML file per recipe."""

    # What a rerun of a finished training may change (cimc.config.changed_settings): the sections training
    # does not read, and how it feeds and places the same math.
    RUN_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({"extract", "score", "train.num_workers", "train.device"})

    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
