"""Train ECAPA-TDNN on (pseudo-)labelled cuts: single process, or DDP under torchrun.

    cimc sv train --config conf/ecapa.yaml --cuts exp/cluster/cimc/cuts.jsonl.gz --exp-dir exp/sv/cimc
    torchrun --nproc_per_node 4 -m cimc.cli sv train ...          # one process per GPU (NCCL)
    torchrun --nproc_per_node 2 -m cimc.cli sv train ... train.device=cpu   # CPU ranks (gloo)

Cost: one epoch is one pass over the training utterances, each seen as one 2-3 s crop; on VoxCeleb2
(1.09M utterances) at batch 200 that is ~5,500 steps. ``batch_size`` is per process. Checkpoints are
written every epoch, and a rerun resumes from the newest one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from cimc.config import check_saved_config, save_config
from cimc.sv import checkpoint as ckpt
from cimc.sv.augment import spec_augment
from cimc.sv.config import SvConfig
from cimc.sv.data import CropDataset, RandomLengthCollate, crop_frames, feature_dim, label_index, split_heldout
from cimc.utils import mark_done, write_text_atomic

logger = logging.getLogger(__name__)


@dataclass
class EpochResult:
    """Mean loss and accuracy on the (pseudo-)labels, and samples/s over all ranks."""

    loss: float
    accuracy: float
    samples_per_second: float = 0.0


def make_optimizer(config: SvConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    t = config.train
    if t.optimizer == "adam":
        return torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True)
    raise ValueError(f"train.optimizer: unknown optimizer {t.optimizer!r}; valid: ['adam', 'sgd']")


def lr_factor(step: int, warmup_steps: int, total_steps: int, final_ratio: float) -> float:
    """Multiplier of the base LR at ``step``: linear warm-up, then exponential decay to ``final_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return final_ratio ** min(progress, 1.0)


def make_loaders(config: SvConfig, train_cuts: list, heldout_cuts: list, labels: dict[str, int], env: ckpt.DistEnv):
    """(train loader, its sampler or None, held-out loader or None)."""
    t = config.train
    low, high = t.crop_seconds
    train_set = CropDataset(train_cuts, labels, config.features, high, train=True, augment=config.augment)
    sampler = None
    if env.distributed:
        sampler = torch.utils.data.DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=t.seed)
    per_rank = len(train_set) // env.world_size
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=min(t.batch_size, max(per_rank, 2)),
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=t.num_workers,
        collate_fn=RandomLengthCollate(crop_frames(low), crop_frames(high)),
        drop_last=per_rank >= 2,
        pin_memory=env.device.type == "cuda",
    )
    heldout = None
    if heldout_cuts:
        heldout_set = CropDataset(heldout_cuts, labels, config.features, high, train=False)
        heldout = torch.utils.data.DataLoader(
            heldout_set,
            batch_size=t.batch_size,
            num_workers=t.num_workers,
            collate_fn=RandomLengthCollate(crop_frames(high), crop_frames(high), random=False),
        )
    return loader, sampler, heldout


def _autocast(config: SvConfig, device: torch.device):
    enabled = config.train.amp and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def evaluate(net: ckpt.SpeakerNet, loader, config: SvConfig, device: torch.device) -> EpochResult:
    """Loss (with the full margin) and accuracy of ``net`` on ``loader``; no augmentation."""
    was_training, margin = net.training, net.head.margin_scale
    net.eval()
    net.head.set_margin_scale(1.0)
    total_loss = correct = count = 0.0
    for feats, labels in loader:
        feats, labels = feats.to(device), labels.to(device)
        with _autocast(config, device):
            loss, cos = net(feats, labels)
        total_loss += loss.item() * len(labels)
        correct += float((cos.argmax(dim=1) == labels).sum())
        count += len(labels)
    net.train(was_training)
    net.head.set_margin_scale(margin)
    return EpochResult(total_loss / max(count, 1), correct / max(count, 1))


def train_epoch(net, model, loader, optimizer, scheduler, config: SvConfig, env: ckpt.DistEnv, epoch: int) -> EpochResult:
    """One pass over ``loader``; ``model`` is ``net`` or its DDP wrapper. Shows loss, accuracy, samples/s."""
    t = config.train
    net.train()
    steps = len(loader) if t.max_steps_per_epoch <= 0 else min(len(loader), t.max_steps_per_epoch)
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{t.epochs}", disable=not env.is_main, leave=False)
    total_loss = correct = count = 0.0
    start = time.perf_counter()
    for step, (feats, labels) in enumerate(loader):
        if step >= steps:
            break
        warmup = config.head.margin_warmup_epochs
        net.head.set_margin_scale(1.0 if warmup <= 0 else (epoch - 1 + step / steps) / warmup)
        feats, labels = feats.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
        spec_augment(feats, config.augment)
        with _autocast(config, env.device):
            loss, cos = model(feats, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(labels)
        correct += float((cos.argmax(dim=1) == labels).sum())
        count += len(labels)
        rate = count * env.world_size / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{total_loss / count:.3f}", acc=f"{correct / count:.3f}", samples_s=f"{rate:.0f}")
        bar.update()
    bar.close()
    elapsed = time.perf_counter() - start
    return EpochResult(total_loss / max(count, 1), correct / max(count, 1), count * env.world_size / max(elapsed, 1e-9))


def _resume(exp_dir: Path, net, optimizer, scheduler) -> tuple[int, list[dict]]:
    """Load the newest epoch checkpoint if any; return (next epoch, per-epoch history)."""
    found = ckpt.list_checkpoints(exp_dir)
    if not found:
        return 1, []
    epoch, path = found[-1]
    state = ckpt.load_state(path)
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    logger.info("resuming after epoch %d from %s", epoch, path)
    return epoch + 1, state.get("history", [])


def select_final(exp_dir: Path, net, heldout, config: SvConfig, device, history: list[dict], feat_dim: int) -> dict:
    """Write ``final.pt``: the average of the last epochs or the best epoch, whichever has the lower held-out loss."""
    found = ckpt.list_checkpoints(exp_dir)
    last = [p for _, p in found[-config.train.average_last :]] if config.train.average_last > 0 else [found[-1][1]]
    candidates = {f"average of last {len(last)} epochs": ckpt.average_states(last)}
    if heldout is not None and history:
        best = min(history, key=lambda h: h["heldout_loss"])
        candidates[f"epoch {best['epoch']}"] = ckpt.load_state(ckpt.checkpoint_path(exp_dir, best["epoch"]))["model"]
    scores = {}
    for name, state in candidates.items():
        net.load_state_dict(state)
        scores[name] = evaluate(net, heldout, config, device) if heldout is not None else None
        if scores[name] is not None:
            logger.info("candidate %s: held-out loss %.4f, accuracy %.4f", name, scores[name].loss, scores[name].accuracy)
    chosen = min(scores, key=lambda n: scores[n].loss) if heldout is not None else next(iter(candidates))
    net.load_state_dict(candidates[chosen])
    summary = {"selected": chosen, "feat_dim": feat_dim}
    if scores[chosen] is not None:
        summary.update(heldout_loss=scores[chosen].loss, heldout_accuracy=scores[chosen].accuracy)
    ckpt.save_checkpoint(exp_dir / "final.pt", {"model": candidates[chosen], **summary})
    logger.info("final model: %s", chosen)
    return summary


def train(config: SvConfig, cuts: Sequence, exp_dir: str | Path) -> ckpt.SpeakerNet:
    """Train on ``cuts`` (labels = ``supervision.speaker``) into ``exp_dir``; return the final network.

    Resumes from the newest ``checkpoints/epoch_N.pt`` with the config it was started with, but for
    ``train.epochs`` (more epochs extend the run); another value of a field that changes the model raises,
    by name. Under torchrun every rank calls this; rank 0 writes the files. The held-out split is the same
    on every rank (seeded).
    """
    exp_dir = Path(exp_dir)
    if ckpt.list_checkpoints(exp_dir):  # before save_config overwrites the config they were trained with
        check_saved_config(exp_dir / "config.yaml", config, f"resume with it, or delete {exp_dir} to start afresh",
                           may_change={"train.epochs"})
    t = config.train
    env = ckpt.init_distributed(t.device)
    torch.manual_seed(t.seed + env.rank)
    np.random.seed(t.seed + env.rank)
    labels = label_index(cuts)
    train_cuts, heldout_cuts = split_heldout(cuts, t.heldout_fraction, t.min_heldout if t.heldout_fraction > 0 else 0, t.seed)
    feat_dim = feature_dim(config.features)
    if env.is_main:
        logger.info("%d classes; %d training and %d held-out utterances; %d-dim features on %s x %d",
                    len(labels), len(train_cuts), len(heldout_cuts), feat_dim, env.device, env.world_size)
        save_config(config, exp_dir / "config.yaml")
        write_text_atomic(exp_dir / "labels.txt", "".join(f"{k} {v}\n" for k, v in labels.items()))
    net = ckpt.build_speaker_net(config, feat_dim, len(labels)).to(env.device)
    loader, sampler, heldout = make_loaders(config, train_cuts, heldout_cuts, labels, env)
    steps = len(loader) if t.max_steps_per_epoch <= 0 else min(len(loader), t.max_steps_per_epoch)
    optimizer = make_optimizer(config, net)
    warmup_steps = max(int(t.warmup_epochs * steps), 1)
    factor = lambda s: lr_factor(s, warmup_steps, steps * t.epochs, t.final_lr / t.lr)  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    first_epoch, history = _resume(exp_dir, net, optimizer, scheduler)
    model = net
    if env.distributed:
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    for epoch in range(first_epoch, t.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        result = train_epoch(net, model, loader, optimizer, scheduler, config, env, epoch)
        record = {"epoch": epoch, "loss": result.loss, "accuracy": result.accuracy, "samples_per_second": result.samples_per_second}
        if heldout is not None:
            held = evaluate(net, heldout, config, env.device)
            record.update(heldout_loss=held.loss, heldout_accuracy=held.accuracy)
        history.append(record)
        if env.is_main:
            logger.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
            state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "epoch": epoch, "history": history, "feat_dim": feat_dim}
            ckpt.save_checkpoint(ckpt.checkpoint_path(exp_dir, epoch), state)
        _barrier(env)
    if env.is_main:
        select_final(exp_dir, net, heldout, config, env.device, history, feat_dim)
        write_text_atomic(exp_dir / "history.txt", format_history(history))
        plot_history(history, exp_dir / "training.png")
        mark_done(exp_dir)
    _barrier(env)
    return net


def _barrier(env: ckpt.DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


def format_history(history: list[dict]) -> str:
    """A text table, one row per epoch."""
    keys = [k for k in ("epoch", "loss", "accuracy", "heldout_loss", "heldout_accuracy", "samples_per_second") if any(k in h for h in history)]
    rows = [" ".join(f"{k:>18}" for k in keys)]
    for h in history:
        rows.append(" ".join(f"{h[k]:>18.4f}" if isinstance(h.get(k), float) else f"{h.get(k, ''):>18}" for k in keys))
    return "\n".join(rows) + "\n"


def history_figure(history: list[dict]):
    """Loss and accuracy per epoch, training (epoch mean) and held-out, as a matplotlib Figure."""
    from matplotlib.ticker import MaxNLocator

    from cimc.plotting import pyplot

    if not history:
        raise ValueError("no training history to plot")
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 4))
    for ax, what in zip(axes, ("loss", "accuracy")):
        for key, label in ((what, "training"), (f"heldout_{what}", "held-out")):
            kept = [h for h in history if key in h]
            if kept:
                ax.plot([h["epoch"] for h in kept], [h[key] for h in kept], marker="o", label=label)
        ax.set_title(what)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], path: str | Path) -> None:
    """Write :func:`history_figure` as a PNG at ``path``."""
    from cimc.plotting import save_png

    save_png(history_figure(history), path)
