"""Stage 0 on a tiny folder with VoxCeleb's layout: splits, ids, trials, Kaldi dir, error paths."""
from __future__ import annotations

import logging
import shutil

import pytest
from click.testing import CliRunner

from cimc.data.trials import read_trials
from cimc.data.voxceleb import map_trials, prepare_voxceleb, read_official_trials, utterance_id
from cimc.testing.voxceleb_layout import build_voxceleb_layout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_voxceleb_layout(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    return out, prepare_voxceleb(corpus["voxceleb1"], corpus["voxceleb2"], out)


def read_map(path):
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def test_train_is_voxceleb2_dev_only_and_test_is_the_trial_speakers(prepared, corpus):
    out, result = prepared
    train_speakers = {c.supervisions[0].speaker for c in result["train"]}
    test_speakers = {c.supervisions[0].speaker for c in result["test"]}
    assert train_speakers == {"id00012", "id00013", "id00014", "id00015"}  # not the VoxCeleb2-test id09999
    assert test_speakers == {"id10270", "id10271", "id10272"}  # not the VoxCeleb1-dev id10001
    assert len(result["train"]) == 16 and len(result["test"]) == 12
    for cut in result["train"]:  # the layout contract: cut id == recording id == supervision id
        assert cut.id == cut.recording.id == cut.supervisions[0].id
        assert cut.id.startswith(cut.supervisions[0].speaker + "-")
        assert cut.start == 0 and abs(cut.duration - cut.recording.duration) < 1e-6


def test_layout_files_and_kaldi_dir_agree_with_manifests(prepared):
    from lhotse import CutSet

    out, result = prepared
    for part in ("train", "test"):
        for kind in ("recordings", "supervisions", "cuts"):
            assert (out / "manifests" / f"{part}_{kind}.jsonl.gz").is_file()
        cuts = CutSet.from_file(out / "manifests" / f"{part}_cuts.jsonl.gz")
        utt2spk = read_map(out / "kaldi" / part / "utt2spk")
        assert utt2spk == {c.id: c.supervisions[0].speaker for c in cuts}
        assert list(utt2spk) == sorted(utt2spk)
        spk2utt = {k: v.split() for k, v in read_map(out / "kaldi" / part / "spk2utt").items()}
        assert sorted(u for us in spk2utt.values() for u in us) == sorted(utt2spk)
        wav = read_map(out / "kaldi" / part / "wav.scp")
        assert wav == {c.id: c.recording.sources[0].source for c in cuts}
    assert read_map(out / "kaldi" / "test" / "spk2gender") == {"id10270": "m", "id10271": "f", "id10272": "m"}


def test_trials_are_mapped_from_the_official_list(prepared, corpus):
    out, result = prepared
    official = read_official_trials(corpus["voxceleb1"] / "veri_test2.txt")
    trials = read_trials(out / "trials.txt")
    assert len(trials) == len(official) == 65  # cleaned list = original less one
    for o, t in zip(official, trials):
        assert t.enroll == utterance_id(o.enroll_path) and t.test == utterance_id(o.test_path)
        assert t.target == o.target == (t.enroll.split("-")[0] == t.test.split("-")[0])


def test_original_list_selectable(corpus, tmp_path):
    result = prepare_voxceleb(corpus["voxceleb1"], corpus["voxceleb2"], tmp_path, trials="original")
    assert len(result["trials"]) == 66 == len(read_trials(tmp_path / "trials.txt"))


def test_utterance_id():
    assert utterance_id("id10270/x6uYqmx31kE/00001.wav") == "id10270-x6uYqmx31kE-00001"
    assert utterance_id("/c/wav/id10270/a-b_c/00002.m4a") == "id10270-a-b_c-00002"
    with pytest.raises(ValueError, match="speaker/session/clip"):
        utterance_id("00001.wav")


def test_missing_folders_are_named(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="--voxceleb2 folder .*nowhere"):
        prepare_voxceleb(corpus["voxceleb1"], tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty2").mkdir()
    with pytest.raises(FileNotFoundError, match="dev/aac/idXXXXX"):
        prepare_voxceleb(corpus["voxceleb1"], tmp_path / "empty2", tmp_path / "out",
                         trials_file=corpus["trials"])


def test_bad_audio_is_named_and_unknown_trials_fail_or_are_skipped(corpus, tmp_path, caplog):
    vox1 = tmp_path / "VoxCeleb1"
    shutil.copytree(corpus["voxceleb1"], vox1)
    (vox1 / "wav/id10270/sess0/00001.wav").write_bytes(b"")  # empty file
    (vox1 / "wav/id10271/sess1/00002.wav").write_bytes(b"RIFF....garbage")  # unreadable
    with caplog.at_level(logging.WARNING):
        with pytest.raises(KeyError, match=r"2 utterance\(s\) named in the trials .*id10270-sess0-00001"):
            prepare_voxceleb(vox1, corpus["voxceleb2"], tmp_path / "a")
    assert "2 of 12 audio files cannot be used" in caplog.text
    assert "id10270/sess0/00001.wav" in caplog.text and "id10271/sess1/00002.wav" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = prepare_voxceleb(vox1, corpus["voxceleb2"], tmp_path / "b", skip_unknown_trials=True)
    assert len(result["test"]) == 10
    assert len(result["trials"]) == 65 - 21  # 11 + 11 pairs name one of them, 1 pair names both
    assert "skipping 21 of 65 trials" in caplog.text


def test_map_trials_counts_unknown():
    official = read_official_trials_text(["1 id10270/a/00001.wav id10270/b/00002.wav"])
    with pytest.raises(KeyError, match="1 utterance"):
        map_trials(official, {"id10270-a-00001"}, "somewhere")


def read_official_trials_text(lines):
    from cimc.data.voxceleb import OfficialTrial

    return [OfficialTrial(l.split()[0] == "1", l.split()[1], l.split()[2]) for l in lines]


def test_malformed_official_list_names_line(tmp_path):
    path = tmp_path / "veri.txt"
    path.write_text("1 a/b/1.wav a/b/2.wav\ntarget a/b/1.wav a/b/3.wav\n")
    with pytest.raises(ValueError, match="veri.txt:2"):
        read_official_trials(path)


def test_offline_without_list_asks_for_trials_file(corpus, tmp_path, monkeypatch):
    vox1 = tmp_path / "VoxCeleb1"
    shutil.copytree(corpus["voxceleb1"], vox1)
    (vox1 / "veri_test2.txt").unlink()

    def no_network(url, filename, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("lhotse.utils.resumable_download", no_network)
    with pytest.raises(FileNotFoundError, match="--trials-file"):
        prepare_voxceleb(vox1, corpus["voxceleb2"], tmp_path / "out")
    result = prepare_voxceleb(vox1, corpus["voxceleb2"], tmp_path / "out", trials_file=corpus["trials"])
    assert len(result["trials"]) == 65


def test_cli_prepare_voxceleb(corpus, tmp_path):
    from cimc.cli import cli

    result = CliRunner().invoke(cli, ["prepare-voxceleb", "--voxceleb1", str(corpus["voxceleb1"]), "--voxceleb2",
                                      str(corpus["voxceleb2"]), "--output-dir", str(tmp_path), "--trials", "original"])
    assert result.exit_code == 0, result.output
    assert len(read_trials(tmp_path / "trials.txt")) == 66


def test_undecodable_m4a_points_to_convert_m4a(corpus, tmp_path):
    aac = tmp_path / "VoxCeleb2" / "dev" / "aac" / "id00012" / "s1"
    aac.mkdir(parents=True)
    (aac / "00001.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A not decodable here")
    with pytest.raises(ValueError, match="convert-m4a"):
        prepare_voxceleb(corpus["voxceleb1"], tmp_path / "VoxCeleb2", tmp_path / "out")
