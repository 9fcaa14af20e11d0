"""cimc.diar.conversations: synthetic multi-speaker recordings with exact references."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cimc.diar.conversations import ConversationConfig, build_conversations, overlap_share
from cimc.diar.rttm import Turn, read_rttm

RATE = 16000


def tone_utterances(folder, num_speakers=6, per_speaker=3):
    """Single-speaker cuts: speaker k hums at its own pitch for 1-2 s between 0.3 s of low noise."""
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    rng = np.random.default_rng(7)
    recordings, supervisions = [], []
    for k in range(num_speakers):
        for u in range(per_speaker):
            seconds = rng.uniform(1.0, 2.0)
            t = np.arange(int(seconds * RATE)) / RATE
            voice = 0.3 * np.sin(2 * np.pi * (120 + 40 * k) * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
            pad = 1e-3 * rng.standard_normal(int(0.3 * RATE))
            samples = np.concatenate([pad, voice, pad]).astype(np.float32)
            uid = f"spk{k}-utt{u}"
            sf.write(folder / f"{uid}.wav", samples, RATE)
            recordings.append(Recording.from_file(folder / f"{uid}.wav", recording_id=uid))
            supervisions.append(SupervisionSegment(uid, uid, 0.0, recordings[-1].duration, speaker=f"spk{k}"))
    return CutSet.from_manifests(recordings=RecordingSet.from_recordings(recordings),
                                 supervisions=SupervisionSet.from_segments(supervisions))


SMALL = dict(num_recordings=3, min_duration=20.0, max_duration=30.0, overlap_share=0.15, seed=3)


def test_conversations_follow_the_config(tmp_path):
    (tmp_path / "utts").mkdir()
    cuts = tone_utterances(tmp_path / "utts")
    config = ConversationConfig(**SMALL)
    convs = build_conversations(cuts, tmp_path / "out", config)
    assert [c.recording_id for c in convs] == ["conv000", "conv001", "conv002"]
    turns_by_rec = {}
    for conv in convs:
        speakers = {t.speaker for t in conv.turns}
        assert 2 <= len(speakers) <= 6
        assert all(1.0 <= t.duration <= 8.0 for t in conv.turns)
        assert all(a.speaker != b.speaker for a, b in zip(conv.turns, conv.turns[1:]))
        duration = len(conv.audio) / RATE
        assert 20.0 - 8.0 <= duration <= 30.0 + 1.0
        # never more than two speakers at once: each turn overlaps at most its neighbours
        for a, b in zip(conv.turns, conv.turns[2:]):
            assert b.start >= a.end
        turns_by_rec[conv.recording_id] = conv.turns
    shares = [overlap_share(c.turns) for c in convs]
    assert 0.05 < np.mean(shares) < 0.25  # near the 15 % asked for
    # the written reference equals the built one, and the audio is where the turns say
    assert sorted(read_rttm(tmp_path / "out/ref.rttm")) == sorted(t for c in convs for t in c.turns)
    audio, rate = sf.read(tmp_path / "out/wav/conv000.wav")
    assert rate == RATE and len(audio) == len(convs[0].audio)
    energy = lambda s, e: np.mean(audio[int(s * RATE): int(e * RATE)] ** 2)  # noqa: E731
    first = convs[0].turns[0]
    assert energy(first.start + 0.1, first.end - 0.1) > 100 * energy(0.0, 0.4)  # 0.5 s of lead-in silence
    from lhotse import CutSet

    cuts_out = CutSet.from_file(tmp_path / "out/cuts.jsonl.gz").to_eager()
    assert list(cuts_out.ids) == ["conv000", "conv001", "conv002"]
    cut = cuts_out["conv000"]
    assert sorted((s.start, s.duration, s.speaker) for s in cut.supervisions) == sorted(
        (t.start, t.duration, t.speaker) for t in convs[0].turns)


def test_conversations_are_deterministic_and_seeded(tmp_path):
    (tmp_path / "utts").mkdir()
    cuts = tone_utterances(tmp_path / "utts")
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        build_conversations(cuts, tmp_path / name, ConversationConfig(**{**SMALL, "num_recordings": 1, "seed": seed}))
    wav = lambda name: (tmp_path / name / "wav/conv000.wav").read_bytes()  # noqa: E731
    assert wav("a") == wav("b") and wav("a") != wav("c")
    assert (tmp_path / "a/ref.rttm").read_text() == (tmp_path / "b/ref.rttm").read_text()


def test_overlap_share_and_config_errors():
    turns = [Turn("r", 0, 4, "a"), Turn("r", 3, 3, "b")]  # 1 s of 6 s overlapped
    assert overlap_share(turns) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="min_turn"):
        ConversationConfig(min_turn=9.0)
    with pytest.raises(ValueError, match="overlap_share"):
        ConversationConfig(overlap_share=1.5)


def test_too_few_speakers_is_an_error(tmp_path):
    (tmp_path / "utts").mkdir()
    cuts = tone_utterances(tmp_path / "utts", num_speakers=1)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        build_conversations(cuts, tmp_path / "out", ConversationConfig(**SMALL))


def test_speaker_range_splits_speakers(tmp_path):
    (tmp_path / "utts").mkdir()
    cuts = tone_utterances(tmp_path / "utts")
    small = {**SMALL, "min_speakers": 2, "max_speakers": 3}
    dev = build_conversations(cuts, tmp_path / "dev", ConversationConfig(**small, speaker_range=(0.0, 0.5)))
    ev = build_conversations(cuts, tmp_path / "eval", ConversationConfig(**small, speaker_range=(0.5, 1.0)))
    assert {t.speaker for c in dev for t in c.turns} <= {"spk0", "spk1", "spk2"}
    assert {t.speaker for c in ev for t in c.turns} <= {"spk3", "spk4", "spk5"}
