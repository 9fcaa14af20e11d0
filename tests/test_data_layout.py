"""The shared Stage 0 writer (cimc.data.layout): cut construction, Kaldi dir, errors naming ids."""
from __future__ import annotations

import pytest


def manifests(ids_speakers, path="/c/{}.wav", starts=None):
    from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    recordings = RecordingSet.from_recordings(
        Recording(id=rid, sources=[AudioSource("file", [0], path.format(rid))], sampling_rate=16000,
                  num_samples=32000, duration=2.0)
        for rid in sorted({r for _, r, _ in ids_speakers})
    )
    supervisions = SupervisionSet.from_segments(
        SupervisionSegment(id=uid, recording_id=rid, start=(starts or {}).get(uid, 0.0),
                           duration=1.0 if starts else 2.0, speaker=spk, gender="female" if spk == "b" else None)
        for uid, rid, spk in ids_speakers
    )
    return recordings, supervisions


def test_cuts_span_their_supervision(tmp_path):
    from cimc.data.layout import write_data_layout

    recordings, supervisions = manifests([("a-1", "r1", "a"), ("b-1", "r1", "b")], starts={"a-1": 0.0, "b-1": 1.0})
    cuts = write_data_layout(tmp_path, "train", recordings, supervisions).to_eager()
    cut = cuts["b-1"]
    assert (cut.start, cut.duration, cut.recording_id) == (1.0, 1.0, "r1")
    assert cut.supervisions[0].start == 0.0 and cut.supervisions[0].speaker == "b"
    kaldi = tmp_path / "kaldi" / "train"
    assert (kaldi / "segments").read_text() == "a-1 r1 0.000 1.000\nb-1 r1 1.000 2.000\n"
    assert (kaldi / "wav.scp").read_text() == "r1 /c/r1.wav\n"
    assert (kaldi / "spk2utt").read_text() == "a a-1\nb b-1\n"
    assert not (kaldi / "spk2gender").exists()  # speaker "a" has no gender: no partial file


def test_whole_recording_utterances_have_no_segments_file_and_m4a_becomes_a_pipe(tmp_path):
    from cimc.data.layout import write_data_layout

    recordings, supervisions = manifests([("u1", "u1", "s"), ("u2", "u2", "s")], path="/c/{}.m4a")
    write_data_layout(tmp_path, "train", recordings, supervisions)
    kaldi = tmp_path / "kaldi" / "train"
    assert not (kaldi / "segments").exists()
    assert (kaldi / "wav.scp").read_text().splitlines()[0] == "u1 ffmpeg -v 8 -i /c/u1.m4a -f wav -acodec pcm_s16le - |"


@pytest.mark.parametrize(
    "rows,message",
    [([("u1", "r1", "s"), ("u1", "r2", "s")], r"1 duplicate utterance id\(s\): u1"),
     ([("u1", "r1", "")], r"1 utterance\(s\) have no speaker: u1")],
)
def test_bad_supervisions_are_named(rows, message, tmp_path):
    from cimc.data.layout import make_cuts

    recordings, supervisions = manifests(rows)
    with pytest.raises(ValueError, match=message):
        make_cuts(recordings, supervisions)


def test_unknown_recording_is_named():
    from lhotse import RecordingSet

    from cimc.data.layout import make_cuts

    _, supervisions = manifests([("u1", "r1", "s")])
    with pytest.raises(ValueError, match=r"refer to unknown recordings: u1"):
        make_cuts(RecordingSet.from_recordings([]), supervisions)


def test_no_linear_id_lookups_in_lhotse_sets(tmp_path, monkeypatch):
    """RecordingSet's `in` and `[id]` scan the whole set; at VoxCeleb2's 1.09 M that is quadratic."""
    from lhotse import RecordingSet

    from cimc.data.layout import write_data_layout

    def refuse(self, item):
        raise AssertionError("linear-time RecordingSet lookup by id")

    recordings, supervisions = manifests([(f"u{i}", f"u{i}", f"s{i % 3}") for i in range(20)])
    monkeypatch.setattr(RecordingSet, "__contains__", refuse)
    monkeypatch.setattr(RecordingSet, "__getitem__", refuse)
    assert len(write_data_layout(tmp_path, "train", recordings, supervisions)) == 20


def test_read_cuts_round_trips_what_lhotse_wrote(tmp_path):
    from lhotse import load_manifest

    from cimc.data.layout import iter_cuts, read_cuts, write_data_layout

    recordings, supervisions = manifests([("a-1", "r1", "a"), ("b-1", "r2", "b"), ("a-2", "r3", "a")])
    write_data_layout(tmp_path, "train", recordings, supervisions)
    path = tmp_path / "manifests" / "train_cuts.jsonl.gz"
    expected = list(load_manifest(path))
    assert read_cuts(path) == expected and list(iter_cuts(path)) == expected
    assert [c.id for c in read_cuts(path)] == ["a-1", "b-1", "a-2"]


def bad_cut_manifests(tmp_path) -> dict:
    """Files that are not readable cut manifests, each with the message read_cuts must give."""
    from cimc.data.layout import write_data_layout

    recordings, supervisions = manifests([(f"u{i}", f"r{i}", "s") for i in range(400)])
    write_data_layout(tmp_path, "train", recordings, supervisions)
    good = tmp_path / "manifests" / "train_cuts.jsonl.gz"
    data = good.read_bytes()
    (tmp_path / "truncated.jsonl.gz").write_bytes(data[:len(data) // 2])
    lines = __import__("gzip").decompress(data).decode().splitlines()
    (tmp_path / "bad_line.jsonl").write_text("\n".join(lines[:3] + ['{"id": "x"}'] + lines[3:]) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "utt2spk").write_text("u0 s\n")
    return {
        tmp_path / "missing.jsonl.gz": (FileNotFoundError, r"missing\.jsonl\.gz does not exist"),
        tmp_path / "utt2spk": (ValueError, r"utt2spk is not a Lhotse manifest"),
        tmp_path / "manifests" / "train_recordings.jsonl.gz": (ValueError, r"holds a RecordingSet, not cuts"),
        tmp_path / "empty.jsonl": (ValueError, r"empty\.jsonl holds no cuts"),
        tmp_path / "truncated.jsonl.gz": (ValueError, r"truncated\.jsonl\.gz: unreadable after its first \d+ cuts"),
        tmp_path / "bad_line.jsonl": (ValueError, r"bad_line\.jsonl: unreadable after its first 3 cuts"),
    }


def test_bad_cut_manifests_are_named(tmp_path):
    from lhotse import CutSet

    from cimc.data.layout import read_cuts

    for path, (error, message) in bad_cut_manifests(tmp_path).items():
        with pytest.raises(error, match=message):
            read_cuts(path)
    # What Lhotse itself says for two of them: nothing names the file, or the wrong type loads silently.
    with pytest.raises(EOFError):
        list(CutSet.from_file(tmp_path / "truncated.jsonl.gz"))
    assert type(CutSet.from_file(tmp_path / "manifests" / "train_recordings.jsonl.gz")).__name__ == "RecordingSet"
