"""Model assembly, the distributed environment, and checkpoints (save, resume, average, load).

An experiment folder holds::

    EXP/config.yaml          resolved SvConfig (extraction reads it)
    EXP/labels.txt           label -> class index of the training head
    EXP/checkpoints/epoch_N.pt   model, head, optimiser, step, held-out metrics; one per epoch
    EXP/final.pt             the selected model (average of the last epochs or the best epoch)
    EXP/.done
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cimc.sv.config import SvConfig
from cimc.sv.heads import MarginHead, build_head
from cimc.sv.model import EcapaTdnn
from cimc.utils import atomic_path, resolve_device

logger = logging.getLogger(__name__)


class SpeakerNet(nn.Module):
    """ECAPA-TDNN encoder plus training head, one module so DDP synchronises both."""

    def __init__(self, encoder: EcapaTdnn, head: MarginHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) features, (B,) labels -> (loss, (B, C) cosine scores)."""
        return self.head(self.encoder(feats), labels)


def build_speaker_net(config: SvConfig, feat_dim: int, num_classes: int) -> SpeakerNet:
    """The encoder of ``config.model`` on ``feat_dim`` inputs and the ``config.head`` over ``num_classes``."""
    m = config.model
    encoder = EcapaTdnn(feat_dim, m.channels, m.embed_dim, m.scale, m.se_bottleneck, m.attention_channels)
    head = build_head(config.head.name, m.embed_dim, num_classes, **config.head.options())
    return SpeakerNet(encoder, head)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank, world size and its device. Single process without torchrun is rank 0 of 1."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistEnv:
    """Join the torchrun process group if launched by torchrun (WORLD_SIZE > 1), else run alone.

    ``device`` "auto" picks CUDA when visible, else CPU; the backend follows (NCCL on CUDA, gloo on CPU),
    and each rank takes GPU ``LOCAL_RANK``.
    """
    import torch.distributed as dist

    name = resolve_device(device, cpu_fallback=True)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if name.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        name = f"cuda:{local_rank}"
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if name.startswith("cuda") else "gloo")
        logger.info("process group: rank %d of %d on %s", rank, world_size, name)
    return DistEnv(rank, world_size, torch.device(name))


def checkpoint_path(exp_dir: Path, epoch: int) -> Path:
    return exp_dir / "checkpoints" / f"epoch_{epoch}.pt"


def list_checkpoints(exp_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every epoch checkpoint, by epoch."""
    found = []
    for path in (exp_dir / "checkpoints").glob("epoch_*.pt"):
        match = re.fullmatch(r"epoch_(\d+)\.pt", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` written atomically: a crash never leaves a half checkpoint for resume to trip on."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict:
    """Load a checkpoint on the CPU; a missing or unreadable file raises naming it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=False)


def average_states(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the ``model`` state dicts in ``paths`` (integer buffers taken from the last)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    states = [load_state(p)["model"] for p in paths]
    average = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            average[key] = sum(s[key].double() for s in states).div(len(states)).to(last.dtype)
        else:
            average[key] = last.clone()
    return average


def load_encoder(exp_dir: str | Path, model_file: str = "final.pt") -> tuple[EcapaTdnn, SvConfig]:
    """The trained encoder (eval mode, CPU) and the resolved config of experiment ``exp_dir``."""
    from cimc.config import load_config

    exp_dir = Path(exp_dir)
    config = load_config(SvConfig, exp_dir / "config.yaml")
    state = load_state(exp_dir / model_file)
    m = config.model
    encoder = EcapaTdnn(state["feat_dim"], m.channels, m.embed_dim, m.scale, m.se_bottleneck, m.attention_channels)
    prefix = "encoder."
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)})
    return encoder.eval(), config
