"""Typed configs of the i-vector system (stages 2-3): front end, UBM, extractor and scoring backend.

One YAML file (``conf/ivector.yaml``) holds the four sections; every ``cimc ivector`` subcommand
reads the section it needs and snapshots the whole resolved config beside its outputs.
Defaults follow Kaldi's egs/voxceleb/v1 (2048 Gaussians, 400-dim i-vectors, LDA 200 + PLDA).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class FrontEndConfig:
    """Frames fed to the UBM: stored MFCCs + deltas + delta-deltas, sliding CMN, voiced frames only.

    :param num_ceps: keep the first this many stored cepstra (Kaldi v1: 24; 0 = all). Truncating a
        40-cepstrum MFCC is exact: the DCT rows and the lifter do not depend on how many are kept.
    :param delta_order: 0 = static only, 2 = + deltas + delta-deltas (Kaldi ``add-deltas``).
    :param delta_window: half-width of the regression window, in frames (Kaldi: 2).
    :param apply_vad: keep only the frames stage 1's energy VAD marked voiced.
    :param cmn: sliding cepstral mean normalisation as stored by stage 1's config.
    :param min_frames: utterances with fewer voiced frames are warned about, listed, left out of
        training and get the prior-mean (zero) i-vector.
    """

    num_ceps: int = 24
    delta_order: int = 2
    delta_window: int = 2
    apply_vad: bool = True
    cmn: bool = True
    min_frames: int = 10


@dataclass
class UbmConfig:
    """Diagonal-covariance UBM trained by EM from a k-means start.

    :param num_components: Gaussians (Kaldi v1: 2048).
    :param num_iters: EM iterations after initialisation.
    :param subsample: use every n-th voiced frame (Kaldi's train_diag_ubm uses 5); frames are highly
        correlated, so this costs little accuracy and saves most of the time.
    :param max_frames: cap on frames held for the k-means initialisation.
    :param kmeans_iters: Lloyd iterations of the initialisation.
    :param var_floor: variances are floored at this fraction of the global (all-data) variance.
    :param weight_floor: components whose weight falls below this are reset by splitting the heaviest.
    :param chunk_frames: frames per batch when scoring against all Gaussians (memory knob).
    :param full_cov_iters: full-covariance EM iterations after the diagonal ones (Kaldi v1: 4; 0 = keep
        the diagonal UBM). Scoring then costs ~(D + 3) / 4 times more (19x at D = 72): fine on a GPU.
    """

    num_components: int = 2048
    num_iters: int = 4
    subsample: int = 5
    max_frames: int = 500_000
    kmeans_iters: int = 10
    var_floor: float = 0.001
    weight_floor: float = 1e-5
    chunk_frames: int = 50_000
    full_cov_iters: int = 0
    seed: int = 0
    device: str = "auto"


@dataclass
class ExtractorConfig:
    """Total-variability matrix (EM + minimum divergence, Kaldi prior offset) and i-vector extraction.

    :param ivector_dim: R (Kaldi v1: 400).
    :param num_iters: EM iterations (Kaldi v1: 5).
    :param prior_offset: mean of the first i-vector coordinate, which absorbs the UBM means (Kaldi: 100).
    :param min_divergence: re-estimate the prior each iteration and fold it into T.
    :param num_gselect: posteriors are kept for this many best Gaussians per frame (Kaldi: 20).
    :param min_post: posteriors below this are dropped and the rest renormalised (Kaldi: 0.025).
    :param posterior_scale: scales zeroth and first order statistics (Kaldi's --posterior-scale).
    :param max_utterances: train T on at most this many utterances, the longest first (0 = all;
        Kaldi v1 trains on the 100k longest).
    :param batch_size: utterances per extraction batch (memory knob: O(batch * R^2)).
    """

    ivector_dim: int = 400
    num_iters: int = 5
    prior_offset: float = 100.0
    min_divergence: bool = True
    num_gselect: int = 20
    min_post: float = 0.025
    posterior_scale: float = 1.0
    max_utterances: int = 0
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"


@dataclass
class BackendConfig:
    """Scoring backend: cosine, and LDA + two-covariance PLDA trained on the training i-vectors.

    :param lda_dim: LDA output dimension (Kaldi v1: 200), capped at #speakers - 1 and the i-vector dim.
    :param plda_iters: EM iterations of the two-covariance PLDA.

    Speaker labels for LDA/PLDA are the training cuts' ``supervision.speaker`` (true speakers, or
    pseudo-labels when given the clustered cuts).
    """

    lda_dim: int = 200
    plda_iters: int = 10


@dataclass
class IvectorConfig:
    """The whole i-vector system; ``conf/ivector.yaml`` has one section per field."""

    # What a rerun of a trained UBM or extractor may change (cimc.config.changed_settings): where the same
    # math runs, and the extraction batch (a memory knob).
    RUN_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({"ubm.device", "extractor.device", "extractor.batch_size"})

    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    ubm: UbmConfig = field(default_factory=UbmConfig)
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
