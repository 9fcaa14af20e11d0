"""CIMC and IMSAT: an MLP clusterer trained with composable loss terms (cimc.cluster.losses).

Network d-S-S-C: Linear -> BatchNorm -> ReLU twice, then a Linear output initialised at 1e-4 scale so
the first predictions are near uniform (IMSAT's code). S defaults to 1200, IMSAT's released width:
the CIMC paper's text says S = "20,800", which is ambiguous (its S x S layer alone would hold 430M
weights), so we keep it configurable.

Training, all in :class:`CimcConfig`: l2-normalised inputs. The paper's settings (momentum SGD 0.9, lr 0.01
decaying by 0.996 per epoch, batch 10,240, 150 epochs) are egs/*/conf/cimc_paper.yaml; the defaults depart
from them (Adam 2e-3, a batch and step count scaled to N, warm-ups) because the paper's fail on small sets:
each departure is documented on its config field, in egs/*/conf/cimc.yaml and in docs/cimc_tuning.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from cimc.cluster.base import Clusterer, register_clusterer
from cimc.config import require, require_choice
from cimc.utils import exclusive_dir, resolve_device, tf32_switches_kept
from cimc.vectors import nonfinite_rows

logger = logging.getLogger(__name__)

MetricsFn = Callable[[np.ndarray, np.ndarray], dict]


@dataclasses.dataclass
class CimcConfig:
    """Hyperparameters of CIMC (and of IMSAT and the ablation rows, which only change ``losses``).

    Paper defaults unless marked DEPARTURE; see docs/cimc_tuning.md for the measurements.
    """

    # Fields a resumed run, or a rerun of a finished one, may change: where and how often it saves, what it
    # shows, and how the same math is computed (device, chunking, compiled kernels). Any other change would
    # splice two different runs, or pass off one run's labels as another's (cimc.config.changed_settings).
    RUN_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "checkpoint_dir", "checkpoint_every", "progress", "device", "knn_chunk", "supcon_chunk", "compile_losses"})
    # What a run saved before each of these fields existed did (cimc.config.changed_settings): the field came later,
    # or its default changed after, so a checkpoint or config.yaml without it did not run at today's default.
    BEFORE_FIELD_EXISTED: ClassVar[dict[str, object]] = {
        "entropy_warmup": 0.0, "supcon_start_entropy": 1.0, "supcon_min_confidence": 0.0,
        "supcon_min_confidence_until": 1.0, "mixup_max_steps": 0, "mixup_fade": False, "mixup_weight": 1.0,
        "lr_warmup": 0.0, "lr_warmup_max_run_steps": 0}

    losses: tuple[str, ...] = ("imsat", "supcon", "mixup")  # names from cimc.cluster.losses
    hidden_dim: int = 1200  # S; IMSAT code's width (the paper's "20,800" is ambiguous)
    output_init_scale: float = 1e-4  # output-layer weight scale: near-uniform first predictions
    hidden_init_scale: float = 0.0  # hidden weights N(0, scale^2 / fan_in); 0 = PyTorch default (see conf)
    # IMSAT
    lam: float = 0.5  # lambda
    mu: float = 3.5  # weight of H(Y) inside the MI term
    knn_k: int = 10  # VAT radius from the distance to the k-th nearest neighbour...
    eps_scale: float = 0.5  # ...times this. DEPARTURE: IMSAT uses 0.25 (docs/cimc_tuning.md)
    vat_xi: float = 0.05  # VAT power-iteration step for unit-norm inputs (IMSAT's xi=10 on MNIST; see conf)
    entropy_warmup: float = 0.7  # DEPARTURE: H(Y|X)'s weight ramps 0 -> 1 over this fraction of the run (paper: 0)
    entropy_warmup_max_steps: int = 0  # ...over at most this many steps (0: no cap, the default; see conf)
    marginal_momentum: float = 0.0  # H(Y) on p(y) averaged over batches with this momentum (0: the batch's, paper)
    marginal_warmup: bool = False  # H(Y) ramps in with H(Y|X): the whole MI term ramps, at the paper's 1 : mu
    # SupCon on l2-normalised logits with online argmax labels
    supcon_weight: float = 1.0
    supcon_temperature: float = 0.1
    supcon_features: str = "logits"  # logits (paper) | probs: SupCon on l2-normalised softmax outputs
    supcon_warmup: float = 0.3  # DEPARTURE: fraction of the run before SupCon may start (then ramps in over 10%)...
    supcon_start_entropy: float = 0.1  # ...and only once H(Y|X) < this * log C (labels settled; >= 1: no condition)
    supcon_chunk: int = 10240  # anchors per chunk: memory O(batch * chunk); batch <= chunk: one chunk, no recompute
    supcon_min_confidence: float = 0.99  # DEPARTURE: SupCon over the points whose top softmax prob is >= this (0: all)...
    supcon_min_confidence_until: float = 0.7  # ...up to this fraction of the run, then over all points (the paper's)
    # virtual mixup on logits
    mixup_weight: float = 0.5  # DEPARTURE: the paper's 1, halved with lr_warmup on (see conf)
    mixup_alpha: float = 1.0  # Beta(alpha, alpha)
    mixup_max_steps: int = 1200  # DEPARTURE: mixup on the first this many steps only (0: all, the paper; see conf)
    mixup_fade: bool = True  # DEPARTURE: ...its weight falling linearly to 0 there instead of cut (see conf)
    # VICReg terms (ablation rows only)
    vicreg_var_weight: float = 1.0
    vicreg_cov_weight: float = 1.0
    vicreg_gamma: float = 1.0
    # optimisation
    optimizer: str = "adam"  # DEPARTURE: paper "sgd" (momentum) leaves the uniform start too slowly, see conf
    lr: float = 0.002  # IMSAT code's Adam lr; the paper's SGD lr is 0.01
    momentum: float = 0.9  # SGD only
    lr_decay: float = 0.996  # per epoch of the paper's schedule: total decay lr_decay ** epochs over the run
    lr_warmup: float = 0.05  # DEPARTURE: the lr ramps 0 -> lr over this fraction of the run (0: none, the paper)...
    lr_warmup_max_run_steps: int = 1200  # ...on runs of at most this many steps only (0: every run; see conf)
    batch_size: int = 10240
    epochs: int = 150
    min_steps: int = 1000  # DEPARTURE: at least this many steps (more epochs on small sets)
    min_batches_per_epoch: int = 8  # DEPARTURE: batch <= N / this on small sets...
    min_batch_size: int = 256  # ...but not below this (H(Y) needs a batch much larger than 1)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda[:i]
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | tf32 | bf16
    compile_losses: str = "auto"  # torch.compile the loss math: auto (on CUDA) | always | never
    knn_chunk: int = 4096
    checkpoint_dir: str = ""  # "" = none; else resume from / save to DIR/checkpoint.pt (DIR/.checkpoint.lock held)
    checkpoint_every: int = 10  # epochs
    progress: bool = True

    def __post_init__(self) -> None:
        """Reject values no run can use, naming the field (cimc.config.load_config adds the file).

        Without this, ``batch_size: -1`` trained on one-point batches and ``hidden_dim: 0`` failed deep in
        torch with an IndexError.
        """
        for name in ("hidden_dim", "knn_k", "batch_size", "epochs", "min_batches_per_epoch", "min_batch_size",
                     "supcon_chunk", "knn_chunk", "checkpoint_every"):
            require(self, name, getattr(self, name) >= 1, ">= 1")
        for name in ("output_init_scale", "eps_scale", "vat_xi", "supcon_temperature", "mixup_alpha", "lr",
                     "vicreg_gamma"):
            require(self, name, getattr(self, name) > 0, "> 0")
        for name in ("hidden_init_scale", "lam", "mu", "supcon_weight", "mixup_weight", "vicreg_var_weight",
                     "vicreg_cov_weight", "supcon_start_entropy", "min_steps", "entropy_warmup_max_steps",
                     "mixup_max_steps", "lr_warmup_max_run_steps"):
            require(self, name, getattr(self, name) >= 0, ">= 0")
        for name in ("entropy_warmup", "supcon_warmup", "supcon_min_confidence_until", "lr_warmup"):
            require(self, name, 0 <= getattr(self, name) <= 1, "a fraction of the run in [0, 1]")
        require(self, "lr_decay", 0 < self.lr_decay <= 1, "in (0, 1]")
        require(self, "momentum", 0 <= self.momentum < 1, "in [0, 1)")
        require(self, "marginal_momentum", 0 <= self.marginal_momentum < 1, "in [0, 1)")
        require(self, "supcon_min_confidence", 0 <= self.supcon_min_confidence < 1, "in [0, 1)")
        for name, choices in CHOICES.items():
            require_choice(self, name, choices)
        from cimc.cluster.losses import expand_loss_names

        expand_loss_names(self.losses)  # an unknown or empty list fails here, not when training starts


# String fields with a fixed set of values (device is free-form: cpu, cuda, cuda:1 ...).
CHOICES = {"optimizer": ("adam", "sgd"), "precision": ("auto", "fp32", "tf32", "bf16"),
           "compile_losses": ("auto", "always", "never"), "supcon_features": ("logits", "probs")}


@dataclasses.dataclass
class ImsatConfig(CimcConfig):
    """IMSAT alone (Table I row L_IMSAT)."""

    losses: tuple[str, ...] = ("imsat",)


@dataclasses.dataclass
class ImsatMixupConfig(CimcConfig):
    """IMSAT + virtual mixup (Table I row L_IMSAT + L_Mixup)."""

    losses: tuple[str, ...] = ("imsat", "mixup")


@dataclasses.dataclass
class TrainResult:
    """Output of :func:`train_cimc`: labels (N,) int64, per-epoch history, the trained model."""

    labels: np.ndarray
    history: list[dict]
    model: object


def build_mlp(in_dim: int, hidden_dim: int, n_clusters: int, output_init_scale: float = 1e-4,
              hidden_init_scale: float = 0.0):
    """The d-S-S-C network: (B, d) -> (B, C) logits.

    Hidden weights ~ N(0, hidden_init_scale^2 / fan_in), biases 0 (IMSAT's code: scale 0.1; 0 here keeps
    PyTorch's default uniform init, std ~0.58 / sqrt(fan_in)). As BatchNorm follows each hidden layer, the
    scale sets how fast Adam moves those layers relative to the output layer: a larger scale, slower
    feature learning. Output weights ~ N(0, output_init_scale^2): near-uniform first predictions.
    """
    from torch import nn

    if hidden_init_scale < 0 or output_init_scale <= 0:
        raise ValueError(f"hidden_init_scale must be >= 0 (0 = PyTorch's init) and output_init_scale > 0, "
                         f"got {hidden_init_scale} and {output_init_scale}")
    model = nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
        nn.Linear(hidden_dim, n_clusters),
    )
    if hidden_init_scale > 0:
        for layer in (model[0], model[3]):
            nn.init.normal_(layer.weight, std=hidden_init_scale / math.sqrt(layer.in_features))
            nn.init.zeros_(layer.bias)
    out = model[-1]
    nn.init.normal_(out.weight, std=output_init_scale)
    nn.init.zeros_(out.bias)
    return model


def l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` (N, D) scaled to unit l2 norm; a zero or non-finite row is an error naming it."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"expected an (N, D) matrix of embeddings, got shape {X.shape}")
    bad = nonfinite_rows(X)
    if bad.size:
        raise ValueError(f"row {int(bad[0])} of the input has NaN/inf ({bad.size} rows in all)")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"row {int(np.flatnonzero(norms[:, 0] == 0)[0])} of the input is all zeros; cannot l2-normalise")
    return X / norms


def build_loss_terms(config: CimcConfig, matmul_dtype=None, kernels=None) -> list[tuple[str, object, float]]:
    """(name, term, weight) for each loss in ``config.losses``; ``kernels``: cimc.cluster.losses.LossKernels."""
    from cimc.cluster import losses as L

    kernels = kernels or L.EAGER
    makers = {
        "vat": lambda: (L.VatLoss(config.vat_xi, kernels=kernels), 1.0),
        "mi": lambda: (L.MutualInformationLoss(config.lam, config.mu, kernels, config.marginal_momentum,
                                                   config.marginal_warmup), 1.0),
        "supcon": lambda: (L.SupConLoss(config.supcon_temperature, config.supcon_chunk, matmul_dtype, kernels,
                                         config.supcon_features, config.supcon_min_confidence),
                           config.supcon_weight),
        "mixup": lambda: (L.MixupLoss(config.mixup_alpha, kernels), config.mixup_weight),
        "vicreg_var": lambda: (L.VicRegVarianceLoss(config.vicreg_gamma), config.vicreg_var_weight),
        "vicreg_cov": lambda: (L.VicRegCovarianceLoss(), config.vicreg_cov_weight),
    }
    return [(name, *makers[name]()) for name in L.expand_loss_names(config.losses)]


@dataclasses.dataclass
class Schedule:
    """Batch size, steps and learning-rate decay for N points (all counted in steps)."""

    batch_size: int
    steps_per_epoch: int
    epochs: int
    decay_per_step: float

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def make_schedule(n_points: int, config: CimcConfig) -> Schedule:
    """Fit the paper's epoch-based schedule to N points.

    The lr decays by ``lr_decay ** epochs`` over the whole run, applied per step, which equals the
    paper's per-epoch decay at its size. Where N is small the batch shrinks to N / min_batches_per_epoch
    (not below min_batch_size) and ``min_steps`` adds epochs. At N = 1.09M nothing changes: batch
    10,240, 106 steps per epoch, 150 epochs.
    """
    batch = min(config.batch_size, n_points, max(n_points // config.min_batches_per_epoch, config.min_batch_size))
    steps_per_epoch = max(n_points // batch, 1)
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    total = steps_per_epoch * epochs
    decay = config.lr_decay ** (config.epochs / total)
    return Schedule(batch, steps_per_epoch, epochs, decay)


def precision_dtypes(config: CimcConfig, device: str):
    """(autocast dtype or None, matmul dtype for SupCon), and torch's TF32 switches set for the run (they act on
    CUDA only; :func:`train_cimc` puts back the caller's)."""
    import torch

    mode = config.precision
    if mode == "auto":
        mode = "bf16" if device.startswith("cuda") else "fp32"
    if mode not in {"fp32", "tf32", "bf16"}:
        raise ValueError(f"precision {config.precision!r}: use auto, fp32, tf32 or bf16")
    torch.backends.cuda.matmul.allow_tf32 = mode != "fp32"
    torch.backends.cudnn.allow_tf32 = mode != "fp32"
    if mode == "bf16":
        return torch.bfloat16, torch.bfloat16
    return None, torch.float32


def loss_kernels(config: CimcConfig, device: str):
    """Eager or ``torch.compile``d loss math (cimc.cluster.losses.LossKernels) per ``config.compile_losses``.

    auto compiles on CUDA only: there the fused kernels save most of a step (see LossKernels); on a CPU
    the compile time (and the C++ compiler it needs) outweighs the gain on the small sets run there.
    """
    from cimc.cluster import losses as L

    mode = config.compile_losses
    if mode not in {"auto", "always", "never"}:
        raise ValueError(f"compile_losses {mode!r}: use auto, always or never")
    if mode == "always" or (mode == "auto" and device.startswith("cuda")):
        return L.compiled_kernels()
    return L.EAGER


CHECKPOINT_LOCK = ".checkpoint.lock"  # held in checkpoint_dir while a run trains


def train_cimc(
    X: np.ndarray,
    n_clusters: int,
    config: CimcConfig | None = None,
    reference_labels: np.ndarray | None = None,
    metrics_fn: MetricsFn | None = None,
) -> TrainResult:
    """Train the CIMC/IMSAT network on ``X`` and return its cluster assignment.

    :param X: (N, D) embeddings (l2-normalised here).
    :param n_clusters: C, the number of output units.
    :param config: hyperparameters; ``config.losses`` picks the method.
    :param reference_labels: (N,) true labels, only to log metrics per epoch (never used to train).
    :param metrics_fn: ``(reference, predicted) -> dict``; default ACC/NMI from cimc.metrics.
    :return: labels (N,) int64 in 0..C-1, history (one dict per epoch), the model.
    """
    import torch

    from cimc.cluster.trainer import Trainer

    config = config or CimcConfig()
    X = l2_normalise(X)
    if n_clusters is None or n_clusters < 2:
        raise ValueError(f"CIMC needs the number of clusters (>= 2), got {n_clusters}")
    if n_clusters > X.shape[0]:  # as the baselines (prepare_input): more clusters than points is a mistake
        raise ValueError(f"CIMC: n_clusters={n_clusters} must be between 2 and the number of points {X.shape[0]}")
    if X.shape[0] < 2 * n_clusters:
        logger.warning("only %d points for %d clusters", X.shape[0], n_clusters)
    device = torch.device(resolve_device(config.device))
    # Seeding inside a forked RNG leaves the caller's random streams as they were; the TF32 switches are
    # process-wide too, and k-means, the GMM or ECAPA run after CIMC in one process must not inherit them.
    # A checkpoint folder named in a YAML can be shared by two runs by mistake: the second stops, naming the first,
    # instead of both resuming from and overwriting one checkpoint.pt. Its own lock file, as the folder may be the
    # output folder that `cimc cluster` holds.
    held = (exclusive_dir(config.checkpoint_dir, "CIMC training", CHECKPOINT_LOCK, "another checkpoint_dir")
            if config.checkpoint_dir else contextlib.nullcontext())
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []), tf32_switches_kept(), held:
        return Trainer(X, n_clusters, config, reference_labels, metrics_fn).run()


class _NeuralClusterer(Clusterer):
    """Shared fit_predict of the trained methods; keeps ``history`` and ``model`` of the last fit."""

    config_class: type = CimcConfig

    def __init__(self, config: CimcConfig | None = None) -> None:
        super().__init__(config or self.config_class())
        self.history: list[dict] = []
        self.model = None

    def fit_predict(self, X: np.ndarray, n_clusters: int | None = None,
                    reference_labels: np.ndarray | None = None) -> np.ndarray:
        """Cluster the rows of ``X`` (N, D) into ``n_clusters``; returns (N,) int64 labels."""
        if n_clusters is None:
            raise ValueError(f"method {self.name!r} cannot estimate the number of clusters; pass n_clusters")
        result = train_cimc(X, n_clusters, self.config, reference_labels)
        self.history, self.model = result.history, result.model
        return result.labels


@register_clusterer("cimc", config=CimcConfig)
class CimcClusterer(_NeuralClusterer):
    """CIMC: IMSAT + SupCon on online pseudo-labels + virtual mixup (paper's eq. 1)."""

    config_class = CimcConfig


@register_clusterer("imsat", config=ImsatConfig)
class ImsatClusterer(_NeuralClusterer):
    """IMSAT alone: VAT self-augmented training + mutual information."""

    config_class = ImsatConfig


@register_clusterer("imsat-mixup", config=ImsatMixupConfig)
class ImsatMixupClusterer(_NeuralClusterer):
    """IMSAT + virtual mixup on logits."""

    config_class = ImsatMixupConfig


def checkpoint_path(config: CimcConfig) -> Path | None:
    """DIR/checkpoint.pt when ``config.checkpoint_dir`` is set."""
    return Path(config.checkpoint_dir) / "checkpoint.pt" if config.checkpoint_dir else None
