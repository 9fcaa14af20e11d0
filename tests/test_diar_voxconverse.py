"""VoxConverse prep (lhotse.recipes.prepare_voxconverse) on a tiny folder with the corpus's layout."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from cimc.cli import cli
from cimc.diar.rttm import group_by_recording, read_rttm
from cimc.diar.scoring import score_diarization

RTTMS = {
    "dev/abjxc": [(0.5, 2.0, "spk00"), (2.7, 1.5, "spk01"), (4.0, 0.8, "spk00")],
    "dev/afjiv": [(0.0, 3.0, "spk00")],
    "test/aepyx": [(1.0, 1.0, "spk03"), (2.2, 2.0, "spk07")],
}


def make_corpus(root):
    """dev/ and test/ of wav + rttm; each turn is a tone over faint noise, so the energy VAD finds it."""
    rng = np.random.default_rng(0)
    for name, turns in RTTMS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        audio = 1e-3 * rng.standard_normal(16000 * 5)
        for start, duration, _ in turns:
            t = np.arange(int(start * 16000), int((start + duration) * 16000))
            audio[t] += 0.3 * np.sin(2 * np.pi * 220 * t / 16000)
        sf.write(root / f"{name}.wav", audio.astype(np.float32), 16000)
        rec = name.split("/")[1]
        (root / f"{name}.rttm").write_text("".join(
            f"SPEAKER {rec} 1 {s:.3f} {d:.3f} <NA> <NA> {spk} <NA> <NA>\n" for s, d, spk in turns))


def test_prepare_voxconverse_layout_and_scoring(tmp_path):
    make_corpus(tmp_path / "corpus")
    result = CliRunner().invoke(cli, ["diar", "prepare-voxconverse", "--corpus-dir", str(tmp_path / "corpus"),
                                      "--output-dir", str(tmp_path / "data")], catch_exceptions=False)
    assert result.exit_code == 0
    assert "dev: 2 recordings" in result.output and "test: 1 recordings" in result.output
    from lhotse import CutSet

    cuts = CutSet.from_file(tmp_path / "data/dev_cuts.jsonl.gz").to_eager()
    assert sorted(cuts.ids) == ["abjxc", "afjiv"]
    assert [(s.start, s.duration, s.speaker) for s in cuts["abjxc"].supervisions] == RTTMS["dev/abjxc"]
    # the written reference is the corpus's RTTM, and scores 0 against the corpus's own file
    for part in ("dev", "test"):
        ours = group_by_recording(read_rttm(tmp_path / f"data/{part}_ref.rttm"))
        theirs = {n.split("/")[1]: read_rttm(tmp_path / f"corpus/{n}.rttm") for n in RTTMS if n.startswith(part)}
        assert {r: sorted(t) for r, t in ours.items()} == {r: sorted(t) for r, t in theirs.items()}
        total, _ = score_diarization(ours, theirs, collar=0.25)
        assert total.der == 0


def test_missing_rttm_is_named(tmp_path):
    make_corpus(tmp_path / "corpus")
    (tmp_path / "corpus/dev/afjiv.rttm").unlink()
    from cimc.diar.voxconverse import prepare_voxconverse

    with pytest.raises(FileNotFoundError, match=r"1 of 2 recordings .*afjiv.rttm"):
        prepare_voxconverse(tmp_path / "corpus", tmp_path / "data")
    with pytest.raises(FileNotFoundError, match="dev folder .*dev/dev does not exist"):
        prepare_voxconverse(tmp_path / "corpus/dev", tmp_path / "data")


REPO = Path(__file__).resolve().parents[1]


def test_voxconverse_recipe_prep_speech_and_scoring(tmp_path):
    # Stages 0-1 on the tiny layout, stage 2 up to the (missing) embedding model, then scoring.
    make_corpus(tmp_path / "corpus")
    env = dict(os.environ, CIMC_VENV=sys.prefix, OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["bash", str(REPO / "egs/voxconverse/run.sh"), "--voxconverse", str(tmp_path / "corpus"),
           "--conf", str(REPO / "egs/voxconverse/conf"), "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp"), "--nj", "1", "--sv-exp", str(tmp_path / "no_model"), "--stop-stage", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 1 and f"no ECAPA model {tmp_path / 'no_model'}/final.pt" in result.stderr
    from cimc.diar.segments import read_segments

    segments = read_segments(tmp_path / "exp/speech/dev/segments")
    assert [(round(s, 1), round(e, 1)) for _, s, e in segments["abjxc"]] == [(0.5, 4.8)]
    assert (tmp_path / "exp/subseg/dev_cuts.jsonl.gz").is_file()
    ref = str(tmp_path / "data/manifests/test_ref.rttm")
    from click.testing import CliRunner

    out = CliRunner().invoke(cli, ["diar", "score", "--ref", ref, "--hyp", f"ref={ref}", "--output-dir",
                                   str(tmp_path / "results")], catch_exceptions=False)
    assert "| ref | with | 0.00 |" in out.stdout and (tmp_path / "results/timeline_ref.png").is_file()
