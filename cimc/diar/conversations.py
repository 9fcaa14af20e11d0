"""Synthetic multi-speaker conversations with exact ground truth, from single-speaker utterances.

The utterances come from any cut manifest with speakers (``cimc synth-corpus`` writes one). Each
recording draws 2-6 speakers and a length of 1-3 minutes, then alternates turns of 1-8 s between them
(never the same speaker twice in a row; every drawn speaker speaks), separated by short silences. A
turn is filled with that speaker's utterances, their leading and trailing silence trimmed by the
energy VAD, played back to back and cut to the turn length. Where the running share of overlapped
speech is below ``overlap_share``, the next turn starts before the current one ends (never more than
two speakers at once)::

    speaker a   [====turn====]            [===turn===]
    speaker b          overlap [===turn==========]
                               <-silence->

Background noise is added at a random SNR. Everything is drawn from ``seed`` (and the recording's
index), so the same inputs and config give byte-identical audio and references.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cimc.diar.rttm import Turn, recording_cuts, supervisions_from_turns, write_rttm
from cimc.diar.segments import merge_intervals
from cimc.utils import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ConversationConfig:
    """How :func:`build_conversations` draws recordings (times in seconds)."""

    num_recordings: int = 8
    min_speakers: int = 2
    max_speakers: int = 6
    min_duration: float = 60.0
    max_duration: float = 180.0
    min_turn: float = 1.0
    max_turn: float = 8.0
    min_silence: float = 0.1
    max_silence: float = 1.0
    overlap_share: float = 0.1  # target fraction of speech time where two speakers talk
    min_overlap: float = 0.3
    max_overlap: float = 2.0
    snr_min: float = 15.0  # dB, background noise relative to the speech power
    snr_max: float = 30.0
    trim_silence: bool = True  # trim each source utterance to its voiced frames (energy VAD)
    # Share of the (sorted) source speakers to draw from, e.g. [0, 0.5] for a tuning set and [0.5, 1]
    # for the evaluation set, so that the two never share a speaker.
    speaker_range: tuple[float, float] = (0.0, 1.0)
    sampling_rate: int = 16000
    seed: int = 0

    def __post_init__(self) -> None:
        pairs = [("min_speakers", "max_speakers"), ("min_duration", "max_duration"), ("min_turn", "max_turn"),
                 ("min_silence", "max_silence"), ("min_overlap", "max_overlap"), ("snr_min", "snr_max")]
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) > {high} ({getattr(self, high)})")
        if self.min_speakers < 1 or self.min_turn <= 0 or self.min_silence < 0:
            raise ValueError("need min_speakers >= 1, min_turn > 0 and min_silence >= 0")
        if not 0 <= self.speaker_range[0] < self.speaker_range[1] <= 1:
            raise ValueError(f"speaker_range must be [low, high] with 0 <= low < high <= 1, got {self.speaker_range}")
        if not 0 <= self.overlap_share < 1:
            raise ValueError(f"overlap_share must lie in [0, 1), got {self.overlap_share}")


@dataclasses.dataclass
class Conversation:
    """One built recording: audio (S,) float32 in [-1, 1] and its reference turns."""

    recording_id: str
    audio: np.ndarray
    turns: list[Turn]

    @property
    def overlap_share(self) -> float:
        """Fraction of speech time with two speakers."""
        return overlap_share(self.turns)


def overlap_share(turns: Sequence[Turn]) -> float:
    """Fraction of the speech time (union of turns) covered by two or more turns."""
    speech = sum(e - s for s, e in merge_intervals((t.start, t.end) for t in turns))
    total = sum(t.duration for t in turns)
    return (total - speech) / speech if speech > 0 else 0.0


def trim_to_voiced(samples: np.ndarray, sampling_rate: int) -> np.ndarray:
    """``samples`` from the first to the last voiced 10 ms frame (Kaldi-default energy VAD)."""
    from cimc.features.vad import compute_vad

    frame = int(0.025 * sampling_rate)
    shift = int(0.01 * sampling_rate)
    if len(samples) < frame:
        return samples
    starts = np.arange(0, len(samples) - frame + 1, shift)
    frames = samples[starts[:, None] + np.arange(frame)] * 32768.0  # Kaldi's 16-bit energy scale
    voiced = np.flatnonzero(compute_vad(np.log(np.maximum((frames ** 2).sum(axis=1), 1e-10))))
    if len(voiced) == 0:
        return samples
    return samples[starts[voiced[0]]: starts[voiced[-1]] + frame]


class UtterancePool:
    """Single-speaker utterances by speaker, loaded once, each drawn in turn in a shuffled order."""

    def __init__(self, cuts: Sequence[Any], config: ConversationConfig) -> None:
        self.config = config
        self.by_speaker: dict[str, list[Any]] = defaultdict(list)
        for cut in sorted(cuts, key=lambda c: c.id):
            speakers = {s.speaker for s in cut.supervisions}
            if len(speakers) != 1 or None in speakers:
                raise ValueError(f"cut {cut.id} must have supervisions of exactly one speaker, has {speakers}")
            self.by_speaker[speakers.pop()].append(cut)
        self._audio: dict[str, np.ndarray] = {}

    @property
    def speakers(self) -> list[str]:
        """Sorted speaker ids within ``config.speaker_range``."""
        everyone = sorted(self.by_speaker)
        low, high = self.config.speaker_range
        return everyone[int(round(low * len(everyone))): int(round(high * len(everyone)))]

    def audio(self, cut: Any) -> np.ndarray:
        """(S,) float32 samples of ``cut`` at the configured rate, trimmed if configured."""
        if cut.id not in self._audio:
            if cut.sampling_rate != self.config.sampling_rate:
                cut = cut.resample(self.config.sampling_rate)
            try:
                samples = np.asarray(cut.load_audio(), dtype=np.float32)[0]
            except Exception as error:
                raise RuntimeError(f"cut {cut.id}: cannot load audio: {error}") from error
            if self.config.trim_silence:
                samples = trim_to_voiced(samples, self.config.sampling_rate)
            self._audio[cut.id] = samples
        return self._audio[cut.id]

    def speech(self, speaker: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
        """``seconds`` of ``speaker``: random utterances back to back, cut to length."""
        need = int(round(seconds * self.config.sampling_rate))
        pieces, have = [], 0
        cuts = self.by_speaker[speaker]
        while have < need:
            samples = self.audio(cuts[rng.integers(len(cuts))])
            pieces.append(samples)
            have += len(samples)
        return np.concatenate(pieces)[:need]


def _draw_turn_plan(speakers: Sequence[str], duration: float, config: ConversationConfig,
                    rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """``(speaker, start, length)`` of each turn of one recording, starting after 0.5 s of silence."""
    order = list(rng.permutation(speakers))  # every drawn speaker gets a turn early on
    plan: list[tuple[str, float, float]] = []
    end, overlapped, spoken = 0.5, 0.0, 0.0
    while True:
        previous = plan[-1] if plan else None
        if order:
            speaker = order.pop(0)
        else:
            speaker = str(rng.choice([s for s in speakers if s != previous[0]] or list(speakers)))
        length = float(rng.uniform(config.min_turn, config.max_turn))
        start = end + float(rng.uniform(config.min_silence, config.max_silence))
        if previous and spoken > 0 and overlapped / spoken < config.overlap_share:
            most = min(config.max_overlap, 0.5 * previous[2], 0.5 * length)
            if most >= config.min_overlap:
                overlap = float(rng.uniform(config.min_overlap, most))
                start = end - overlap
                overlapped += overlap
        if start + length > duration - 0.5 and len(plan) >= len(speakers):
            return plan
        plan.append((speaker, round(start, 3), round(length, 3)))
        end = max(end, start + length)
        spoken += length


def build_conversation(index: int, pool: UtterancePool, config: ConversationConfig) -> Conversation:
    """Recording ``index`` (its id is ``conv{index:03d}``), drawn from ``config.seed`` and ``index``."""
    rng = np.random.default_rng([config.seed, index])
    speakers = pool.speakers
    most = min(config.max_speakers, len(speakers))
    if most < config.min_speakers:
        raise ValueError(f"need at least {config.min_speakers} speakers in the utterance cuts, have {len(speakers)}")
    chosen = sorted(str(s) for s in rng.choice(speakers, int(rng.integers(config.min_speakers, most + 1)), replace=False))
    duration = float(rng.uniform(config.min_duration, config.max_duration))
    plan = _draw_turn_plan(chosen, duration, config, rng)
    rate = config.sampling_rate
    total = max(s + n for _, s, n in plan) + 0.5
    audio = np.zeros(int(round(total * rate)) + 1, dtype=np.float64)
    rec = f"conv{index:03d}"
    for speaker, start, length in plan:
        piece = pool.speech(speaker, length, rng)
        first = int(round(start * rate))
        audio[first: first + len(piece)] += piece
    speech_power = np.mean(audio[np.abs(audio) > 0] ** 2) if np.any(audio) else 1e-4
    snr = rng.uniform(config.snr_min, config.snr_max)
    audio += rng.standard_normal(len(audio)) * np.sqrt(speech_power / 10 ** (snr / 10))
    peak = np.abs(audio).max()
    if peak > 0.99:  # overlapped speech can clip: scale the whole recording, keep the SNR
        audio *= 0.99 / peak
    turns = [Turn(rec, start, length, speaker) for speaker, start, length in plan]
    return Conversation(rec, audio.astype(np.float32), turns)


def build_conversations(cuts: Sequence[Any], output_dir: str | Path, config: ConversationConfig) -> list[Conversation]:
    """Build ``config.num_recordings`` conversations from single-speaker ``cuts`` and write them.

    Writes under ``output_dir``: ``wav/<rec>.wav`` (16-bit), ``ref.rttm``, Lhotse
    ``{recordings,supervisions,cuts}.jsonl.gz`` (one cut per recording, one supervision per turn) and
    ``summary.txt`` (a table: speakers, duration and overlap share per recording).

    :return: the conversations (audio kept in memory; small corpora only).
    """
    import soundfile as sf
    from lhotse import Recording, RecordingSet
    from tqdm import tqdm

    output_dir = Path(output_dir)
    pool = UtterancePool(cuts, config)
    conversations, recordings = [], []
    for index in tqdm(range(config.num_recordings), desc="building conversations"):
        conv = build_conversation(index, pool, config)
        path = output_dir / "wav" / f"{conv.recording_id}.wav"
        with atomic_path(path) as tmp:
            sf.write(tmp, conv.audio, config.sampling_rate, subtype="PCM_16", format="WAV")
        recordings.append(Recording.from_file(path, recording_id=conv.recording_id))
        conversations.append(conv)
    turns = [t for conv in conversations for t in conv.turns]
    recording_set = RecordingSet.from_recordings(recordings)
    supervisions = supervisions_from_turns(turns)
    write_rttm(turns, output_dir / "ref.rttm")
    for name, manifest in [("recordings", recording_set), ("supervisions", supervisions),
                           ("cuts", recording_cuts(recording_set, supervisions))]:
        with atomic_path(output_dir / f"{name}.jsonl.gz") as tmp:
            manifest.to_file(tmp)
    write_text_atomic(output_dir / "summary.txt", summary_table(conversations, config.sampling_rate))
    logger.info("built %d conversations in %s\n%s", len(conversations), output_dir,
                summary_table(conversations, config.sampling_rate))
    return conversations


def summary_table(conversations: Sequence[Conversation], sampling_rate: int) -> str:
    """Markdown table: recording, speakers, turns, duration, overlap share."""
    lines = ["| recording | speakers | turns | duration s | overlap % |", "| --- | --- | --- | --- | --- |"]
    for conv in conversations:
        lines.append(f"| {conv.recording_id} | {len({t.speaker for t in conv.turns})} | {len(conv.turns)} | "
                     f"{len(conv.audio) / sampling_rate:.1f} | {100 * conv.overlap_share:.1f} |")
    return "\n".join(lines) + "\n"
