#!/usr/bin/env python
"""Speed of stages 6-7: ECAPA-TDNN training samples/s and embedding-extraction real-time factor.

Baseline and ours run in the same process:
  - training: the model step alone on pre-computed features (the ceiling) vs the full pipeline
    (audio loading, augmentation, on-the-fly MFCC, SpecAugment, step) through the DataLoader;
    the ratio is the share of the ceiling that the data pipeline leaves us.
  - extraction: real-time factor (compute seconds / audio seconds) of features alone vs features + model.

    python bench/sv.py                                   # small CPU sizes
    python bench/sv.py --device cuda --batch-size 200 --channels 512 --steps 20 --workers 8
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cimc.sv.checkpoint import build_speaker_net  # noqa: E402
from cimc.sv.config import SvConfig  # noqa: E402
from cimc.sv.data import CropDataset, RandomLengthCollate, crop_frames, label_index  # noqa: E402
from cimc.sv.extract import extract_embeddings  # noqa: E402
from cimc.sv.toy import make_toy_cuts  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    parser.add_argument("--crop", type=float, default=2.0, help="crop length, seconds")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the full pipeline")
    parser.add_argument("--speakers", type=int, default=8)
    parser.add_argument("--extract-utts", type=int, default=8)
    parser.add_argument("--extract-seconds", type=float, default=6.0)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(net, batches, device, amp: bool) -> float:
    """Seconds per step over ``batches`` (an iterator of (feats, labels)), after one untimed step."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    timed, start = 0, 0.0
    for i, (feats, labels) in enumerate(batches):
        if i == 1:
            sync(device)
            start = time.perf_counter()
        feats, labels = feats.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = net(feats, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timed += i >= 1
    sync(device)
    return (time.perf_counter() - start) / max(timed, 1)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = SvConfig()
    config.model.channels = args.channels
    root = Path(tempfile.mkdtemp(prefix="bench_sv_"))
    cuts = list(make_toy_cuts(root / "train", args.speakers, 4, seconds=(1.0, 4.0)))
    labels = label_index(cuts)
    net = build_speaker_net(config, 40, len(labels)).to(device).train()
    frames = crop_frames(args.crop)
    steps = args.steps + 1

    # Baseline: the model alone, on features already in memory.
    fixed = [(torch.randn(args.batch_size, frames, 40), torch.randint(0, len(labels), (args.batch_size,)))] * steps
    model_s = time_steps(net, iter(fixed), device, args.amp)

    # Ours: the full training input pipeline.
    dataset = CropDataset(cuts * (steps * args.batch_size // len(cuts) + 1), labels, config.features, args.crop,
                          train=True, augment=config.augment)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                         collate_fn=RandomLengthCollate(frames, frames), drop_last=True,
                                         pin_memory=device.type == "cuda")
    batches = (b for i, b in zip(range(steps), loader))
    pipeline_s = time_steps(net, batches, device, args.amp)

    # Extraction RTF: features alone vs features + model, whole utterances.
    extract_cuts = list(make_toy_cuts(root / "extract", args.extract_utts, 1, seconds=args.extract_seconds, seed=1))
    audio_s = sum(c.duration for c in extract_cuts)
    encoder = net.encoder.eval()
    from cimc.sv.data import make_feature_fn

    feature_fn = make_feature_fn(config.features)
    start = time.perf_counter()
    for cut in extract_cuts:
        feature_fn(cut.load_audio()[0], cut.sampling_rate)
    features_rtf = (time.perf_counter() - start) / audio_s
    start = time.perf_counter()
    extract_embeddings(encoder, config.features, extract_cuts, str(device), num_workers=0)
    sync(device)
    extract_rtf = (time.perf_counter() - start) / audio_s

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    rows = [
        ("device", name),
        ("ECAPA channels / batch / crop", f"{args.channels} / {args.batch_size} / {args.crop:g} s"),
        ("train: model only (samples/s)", f"{args.batch_size / model_s:.1f}"),
        (f"train: full pipeline, {args.workers} workers (samples/s)", f"{args.batch_size / pipeline_s:.1f}"),
        ("train: pipeline / model-only ratio", f"{model_s / pipeline_s:.2f}"),
        ("extract: features-only RTF", f"{features_rtf:.4f}"),
        ("extract: features + ECAPA RTF", f"{extract_rtf:.4f}"),
    ]
    width = max(len(k) for k, _ in rows)
    sys.stdout.write("".join(f"{k.ljust(width)}  {v}\n" for k, v in rows))


if __name__ == "__main__":
    main()
