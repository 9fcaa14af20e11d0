"""cimc.diar: RTTM I/O, speech regions and sub-segments, turn merging, DER/JER, the timeline plot."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimc.diar.plot import map_hypothesis_speakers, plot_timeline
from cimc.diar.rttm import (RttmError, Turn, group_by_recording, read_rttm, supervisions_from_turns,
                            turns_from_supervisions, write_rttm)
from cimc.diar.scoring import format_table, score_diarization
from cimc.diar.segments import labels_to_turns, merge_intervals, regions_from_turns, regions_from_vad, uniform_subsegments


def test_rttm_round_trip(tmp_path):
    turns = [Turn("rec2", 0.5, 1.25, "bob"), Turn("rec1", 3.0, 2.0, "alice"), Turn("rec1", 0.0, 1.5, "bob", 2)]
    write_rttm(turns, tmp_path / "x.rttm")
    assert sorted(read_rttm(tmp_path / "x.rttm")) == sorted(turns)
    first = (tmp_path / "x.rttm").read_text().splitlines()[0]
    assert first == "SPEAKER rec1 2 0.000 1.500 <NA> <NA> bob <NA> <NA>"
    assert turns_from_supervisions(supervisions_from_turns(turns)) == [t for ts in group_by_recording(
        [Turn(t.recording_id, t.start, t.duration, t.speaker) for t in turns]).values() for t in ts]


def test_rttm_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.rttm"
    path.write_text(";; comment\nSPEAKER r 1 0.0 1.0 <NA> <NA> a <NA> <NA>\nSPEAKER r 1 x 1.0 <NA> <NA> a <NA> <NA>\n")
    with pytest.raises(RttmError, match="bad.rttm:3"):
        read_rttm(path)
    with pytest.raises(FileNotFoundError, match="missing.rttm"):
        read_rttm(tmp_path / "missing.rttm")


REFERENCE = {"r": [Turn("r", 0, 10, "A"), Turn("r", 10, 10, "B"), Turn("r", 5, 2, "C")]}


def test_der_of_reference_against_itself_is_zero():
    for skip_overlap in (False, True):
        total, per_rec = score_diarization(REFERENCE, REFERENCE, collar=0.25, skip_overlap=skip_overlap)
        assert total.der == 0 and total.jer == 0 and per_rec["r"].der == 0


def test_der_and_jer_match_a_hand_count():
    # Hypothesis: X = A but runs 2 s into B, Y covers B only until 18 s, Z speaks where nobody does.
    hypothesis = {"r": [Turn("r", 0, 12, "X"), Turn("r", 12, 6, "Y"), Turn("r", 25, 2, "Z")]}
    # Collar 0.25 s each side removes [-.25,.25] [4.75,5.25] [6.75,7.25] [9.75,10.25] [19.75,20.25].
    # Scored reference speech: A 4.5 + 1.5 + 2.5, C 1.5, B 9.5 = 19.5 s.
    # Missed: C [5.25,6.75] 1.5 + B [18,19.75] 1.75; confusion: [10.25,12] 1.75; false alarm: Z 2.
    total, _ = score_diarization(REFERENCE, hypothesis, collar=0.25)
    assert total.speech == pytest.approx(19.5)
    assert total.missed == pytest.approx(100 * 3.25 / 19.5)
    assert total.false_alarm == pytest.approx(100 * 2 / 19.5)
    assert total.confusion == pytest.approx(100 * 1.75 / 19.5)
    assert total.der == pytest.approx(100 * 7 / 19.5)
    # JER: mean over reference speakers of 1 - |ref n hyp| / |ref u hyp|; C has no hypothesis speaker.
    assert total.jer == pytest.approx(100 * ((1.75 / 10.25) + (3.5 / 9.5) + 1) / 3)
    # Without overlap, [5, 7] leaves the scored region too: 16.5 s, C and its miss disappear.
    total, _ = score_diarization(REFERENCE, hypothesis, collar=0.25, skip_overlap=True)
    assert total.speech == pytest.approx(16.5)
    assert total.der == pytest.approx(100 * 5.5 / 16.5)
    assert total.jer == pytest.approx(100 * ((1.75 / 8.75) + (3.5 / 9.5)) / 2)
    # No collar: confusion [10, 12] = 2 s of 22 s of speech, missed 2 + 2, false alarm 2.
    total, _ = score_diarization(REFERENCE, hypothesis, collar=0.0)
    assert total.der == pytest.approx(100 * 8 / 22)


def test_scoring_totals_sum_over_recordings_and_reject_unknown():
    reference = {**REFERENCE, "s": [Turn("s", 0, 4, "A")]}
    total, per_rec = score_diarization(reference, {"r": REFERENCE["r"]}, collar=0.0)
    assert per_rec["s"].missed == 100 and per_rec["r"].der == 0
    assert total.der == pytest.approx(100 * 4 / 26)
    with pytest.raises(ValueError, match="no reference"):
        score_diarization(REFERENCE, {"zz": []})
    assert "| ahc | with | 0.00 |" in format_table([("ahc", "with", per_rec["r"])])


def test_regions_from_vad_bridges_pauses_and_drops_blips():
    voiced = np.zeros(300, bool)
    voiced[10:100] = True  # 0.1-1.0 s
    voiced[120:200] = True  # pause of 0.2 s: bridged with min_silence 0.3
    voiced[250:260] = True  # 0.1 s blip: dropped with min_speech 0.2
    assert regions_from_vad(voiced, 0.01, min_speech=0.2, min_silence=0.3) == [(0.1, 2.0)]
    assert regions_from_vad(voiced, 0.01, min_speech=0.05, min_silence=0.1) == [(0.1, 1.0), (1.2, 2.0), (2.5, 2.6)]


def test_uniform_subsegments_kaldi_style():
    segs = uniform_subsegments([(10.0, 13.0), (20.0, 20.4)], window=1.5, shift=0.75)
    assert segs.tolist() == [[10.0, 11.5], [10.75, 12.25], [11.5, 13.0], [20.0, 20.4]]
    with pytest.raises(ValueError, match="shift"):
        uniform_subsegments([(0, 1)], window=1.0, shift=2.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.05, 10)), min_size=1, max_size=6),
       st.integers(0, 2**31 - 1))
def test_turns_cover_exactly_the_speech_regions(raw, seed):
    # Whatever the labels, merging the labelled sub-segments neither loses nor invents speech time,
    # and the turns of one recording do not overlap each other.
    regions = merge_intervals([(round(s, 2), round(s + d, 2)) for s, d in raw])
    segs = uniform_subsegments(regions)
    labels = np.random.default_rng(seed).integers(0, 3, len(segs))
    turns = labels_to_turns("r", segs, labels)
    covered = merge_intervals((t.start, t.end) for t in turns)
    assert len(covered) == len(regions)
    for (a, b), (c, d) in zip(covered, regions):
        assert a == pytest.approx(c, abs=2e-3) and b == pytest.approx(d, abs=2e-3)
    for first, second in zip(turns, turns[1:]):
        assert second.start >= first.end - 2e-3


def test_labels_to_turns_merges_same_label_and_splits_at_overlap_middle():
    segs = uniform_subsegments([(0.0, 4.5)])  # [0,1.5] [.75,2.25] [1.5,3] [2.25,3.75] [3,4.5]
    turns = labels_to_turns("r", segs, [1, 1, 1, 0, 0], prefix="S")
    assert [(t.start, t.end, t.speaker) for t in turns] == [(0.0, 2.625, "S1"), (2.625, 4.5, "S0")]
    assert regions_from_turns(turns) == [(0.0, 4.5)]
    with pytest.raises(ValueError, match="2 labels for 5"):
        labels_to_turns("r", segs, [0, 1])


def test_timeline_plot_and_speaker_mapping(tmp_path):
    hypothesis = [Turn("r", 0, 9, "spk1"), Turn("r", 9, 11, "spk0")]
    assert map_hypothesis_speakers(REFERENCE["r"], hypothesis) == {"spk1": "A", "spk0": "B"}
    plot_timeline(REFERENCE["r"], hypothesis, tmp_path / "t.png", title="r")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
