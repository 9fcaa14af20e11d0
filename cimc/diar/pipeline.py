"""The diarization pipeline between data and scoring, one function per recipe stage.

    recording cuts --speech_activity--> segments --subsegment_cuts--> sub-segment cuts
        --(cimc sv extract | i-vectors)--> embeddings --diarize--> labels --> hypothesis RTTM

Embeddings are made by the speaker-verification stages' own commands on the sub-segment cuts, so this
module never loads a model. Clustering goes through the shared :mod:`cimc.cluster` registry.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Any, Sequence

import numpy as np

from cimc.diar.rttm import Turn, turns_from_supervisions
from cimc.diar.segments import labels_to_turns, regions_from_turns, regions_from_vad, segment_id, uniform_subsegments
from cimc.utils import name_some

logger = logging.getLogger(__name__)

SPEECH_SOURCES = ("vad", "reference")
CENTERING = ("recording", "none")


@dataclasses.dataclass
class SpeechConfig:
    """Speech activity: the stage-1 energy VAD stored with the features, or the reference turns (oracle)."""

    source: str = "vad"  # vad | reference
    min_speech: float = 0.2  # seconds: shorter VAD regions are dropped
    min_silence: float = 0.3  # seconds: shorter VAD pauses are bridged
    frame_shift: float = 0.01  # seconds per VAD decision (the features' shift)

    def __post_init__(self) -> None:
        if self.source not in SPEECH_SOURCES:
            raise ValueError(f"speech.source {self.source!r} is not one of {SPEECH_SOURCES}")


@dataclasses.dataclass
class SubsegmentConfig:
    """Uniform sub-segmentation of speech regions (Kaldi's diarization recipes: 1.5 s every 0.75 s)."""

    window: float = 1.5  # seconds
    shift: float = 0.75  # seconds


@dataclasses.dataclass
class ClusteringConfig:
    """Per-recording clustering of sub-segment embeddings.

    ``num_speakers``: ``estimate`` lets the method decide (AHC by its distance threshold, spectral by the
    eigengap); a method that cannot estimate (k-means, CIMC) gets the count that ``count_method``
    estimates on the same embeddings. ``oracle`` uses the reference's number of speakers.
    ``methods`` maps a method name to its config fields (the registry's dataclass), e.g.
    ``{ahc: {distance_threshold: 0.8}}``.
    """

    num_speakers: str = "estimate"  # estimate | oracle
    count_method: str = "spectral"
    max_speakers: int = 10  # cap on the count handed to a non-estimating method; estimating ones only warn
    center: str = "recording"  # subtract each recording's mean embedding before l2-normalising
    methods: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_speakers not in ("estimate", "oracle"):
            raise ValueError(f"num_speakers must be 'estimate' or 'oracle', got {self.num_speakers!r}")
        if self.center not in CENTERING:
            raise ValueError(f"center {self.center!r} is not one of {CENTERING}")


@dataclasses.dataclass
class DiarizationConfig:
    """What conf/diar.yaml holds: every stage's settings (each stage reads its own section)."""

    speech: SpeechConfig = dataclasses.field(default_factory=SpeechConfig)
    subsegment: SubsegmentConfig = dataclasses.field(default_factory=SubsegmentConfig)
    clustering: ClusteringConfig = dataclasses.field(default_factory=ClusteringConfig)
    collar: float = 0.25  # seconds each side of a reference boundary (md-eval convention)


def speech_activity(cuts: Sequence[Any], config: SpeechConfig) -> dict[str, list[tuple[float, float]]]:
    """Speech regions (seconds) of each recording cut, from its stored VAD or its reference supervisions."""
    regions = {}
    for cut in cuts:
        if config.source == "reference":
            spans = regions_from_turns(turns_from_supervisions(cut.supervisions))
        else:
            from cimc.features.frames import load_vad

            spans = regions_from_vad(load_vad(cut), config.frame_shift, config.min_speech, config.min_silence)
            spans = [(s, min(e, cut.duration)) for s, e in spans if s < cut.duration]
        if not spans:
            logger.warning("recording %s: no speech found (%s); it will get no hypothesis turns", cut.id, config.source)
        regions[cut.id] = spans
    return regions


def subsegment_cuts(cuts: Sequence[Any], segments: dict[str, list[tuple[str, float, float]]],
                    config: SubsegmentConfig) -> Any:
    """Cuts of the uniform sub-segments of every speech segment, ids from :func:`segment_id`.

    Each is a truncation of its recording cut, so it keeps the recording's audio and, when present,
    its stored features and VAD: both the ECAPA (audio) and i-vector (features) extractors accept it.
    Supervisions are dropped (a sub-segment has no known speaker).
    """
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    pieces = []
    for cut in cuts:
        regions = [(s, e) for _, s, e in segments.get(cut.id, [])]
        for start, end in uniform_subsegments(regions, config.window, config.shift):
            end = min(end, cut.duration)
            if end - start <= 0:
                continue
            piece = cut.truncate(offset=start, duration=end - start, preserve_id=True)
            pieces.append(fastcopy(piece, id=segment_id(cut.id, start, end), supervisions=[]))
    missing = sorted(set(segments) - {c.id for c in cuts})
    if missing:
        raise ValueError(f"{len(missing)} recording(s) of the segments file have no cut: {name_some(missing)}")
    return CutSet.from_cuts(pieces)


def parse_segment_id(seg_id: str) -> tuple[str, float, float]:
    """Inverse of :func:`segment_id`: ``(recording id, start, end)`` in seconds."""
    try:
        rec, start, end = seg_id.rsplit("-", 2)
        return rec, int(start) / 1000.0, int(end) / 1000.0
    except ValueError:
        raise ValueError(f"{seg_id!r} is not a sub-segment id '<recording>-<start ms>-<end ms>'") from None


def load_clusterers() -> None:
    """Import the modules that register clustering methods (baselines, CIMC) with the registry."""
    for name in ("cimc.cluster.baselines", "cimc.cluster.cimc"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            logger.debug("clustering module %s is not available", name)


def make_method(name: str, config: ClusteringConfig) -> Any:
    """The clusterer ``name`` with its fields from ``config.methods[name]`` over the registry's defaults."""
    from cimc.cluster.base import config_class, make_clusterer
    from cimc.config import from_dict

    load_clusterers()
    cls = config_class(name)
    values = config.methods.get(name) or {}
    if cls is None:
        if values:
            raise ValueError(f"clustering method {name!r} takes no config, got {values}")
        return make_clusterer(name)
    return make_clusterer(name, from_dict(cls, values, where=f"clustering.methods.{name}"))


def prepare_embeddings(X: np.ndarray, center: str) -> np.ndarray:
    """(N, D) embeddings of one recording, optionally centred on their mean, then l2-normalised."""
    X = np.asarray(X, dtype=np.float64)
    if center == "recording" and len(X) > 1:
        X = X - X.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.maximum(norms, 1e-12)).astype(np.float32)


def cluster_recording(X: np.ndarray, method: Any, config: ClusteringConfig, oracle: int | None = None,
                      counter: Any = None) -> np.ndarray:
    """(N,) labels of one recording's (N, D) sub-segment embeddings.

    :param method: a :class:`cimc.cluster.base.Clusterer`.
    :param oracle: the reference speaker count (used when ``config.num_speakers == "oracle"``).
    :param counter: the clusterer whose estimate a non-estimating ``method`` gets.
    """
    if len(X) < 2:
        return np.zeros(len(X), dtype=np.int64)
    X = prepare_embeddings(X, config.center)
    if config.num_speakers == "oracle":
        if oracle is None:
            raise ValueError("num_speakers: oracle needs the reference (--ref-rttm)")
        return method.fit_predict(X, min(oracle, len(X)))
    try:
        labels = method.fit_predict(X, None)
    except ValueError as error:  # the method cannot estimate: ask the counting method
        if counter is None:
            raise
        count = len(np.unique(counter.fit_predict(X, None)))
        logger.debug("%s: %s; using %s's estimate %d", method.name, error, counter.name, count)
        labels = method.fit_predict(X, min(count, config.max_speakers, len(X)))
    if len(np.unique(labels)) > config.max_speakers:
        logger.warning("%s found %d speakers, above max_speakers %d; keeping them", method.name,
                       len(np.unique(labels)), config.max_speakers)
    return np.asarray(labels, dtype=np.int64)


def diarize(ids: Sequence[str], vectors: np.ndarray, method_name: str, config: ClusteringConfig,
            reference: dict[str, list[Turn]] | None = None) -> tuple[list[Turn], dict[str, int]]:
    """Cluster each recording's sub-segment embeddings and merge them into speaker turns.

    :param ids: (N,) sub-segment ids ``<rec>-<start ms>-<end ms>`` (as :func:`subsegment_cuts` names them).
    :param vectors: (N, D) embeddings in the order of ``ids``.
    :param reference: recording -> reference turns, for ``num_speakers: oracle``.
    :return: hypothesis turns of all recordings, and sub-segment id -> label.
    """
    from tqdm import tqdm

    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} embeddings")
    method = make_method(method_name, config)
    estimating = config.num_speakers == "estimate" and config.count_method != method_name
    counter = make_method(config.count_method, config) if estimating else None
    by_rec: dict[str, list[int]] = {}
    spans = np.zeros((len(ids), 2))
    for row, seg in enumerate(ids):
        rec, spans[row, 0], spans[row, 1] = parse_segment_id(seg)
        by_rec.setdefault(rec, []).append(row)
    turns, labels_by_id = [], {}
    for rec, rows in tqdm(sorted(by_rec.items()), desc=f"clustering ({method_name})"):
        oracle = len({t.speaker for t in reference.get(rec, [])}) if reference else None
        labels = cluster_recording(vectors[rows], method, config, oracle, counter)
        turns += labels_to_turns(rec, spans[rows], labels, prefix="spk")
        labels_by_id.update({ids[r]: int(label) for r, label in zip(rows, labels)})
    return turns, labels_by_id

