"""`cimc import-kaldi-dir` (any corpus into the layout) and `cimc convert-m4a` (with a stand-in ffmpeg)."""
from __future__ import annotations

import logging
import os
import stat
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from cimc.data.kaldi_dir import import_kaldi_dir, read_kaldi_map
from cimc.data.trials import read_trials

SR = 16000


@pytest.fixture
def kaldi_dir(tmp_path):
    """Two 2-s recordings, each cut into two segments, two speakers."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for rec in ("recA", "recB"):
        sf.write(audio / f"{rec}.wav", (rng.standard_normal(2 * SR) * 0.1).astype(np.float32), SR)
    d = tmp_path / "kaldi"
    d.mkdir()
    (d / "wav.scp").write_text(f"recA {audio}/recA.wav\nrecB {audio}/recB.wav\n")
    (d / "segments").write_text("spk1-a recA 0.0 1.0\nspk2-a recA 1.0 -1\nspk1-b recB 0.5 1.5\nspk2-b recB 1.5 2.0\n")
    (d / "utt2spk").write_text("spk1-a spk1\nspk2-a spk2\nspk1-b spk1\nspk2-b spk2\n")
    (d / "spk2gender").write_text("spk1 f\nspk2 m\n")
    return d


def test_import_with_segments_matches_the_audio(kaldi_dir, tmp_path):
    from lhotse import CutSet

    out = tmp_path / "data"
    import_kaldi_dir(kaldi_dir, "train", out)
    cuts = CutSet.from_file(out / "manifests" / "train_cuts.jsonl.gz").to_eager()
    assert sorted(cuts.ids) == ["spk1-a", "spk1-b", "spk2-a", "spk2-b"]
    full, _ = sf.read(kaldi_dir.parent / "audio" / "recB.wav", dtype="float32")
    cut = cuts["spk1-b"]
    assert cut.supervisions[0].speaker == "spk1" and cut.supervisions[0].gender == "f"
    np.testing.assert_allclose(cut.load_audio()[0], full[8000:24000], atol=1e-4)
    assert abs(cuts["spk2-a"].duration - 1.0) < 1e-6  # end -1 = end of the recording
    assert read_kaldi_map(out / "kaldi" / "train" / "utt2spk") == read_kaldi_map(kaldi_dir / "utt2spk")
    assert read_kaldi_map(out / "kaldi" / "train" / "segments")["spk2-b"] == "recB 1.500 2.000"


def test_import_without_segments_and_with_trials(kaldi_dir, tmp_path):
    (kaldi_dir / "segments").unlink()
    (kaldi_dir / "utt2spk").write_text("recA spk1\nrecB spk2\n")
    trials = tmp_path / "trials"
    trials.write_text("recA recB nontarget\n")
    runner = CliRunner()
    from cimc.cli import cli

    result = runner.invoke(cli, ["import-kaldi-dir", "--data-dir", str(kaldi_dir), "--name", "test",
                                 "--output-dir", str(tmp_path / "data"), "--trials", str(trials)])
    assert result.exit_code == 0, result.output
    assert read_trials(tmp_path / "data" / "trials.txt")[0].enroll == "recA"
    trials.write_text("recA recC target\n")
    with pytest.raises(KeyError, match="recC"):
        import_kaldi_dir(kaldi_dir, "test", tmp_path / "data2", trials=trials)


def test_import_errors_name_the_item(kaldi_dir, tmp_path, caplog):
    (kaldi_dir / "utt2spk").write_text("spk1-a spk1\nspk2-a spk2\nspk1-b spk1\n")
    with pytest.raises(ValueError, match=r"1 utterance\(s\) have no line in .*utt2spk: spk2-b"):
        import_kaldi_dir(kaldi_dir, "train", tmp_path / "d")
    (kaldi_dir / "utt2spk").write_text("spk1-a spk1\nspk2-a spk2\nspk1-b spk1\nspk2-b spk2\n")
    (kaldi_dir / "segments").write_text("spk1-a recA 0.0 1.0\nspk2-a recA 1.0 9.0\nspk1-b recB 0 1\nspk2-b recB 1 2\n")
    with pytest.raises(ValueError, match=r"1 segment\(s\) lie outside .*spk2-a"):
        import_kaldi_dir(kaldi_dir, "train", tmp_path / "d")
    (kaldi_dir / "segments").write_text("spk1-a recA 0.0 1.0\nspk2-a recA 1.0 2.0\nspk1-b recB 0 1\nspk2-b recB 1 2\n")
    (kaldi_dir / "wav.scp").write_text((kaldi_dir / "wav.scp").read_text().replace("recB.wav", "gone.wav"))
    with caplog.at_level(logging.WARNING):
        cuts = import_kaldi_dir(kaldi_dir, "train", tmp_path / "d")
    assert sorted(cuts.ids) == ["spk1-a", "spk2-a"]
    assert "1 of 2 audio files do not exist" in caplog.text and "gone.wav" in caplog.text
    assert "2 of 4 utterances have no usable recording" in caplog.text
    (kaldi_dir / "wav.scp").write_text("recA sox x.wav -t wav - |\nrecA other\n")
    with pytest.raises(ValueError, match="wav.scp:2: duplicate key 'recA'"):
        import_kaldi_dir(kaldi_dir, "train", tmp_path / "d")
    (kaldi_dir / "wav.scp").write_text("recA sox x.wav -t wav - |\n")
    with pytest.raises(ValueError, match="pipe entries .*reco2dur"):
        import_kaldi_dir(kaldi_dir, "train", tmp_path / "d")


def test_pipes_with_reco2dur(kaldi_dir, tmp_path):
    audio = kaldi_dir.parent / "audio"
    (kaldi_dir / "wav.scp").write_text(f"recA cat {audio}/recA.wav |\nrecB cat {audio}/recB.wav |\n")
    (kaldi_dir / "reco2dur").write_text("recA 2.0\nrecB 2.0\n")
    cuts = import_kaldi_dir(kaldi_dir, "train", tmp_path / "d", sampling_rate=SR)
    full, _ = sf.read(audio / "recA.wav", dtype="float32")
    np.testing.assert_allclose(cuts["spk2-a"].load_audio()[0], full[SR:], atol=1e-4)
    assert read_kaldi_map(tmp_path / "d" / "kaldi" / "train" / "wav.scp")["recA"] == f"cat {audio}/recA.wav |"


FAKE_FFMPEG = """#!{python}
# Stand-in for ffmpeg: "decodes" an .m4a that is really a wav, writing the output path given last.
import sys, shutil
args = sys.argv[1:]
src = args[args.index("-i") + 1]
if open(src, "rb").read(4) != b"RIFF":
    sys.stderr.write("Invalid data found when processing input\\n"); sys.exit(1)
shutil.copy(src, args[-1])
"""


def test_convert_m4a_with_stand_in_ffmpeg(tmp_path, monkeypatch):
    from cimc.cli import cli

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ffmpeg = bin_dir / "ffmpeg"
    ffmpeg.write_text(FAKE_FFMPEG.format(python=sys.executable))
    ffmpeg.chmod(ffmpeg.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    aac = tmp_path / "dev" / "aac" / "id00012" / "s1"
    aac.mkdir(parents=True)
    for n in (1, 2):
        sf.write(tmp_path / "x.wav", np.zeros(1600, dtype=np.float32), SR)
        (tmp_path / "x.wav").rename(aac / f"0000{n}.m4a")
    (aac / "00003.m4a").write_bytes(b"not audio")
    args = ["convert-m4a", "--input-dir", str(tmp_path / "dev" / "aac"), "--output-dir", str(tmp_path / "dev" / "wav"),
            "--nj", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and "1 file(s) failed" in result.output
    wavs = sorted(p.name for p in (tmp_path / "dev" / "wav" / "id00012" / "s1").iterdir())
    assert wavs == ["00001.wav", "00002.wav"]  # no half-written file for the failure
    (aac / "00003.m4a").unlink()
    from cimc.data.convert import convert_m4a

    assert convert_m4a(tmp_path / "dev" / "aac", tmp_path / "dev" / "wav") == (0, 2, [])
