"""egs/mini_diar/run.sh end to end at a tiny size (i-vector embeddings, 1 dev + 2 eval conversations).

The recipe runs once per module; each stage's assertions are a test function below. Tiny configs are
written by the fixture: the shared tiny front end / i-vector configs plus short conversations.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cimc.diar.rttm import group_by_recording, read_rttm
from cimc.diar.scoring import score_diarization
from cimc.diar.segments import read_segments

REPO = Path(__file__).resolve().parents[1]
RUN_SH = REPO / "egs" / "mini_diar" / "run.sh"
TINY_CONF = REPO / "tests" / "recipes" / "tiny_conf"
METHODS = ("ahc", "spectral", "cimc")

CONVERSATIONS = "min_speakers: 2\nmax_speakers: 3\nmin_duration: 20.0\nmax_duration: 30.0\noverlap_share: 0.1\n"


def tiny_diar_conf() -> str:
    """egs/mini_diar/conf/diar.yaml with a short CIMC run."""
    text = (REPO / "egs" / "mini_diar" / "conf" / "diar.yaml").read_text()
    return text.replace("epochs: 100", "epochs: 20")


@dataclass
class RecipeRun:
    data: Path
    exp: Path
    log: str


def run_recipe(root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CIMC_VENV=sys.prefix, OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["bash", str(RUN_SH), "--conf", str(root / "conf"), "--data", str(root / "data"), "--exp", str(root / "exp"),
           "--num-speakers", "4", "--utts-per-speaker", "4", "--num-test-speakers", "4", "--num-dev", "1",
           "--num-eval", "2", "--embedding", "ivector", "--nj", "1", "--ahc-thresholds", "0.6,0.9,1.2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> RecipeRun:
    root = tmp_path_factory.mktemp("mini_diar")
    (root / "conf").mkdir()
    for name in ("mfcc.yaml", "ivector.yaml"):
        shutil.copy(TINY_CONF / name, root / "conf" / name)
    (root / "conf" / "conversations.yaml").write_text(CONVERSATIONS)
    (root / "conf" / "diar.yaml").write_text(tiny_diar_conf())
    result = run_recipe(root)
    assert result.returncode == 0, f"run.sh failed:\n{result.stderr[-5000:]}"
    return RecipeRun(root / "data", root / "exp", result.stderr)


def test_stage0_conversations_with_disjoint_speakers(recipe):
    dev = read_rttm(recipe.data / "dev" / "ref.rttm")
    ev = read_rttm(recipe.data / "eval" / "ref.rttm")
    assert len(group_by_recording(dev)) == 1 and len(group_by_recording(ev)) == 2
    assert not {t.speaker for t in dev} & {t.speaker for t in ev}
    # drawn from other seeds: eval does not repeat dev's turn layout
    assert [(t.start, t.duration) for t in dev][:5] != [(t.start, t.duration) for t in ev if t.recording_id == "conv000"][:5]
    assert len(list((recipe.data / "eval" / "wav").glob("*.wav"))) == 2


def test_stage1_vad_finds_the_speech(recipe):
    reference = group_by_recording(read_rttm(recipe.data / "eval" / "ref.rttm"))
    regions = read_segments(recipe.exp / "speech" / "eval" / "segments")
    assert set(regions) == set(reference)
    # speech activity alone, scored as one speaker per recording: little missed speech or false alarm
    from cimc.diar.rttm import Turn

    one_speaker = {rec: [Turn(rec, s, e - s, "x") for _, s, e in spans] for rec, spans in regions.items()}
    total, _ = score_diarization(reference, one_speaker, collar=0.25, skip_overlap=True)
    assert total.missed < 10 and total.false_alarm < 15


def test_stage2_embeddings_cover_the_subsegments(recipe):
    from lhotse import CutSet

    from cimc.vectors import load_vectors

    cut_ids = set(CutSet.from_file(recipe.exp / "subseg" / "eval_cuts.jsonl.gz").ids)
    ids, vectors = load_vectors(recipe.exp / "embed" / "eval.npy")
    assert set(ids) <= cut_ids and len(ids) >= 0.9 * len(cut_ids) and vectors.shape[0] == len(ids)


def test_stage3_rttm_per_method_and_tuned_threshold(recipe):
    override = (recipe.exp / "diar" / "tune_ahc" / "best_override.txt").read_text().strip()
    assert override.split("=")[1] in {"0.6", "0.9", "1.2"}
    for method in METHODS:
        turns = group_by_recording(read_rttm(recipe.exp / "diar" / method / "rttm"))
        assert set(turns) == {"conv000", "conv001"}
        assert all(1 <= len({t.speaker for t in group}) <= 10 for group in turns.values())


def test_stage4_table_and_timelines(recipe):
    table = (recipe.exp / "diar" / "results" / "results.txt").read_text()
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] in METHODS:
            rows[cells[0], cells[1]] = [float(c) for c in cells[2:]]
    assert set(rows) == {(m, c) for m in METHODS for c in ("with", "without")}
    for (method, condition), (der, missed, fa, confusion, jer, speech) in rows.items():
        assert der == pytest.approx(missed + fa + confusion, abs=0.02)
        # the same speech activity feeds every method: missed speech and false alarm agree
        assert (missed, fa) == tuple(rows["ahc", condition][1:3])
    for method in METHODS:
        assert (recipe.exp / "diar" / "results" / f"timeline_{method}.png").stat().st_size > 1000


def test_rerun_skips_finished_data(recipe):
    result = run_recipe(recipe.data.parent, "--stop-stage", "0")
    assert result.returncode == 0
    assert "synthesize" not in result.stderr and "conversations" not in result.stderr
