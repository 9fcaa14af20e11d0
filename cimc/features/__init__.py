"""Stage 1: Kaldi-compatible features (kaldi-native-fbank), energy VAD, sliding CMN.

Import order: ``config`` (plain dataclasses) <- ``vad``, ``cmn`` (numpy) <- ``extractor`` (Lhotse
registration) <- ``frames`` (reading stored cuts) <- ``compute`` (the ``compute-feats`` stage).
Names are resolved lazily so that ``cimc --help`` does not import Lhotse or torch.

Typical use::

    from cimc.features import MfccConfig, make_extractor, load_frames
    feats = make_extractor(MfccConfig()).extract(samples, 16000)   # (T, 40), on the fly
    frames = load_frames(cut)                                      # stored, CMN + VAD applied
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MfccConfig": "cimc.features.config",
    "FbankConfig": "cimc.features.config",
    "VadConfig": "cimc.features.config",
    "CmnConfig": "cimc.features.config",
    "FeaturePipelineConfig": "cimc.features.config",
    "compute_vad": "cimc.features.vad",
    "vad_log_energy": "cimc.features.vad",
    "sliding_cmn": "cimc.features.cmn",
    "make_extractor": "cimc.features.extractor",
    "KnfMfcc": "cimc.features.extractor",
    "KnfFbank": "cimc.features.extractor",
    "load_frames": "cimc.features.frames",
    "load_vad": "cimc.features.frames",
    "compute_features": "cimc.features.compute",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cimc.features' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
