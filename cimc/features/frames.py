"""Frames ready for modelling: stored features -> sliding CMN -> voiced frames only.

The order is Kaldi's speaker-id pipeline (``apply-cmvn-sliding | select-voiced-frames``): the mean
is taken over all frames, then silence is dropped. VAD decisions are stored by ``cimc compute-feats``
as a custom :class:`lhotse.array.TemporalArray` named ``vad`` on each cut (1.0 voiced, 0.0 not).
"""
from __future__ import annotations

import logging

import numpy as np

from cimc.features.cmn import sliding_cmn
from cimc.features.config import CmnConfig

logger = logging.getLogger(__name__)

VAD_FIELD = "vad"


def load_vad(cut) -> np.ndarray:
    """(T,) bool voiced flags stored on ``cut``; a cut without them raises ``ValueError`` naming it."""
    if not cut.has_custom(VAD_FIELD):
        raise ValueError(f"cut {cut.id} has no '{VAD_FIELD}' decisions; compute them with `cimc compute-feats`")
    return np.asarray(cut.load_custom(VAD_FIELD)).reshape(-1) > 0.5


def select_voiced(features: np.ndarray, voiced: np.ndarray, cut_id: str) -> np.ndarray:
    """Rows of (T, F) ``features`` where ``voiced`` (T,) is set.

    Lengths may differ by a frame or two where Lhotse rounds a cut's duration to frames; more than
    that is an error. A cut with no voiced frame keeps all of its frames, with a warning, rather than
    vanishing from the data.
    """
    if abs(len(voiced) - len(features)) > 2:
        raise ValueError(f"cut {cut_id}: {len(voiced)} VAD decisions for {len(features)} feature frames")
    num_frames = min(len(voiced), len(features))
    features, voiced = features[:num_frames], voiced[:num_frames]
    if num_frames and not voiced.any():
        logger.warning("cut %s: VAD found no voiced frame among %d; keeping all frames", cut_id, num_frames)
        return features
    return features[voiced]


def load_frames(cut, apply_vad: bool = True, cmn: bool | CmnConfig = True) -> np.ndarray:
    """Stored features of ``cut``, mean-normalised and restricted to voiced frames.

    :param cut: a Lhotse cut with features (and ``vad`` when ``apply_vad``), as written by
        ``cimc compute-feats``.
    :param apply_vad: keep only the frames the energy VAD marked voiced.
    :param cmn: ``True`` for sliding CMN with :class:`CmnConfig` defaults (300 frames, centred),
        a :class:`CmnConfig` for other settings, ``False`` for none.
    :return: (T', F) float32, T' <= number of frames of the cut.
    """
    if not cut.has_features:
        raise ValueError(f"cut {cut.id} has no features; run `cimc compute-feats` on its cut set first")
    features = np.asarray(cut.load_features(), dtype=np.float32)
    if cmn:
        features = sliding_cmn(features, CmnConfig() if cmn is True else cmn)
    if apply_vad:
        features = select_voiced(features, load_vad(cut), cut.id)
    return features
