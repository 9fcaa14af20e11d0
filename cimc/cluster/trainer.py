"""The training loop behind :func:`cimc.cluster.cimc.train_cimc`: seeded, CPU/GPU, bf16, resumable.

One step: clean forward -> each loss term (VAT and mixup make their own perturbed forwards with
frozen BatchNorm statistics) -> weighted sum -> an optimiser step (Adam by default, the paper's momentum SGD
with ``optimizer: sgd``). The learning rate ramps in over ``lr_warmup`` of a short run (up to
``lr_warmup_max_run_steps``) and decays per step; SupCon's weight ramps in after its warm-up;
mixup's weight fades linearly to 0 at step ``mixup_max_steps`` (``mixup_fade``; else it is cut there). Per epoch:
mean of each term, the number of clusters used, and ACC/NMI when reference labels are given. A checkpoint
(model, optimiser, RNG, history) is written atomically every ``checkpoint_every`` epochs and picked up again by
a rerun.
"""
from __future__ import annotations

import json
import logging
import math

import numpy as np
from tqdm import tqdm

from cimc.cluster.cimc import (CimcConfig, MetricsFn, TrainResult, build_loss_terms, build_mlp, checkpoint_path,
                               loss_kernels, make_schedule, precision_dtypes)
from cimc.cluster.knn import kth_neighbor_distance
from cimc.config import changed_settings, result_settings
from cimc.utils import array_digest, atomic_path, resolve_device, write_text_atomic

logger = logging.getLogger(__name__)

LOG_EVERY = 10  # steps between reads of the loss values (each read waits for the GPU)


def default_metrics(reference: np.ndarray, predicted: np.ndarray) -> dict:
    """ACC (Hungarian) and NMI from cimc.metrics.clustering (sklearn's NMI alone if that is missing)."""
    try:
        from cimc.metrics import clustering as M
    except ImportError:
        from sklearn.metrics import normalized_mutual_info_score

        return {"nmi": float(normalized_mutual_info_score(reference, predicted))}
    table = M.contingency_table(reference, predicted)
    return {"acc": M.cluster_accuracy(table), "nmi": M.information_scores(table)["nmi"]}


def linear_ramp(steps_in: float, length: float) -> float:
    """A weight rising linearly to 1 over ``length`` steps, ``steps_in`` steps in; 1 when ``length`` is 0."""
    return 1.0 if length <= 0 else min(1.0, steps_in / length)


def make_optimizer(model, config: CimcConfig):
    """Adam (IMSAT's code) or momentum SGD (the CIMC paper), at ``config.lr``."""
    import torch

    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    raise ValueError(f"optimizer {config.optimizer!r}: use adam or sgd")


class Trainer:
    """State of one CIMC/IMSAT training run on l2-normalised ``X`` (N, D)."""

    def __init__(self, X: np.ndarray, n_clusters: int, config: CimcConfig,
                 reference_labels: np.ndarray | None = None, metrics_fn: MetricsFn | None = None) -> None:
        import torch

        self.config, self.n_clusters = config, n_clusters
        self.device = resolve_device(config.device)
        self.reference = None if reference_labels is None else np.asarray(reference_labels)
        if self.reference is not None and len(self.reference) != len(X):
            raise ValueError(f"{len(self.reference)} reference labels for {len(X)} points")
        self.metrics_fn = metrics_fn or default_metrics
        self.autocast_dtype, matmul_dtype = precision_dtypes(config, self.device)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.x = torch.from_numpy(X).to(self.device)
        self.schedule = make_schedule(len(X), config)
        self.terms = build_loss_terms(config, matmul_dtype, loss_kernels(config, self.device))
        self.uses_supcon = any(name == "supcon" for name, _, _ in self.terms)
        self.supcon_start = int(config.supcon_warmup * self.schedule.total_steps)
        self.confident_only_steps = config.supcon_min_confidence_until * self.schedule.total_steps
        self.supcon_began: int | None = None  # step at which SupCon's gate opened
        if self.supcon_start == 0 and config.supcon_start_entropy >= 1.0:
            self.supcon_began = 0  # no warm-up, no entropy condition (H(Y|X) <= log C): on from step 0
        self.settled_entropy = config.supcon_start_entropy * math.log(n_clusters)
        # Model and optimiser before the k-NN radii: their config errors surface before minutes of k-NN at 1M.
        self.model = build_mlp(X.shape[1], config.hidden_dim, n_clusters, config.output_init_scale,
                               config.hidden_init_scale).to(self.device)
        self.optimizer = make_optimizer(self.model, config)
        self.step, self.epoch, self.history = 0, 0, []
        # C, N and the config alone would match vectors re-extracted into the same file: the bytes tell
        self.data_digest = array_digest(X) if config.checkpoint_dir else None
        self._load_checkpoint()  # a checkpoint of another run is refused here too, before the radii
        self.eps = self._radii(X) if "vat" in [name for name, _, _ in self.terms] else None
        logger.info("CIMC: N=%d D=%d C=%d losses=%s batch=%d steps/epoch=%d epochs=%d device=%s",
                    len(X), X.shape[1], n_clusters, [n for n, _, _ in self.terms], self.schedule.batch_size,
                    self.schedule.steps_per_epoch, self.schedule.epochs, self.device)

    def _radii(self, X: np.ndarray):
        """Per-sample VAT radius eps_i = eps_scale * (distance to the k-th nearest neighbour)."""
        import torch

        k = min(self.config.knn_k, len(X) - 1)
        dist = kth_neighbor_distance(X, k, self.config.knn_chunk, device=self.device, progress=self.config.progress)
        return torch.from_numpy(self.config.eps_scale * dist).to(self.device)

    def weight(self, name: str, weight: float) -> float:
        """Weight of a term at the current step: SupCon is 0 until its gate opens, then ramps in linearly; mixup
        is 0 from step ``mixup_max_steps`` on (when set), and with ``mixup_fade`` falls linearly to 0 there."""
        if name == "mixup":
            cap = self.config.mixup_max_steps
            if 0 < cap and self.config.mixup_fade:
                return weight * (1.0 - linear_ramp(self.step, cap))
            return 0.0 if 0 < cap <= self.step else weight
        if name != "supcon":
            return weight
        if self.supcon_began is None:
            return 0.0
        return weight * linear_ramp(self.step - self.supcon_began + 1, self.schedule.total_steps // 10)

    def learning_rate(self) -> float:
        """The lr at the current step: ramped in over :attr:`lr_warmup_steps`, taken down by ``lr_decay`` per step."""
        ramp = linear_ramp(self.step + 1, self.lr_warmup_steps)
        return ramp * self.config.lr * self.schedule.decay_per_step ** self.step

    @property
    def lr_warmup_steps(self) -> float:
        """Steps of the lr ramp: ``lr_warmup`` of the run on runs of at most ``lr_warmup_max_run_steps`` (if set),
        else 0 (the full lr from step 0)."""
        total, longest = self.schedule.total_steps, self.config.lr_warmup_max_run_steps
        return self.config.lr_warmup * total if longest == 0 or total <= longest else 0.0

    def cond_weight(self) -> float:
        """Weight of H(Y|X) in the MI term: ramps linearly from 0 over ``entropy_warmup`` of the run, then 1.

        Without the push to confident predictions the network stays soft while VAT and H(Y) shape it, and
        commits gradually instead of to the first partition its random features suggest (an annealing
        schedule; docs/cimc_tuning.md, "Objective or optimisation").
        """
        return linear_ramp(self.step + 1, self.entropy_warmup_steps)

    @property
    def entropy_warmup_steps(self) -> float:
        """Steps of the H(Y|X) ramp: ``entropy_warmup`` of the run, capped at ``entropy_warmup_max_steps`` (if set)."""
        steps = self.config.entropy_warmup * self.schedule.total_steps
        cap = self.config.entropy_warmup_max_steps
        return min(steps, cap) if cap > 0 else steps

    def update_supcon_gate(self, logged: dict[str, float]) -> None:
        """Open SupCon's gate after the warm-up once predictions are confident (H(Y|X) < settled_entropy).

        SupCon's labels are the argmax predictions; before they settle its gradient (large, as the
        logits are tiny at the start) would freeze noise into a few clusters. Without the MI term
        there is no H(Y|X) to watch and the warm-up alone decides.
        """
        if not self.uses_supcon or self.supcon_began is not None or self.step < self.supcon_start:
            return  # no SupCon term (IMSAT alone): no gate to open
        if logged.get("H(Y|X)", 0.0) < self.settled_entropy:
            self.supcon_began = self.step
            logger.info("SupCon starts at step %d (H(Y|X) %.3f)", self.step, logged.get("H(Y|X)", float("nan")))

    def train_step(self, batch_idx) -> dict:
        """One optimiser step on rows ``batch_idx``; returns each term's value as a detached 0-dim tensor.

        Nothing here waits for the GPU: values are read (and checked for NaN) every ``LOG_EVERY`` steps.
        """
        import torch

        from cimc.cluster.losses import LossContext, class_counts

        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = self.x[batch_idx]
        eps = self.eps[batch_idx] if self.eps is not None else None
        with torch.autocast(self.device.split(":")[0], dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            logits = self.model(x)
            ctx = LossContext(self.model, x, logits, eps, self.cond_weight(), self.step < self.confident_only_steps)
            total, logged = None, {}
            for name, term, weight in self.terms:
                w = self.weight(name, weight)
                if w == 0.0:
                    continue
                value, extra = term(ctx)
                total = w * value if total is None else total + w * value
                logged[name] = value.detach()
                logged.update(extra)
        if total is None:
            return logged
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        logged["loss"] = total.detach()
        labels = logits.detach().argmax(1)
        logged["used"] = (class_counts(labels, self.n_clusters) > 0).sum()
        return logged

    def run_epoch(self) -> dict[str, float]:
        """One pass over a fresh permutation (the last partial batch dropped); returns epoch means, each term's over
        the steps that logged it (SupCon's first epoch, the last one with its confidence threshold)."""
        import torch

        self.model.train()
        order = torch.randperm(len(self.x), generator=self.generator).to(self.device)
        sums: dict = {}
        counts: dict[str, int] = {}
        bar = tqdm(range(self.schedule.steps_per_epoch), desc=f"CIMC epoch {self.epoch + 1}/{self.schedule.epochs}",
                   # Short epochs (small sets) would print a bar per epoch: the run's bar says enough.
                   disable=not self.config.progress or self.schedule.steps_per_epoch < LOG_EVERY, leave=False)
        for i in bar:
            start = i * self.schedule.batch_size
            logged = self.train_step(order[start:start + self.schedule.batch_size])
            self.step += 1
            for key, value in logged.items():
                sums[key] = sums[key] + value.float() if key in sums else value.float()
                counts[key] = counts.get(key, 0) + 1
            if (i + 1) % LOG_EVERY == 0 or i + 1 == self.schedule.steps_per_epoch:
                shown = {k: float(v) for k, v in logged.items()}
                self._check_finite(shown)
                self.update_supcon_gate(shown)
                bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()})
        return {k: float(v) / counts[k] for k, v in sums.items()}

    def _check_finite(self, logged: dict[str, float]) -> None:
        if not np.isfinite(logged.get("loss", 0.0)):
            raise FloatingPointError(f"loss became {logged['loss']} by step {self.step} (terms: {logged})")

    def predict(self, batch_size: int = 65536) -> np.ndarray:
        """Argmax cluster of every point (eval mode: BatchNorm running statistics); (N,) int64."""
        import torch

        self.model.eval()
        with torch.no_grad():
            labels = [self.model(self.x[s:s + batch_size]).argmax(1) for s in range(0, len(self.x), batch_size)]
        self.model.train()
        return torch.cat(labels).cpu().numpy().astype(np.int64)

    def run(self) -> TrainResult:
        """Train (from the checkpoint loaded in __init__, if there was one); return labels, history and model."""
        epochs_bar = tqdm(range(self.epoch, self.schedule.epochs), desc="CIMC training",
                          disable=not self.config.progress)
        for _ in epochs_bar:
            record = {"epoch": self.epoch + 1, "step": self.step + self.schedule.steps_per_epoch}
            record.update(self.run_epoch())
            self.epoch += 1
            if self.reference is not None:
                record.update(self.metrics_fn(self.reference, self.predict()))
            record["lr"] = self.learning_rate()
            self.history.append(record)
            epochs_bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k not in ("epoch", "step", "lr")})
            logger.debug("epoch %d: %s", self.epoch, ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
            if self.config.checkpoint_dir and (self.epoch % self.config.checkpoint_every == 0
                                               or self.epoch == self.schedule.epochs):
                self._save_checkpoint()
        labels = self.predict()
        if self.uses_supcon and self.supcon_began is None:
            logger.warning("SupCon never started: H(Y|X) stayed above %.3g (supcon_start_entropy %g x log C), so "
                           "this run was IMSAT + the other terms; lower supcon_start_entropy or train longer",
                           self.settled_entropy, self.config.supcon_start_entropy)
        if self.config.checkpoint_dir:
            history = checkpoint_path(self.config).with_name("history.json")
            write_text_atomic(history, json.dumps(self.history, indent=1, default=float) + "\n")
        logger.info("CIMC done: %d of %d clusters non-empty", len(np.unique(labels)), self.n_clusters)
        return TrainResult(labels, self.history, self.model)

    def _save_checkpoint(self) -> None:
        import torch

        path = checkpoint_path(self.config)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                 "supcon_began": self.supcon_began,
                 "epoch": self.epoch, "history": self.history, "generator": self.generator.get_state(),
                 "torch_rng": torch.get_rng_state(), "n_clusters": self.n_clusters, "n_points": len(self.x),
                 "data_digest": self.data_digest,
                 "config": result_settings(self.config),
                 "terms": {name: term.state() for name, term, _ in self.terms if hasattr(term, "state")}}
        if self.device.startswith("cuda"):
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def _load_checkpoint(self) -> None:
        import torch

        path = checkpoint_path(self.config)
        if path is None or not path.is_file():
            return
        state = torch.load(path, map_location=self.device, weights_only=False)
        if (state["n_clusters"], state["n_points"]) != (self.n_clusters, len(self.x)):
            raise ValueError(f"{path} was trained with C={state['n_clusters']} on N={state['n_points']} points, "
                             f"not C={self.n_clusters}, N={len(self.x)}; delete it to start afresh")
        if state.get("data_digest", self.data_digest) != self.data_digest:
            raise ValueError(f"{path} was trained on other vectors than this run's (the same N={len(self.x)}, other "
                             f"values: re-extracted, or another input); delete it to start afresh")
        # A checkpoint from before configs were saved ("config" absent) is not checked.
        changed = changed_settings(state["config"], self.config) if "config" in state else {}
        if changed:
            fields = sorted(changed)
            raise ValueError(f"{path} was trained with {', '.join(f'{k}={changed[k][0]!r}' for k in fields)}; this run "
                             f"asks for {', '.join(f'{k}={changed[k][1]!r}' for k in fields)}. Resume with the same "
                             f"settings, or delete {path} to start afresh")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch, self.history = state["step"], state["epoch"], state["history"]
        self.supcon_began = state["supcon_began"]
        for name, term, _ in self.terms:
            if name in state.get("terms", {}):
                term.load_state(state["terms"][name])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        logger.info("resumed CIMC from %s at epoch %d (step %d)", path, self.epoch, self.step)
