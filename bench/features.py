#!/usr/bin/env python
"""Real-time factor per CPU core of cimc's kaldi-native-fbank extractors vs Lhotse's built-in
torch Kaldi-compatible ``Mfcc`` / ``Fbank``, on the same audio, in the same run.

Both compute the same features (40 MFCC from 40 mel bins, or 80 log-mel; 25 ms Hamming, 10 ms
shift; dither 0); the test suite checks they agree to ~1e-3. One thread each
(torch.set_num_threads(1)), so RTF = compute seconds / audio seconds for one core.

    python bench/features.py                          # 40 synthetic 4-s utterances
    python bench/features.py --cuts data/manifests/test_cuts.jsonl.gz --max-cuts 200

Prints a table with each extractor's RTF, how many times faster than real time, the ratio
Lhotse/cimc, and the projected core-hours for VoxCeleb2-dev's ~2,300 h of audio.
"""
from __future__ import annotations

import argparse
import os
import time

VOXCELEB2_DEV_HOURS = 2300.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", default=None, help="Lhotse cut manifest to take audio from (default: synthetic)")
    p.add_argument("--max-cuts", type=int, default=40)
    p.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic utterance")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats; the best is kept")
    return p.parse_args()


def load_audio(args):
    import numpy as np

    if args.cuts is None:
        rng = np.random.default_rng(0)
        return [(rng.standard_normal(int(16000 * args.seconds)) * 0.1).astype(np.float32) for _ in range(args.max_cuts)]
    from lhotse import CutSet

    cuts = CutSet.from_file(args.cuts).subset(first=args.max_cuts)
    return [cut.load_audio()[0].astype(np.float32) for cut in cuts]


def best_time(extract, audio, repeats: int) -> float:
    """Least wall-clock seconds to extract every signal (after one warm-up call)."""
    extract(audio[0], 16000)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for samples in audio:
            extract(samples, 16000)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from lhotse.features.kaldi.extractors import Fbank, FbankConfig, Mfcc, MfccConfig

    from cimc.features import FbankConfig as OurFbank
    from cimc.features import MfccConfig as OurMfcc
    from cimc.features import make_extractor

    torch.set_num_threads(1)
    audio = load_audio(args)
    audio_seconds = sum(len(a) for a in audio) / 16000
    # Lhotse works on [-1, 1] floats, ours on Kaldi's 16-bit scale: same features up to that scale.
    pairs = {
        "MFCC 40": (make_extractor(OurMfcc(use_energy=False)).extract,
                    Mfcc(MfccConfig(window_type="hamming", num_filters=40, num_ceps=40)).extract),
        "fbank 80": (make_extractor(OurFbank()).extract, Fbank(FbankConfig(window_type="hamming", num_filters=80)).extract),
    }
    print(f"{len(audio)} utterances, {audio_seconds:.1f} s of audio, 1 thread")
    print(f"| features | cimc (knf) RTF | Lhotse (torch) RTF | Lhotse / cimc | cimc core-h for VoxCeleb2-dev |")
    print("| --- | --- | --- | --- | --- |")
    for name, (ours, lhotse) in pairs.items():
        ours_rtf = best_time(ours, audio, args.repeats) / audio_seconds
        lhotse_rtf = best_time(lhotse, audio, args.repeats) / audio_seconds
        print(f"| {name} | {ours_rtf:.5f} | {lhotse_rtf:.5f} | {lhotse_rtf / ours_rtf:.2f}x | "
              f"{ours_rtf * VOXCELEB2_DEV_HOURS:.1f} |")


if __name__ == "__main__":
    main()
