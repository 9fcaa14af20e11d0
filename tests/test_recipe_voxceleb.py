"""egs/voxceleb/run.sh end to end on a tiny folder with VoxCeleb's layout (tiny configs, CPU, seconds).

The recipe runs ONCE per module (fixture ``recipe``) from stage 0 to ``STOP_STAGE``; each stage adds
its assertions as test functions below. A stage joining the test raises ``STOP_STAGE`` and puts its
tiny config in tests/recipes/tiny_conf/.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cimc.testing.voxceleb_layout import build_voxceleb_layout

REPO = Path(__file__).resolve().parents[1]
RUN_SH = REPO / "egs" / "voxceleb" / "run.sh"
TINY_CONF = REPO / "tests" / "recipes" / "tiny_conf"
# Raise when a later stage joins; add its assertions below. Stage 4 trains CIMC with
# tiny_conf/cimc.yaml (the CIMC trainer's config): until that file exists the run stops at stage 3.
# Stages 6-7 (ECAPA on the CIMC pseudo-labels, scoring) follow as soon as stage 4 can run.
STOP_STAGE = 7 if (TINY_CONF / "cimc.yaml").is_file() else 3
NUM_CLUSTERS = 4  # stage 4's C: the tiny layout's 4 training speakers


@dataclass
class RecipeRun:
    data: Path
    exp: Path
    corpus: dict
    log: str


def run_recipe(root: Path, corpus: dict, stage: int = 0, stop_stage: int = STOP_STAGE,
               conf: Path = TINY_CONF) -> subprocess.CompletedProcess:
    """Run egs/voxceleb/run.sh with the tiny configs, data/exp under ``root``, in this test's environment."""
    env = dict(os.environ, CIMC_VENV=sys.prefix, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["bash", str(RUN_SH), "--voxceleb1", str(corpus["voxceleb1"]), "--voxceleb2", str(corpus["voxceleb2"]),
           "--conf", str(conf), "--data", str(root / "data"), "--exp", str(root / "exp"),
           "--stage", str(stage), "--stop-stage", str(stop_stage), "--nj", "1", "--num-clusters", str(NUM_CLUSTERS)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> RecipeRun:
    root = tmp_path_factory.mktemp("voxceleb_recipe")
    corpus = build_voxceleb_layout(root / "corpus")
    result = run_recipe(root, corpus)
    assert result.returncode == 0, f"run.sh failed:\n{result.stderr[-5000:]}"
    return RecipeRun(root / "data", root / "exp", corpus, result.stderr)


def read_map(path: Path) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


# --- Stage 0 -----------------------------------------------------------------------------------


def test_stage0_layout(recipe):
    from lhotse import CutSet

    from cimc.data.trials import read_trials

    data = recipe.data
    assert "Stage 0" in recipe.log and (data / "manifests" / ".done").is_file()
    train = CutSet.from_file(data / "manifests" / "train_cuts.jsonl.gz").to_eager()
    test = CutSet.from_file(data / "manifests" / "test_cuts.jsonl.gz").to_eager()
    assert len(train) == 16 and len(test) == 12
    assert set(read_map(data / "kaldi" / "train" / "utt2spk")) == set(train.ids)
    trials = read_trials(data / "trials.txt")
    assert len(trials) == 65  # the tiny "cleaned" list (run.sh default)
    assert {u for t in trials for u in (t.enroll, t.test)} <= set(test.ids)


# --- Stage 1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["train", "test"])
def test_stage1_features_and_vad(recipe, part):
    from lhotse import CutSet

    from cimc.features import load_frames

    feats_dir = recipe.data / "feats" / "mfcc"
    assert (feats_dir / f"{part}_config.yaml").is_file()
    cuts = CutSet.from_file(feats_dir / f"{part}_cuts.jsonl.gz").to_eager()
    assert len(cuts) == (16 if part == "train" else 12)
    for cut in cuts:
        all_frames = load_frames(cut, apply_vad=False, cmn=False)
        voiced = load_frames(cut)
        assert all_frames.shape[1] == voiced.shape[1] == 40
        # The tiny utterances have 0.2 s of near-silence at each end: VAD drops it, keeps the voice.
        assert 0.5 * len(all_frames) < len(voiced) < len(all_frames) - 20
        assert np.isfinite(voiced).all()


# --- Stages 2-3 --------------------------------------------------------------------------------


def test_stage2_ubm_and_extractor(recipe):
    import torch

    ivector_dir = recipe.exp / "ivector"
    assert "Stage 2" in recipe.log
    for sub, num_iters in (("ubm", 2), ("extractor", 2)):  # tests/recipes/tiny_conf/ivector.yaml
        assert (ivector_dir / sub / ".done").is_file() and (ivector_dir / sub / "config.yaml").is_file()
        assert [(ivector_dir / sub / f"{i}.pt").is_file() for i in range(num_iters + 1)] == [True] * (num_iters + 1)
    ubm = torch.load(ivector_dir / "ubm" / "final.pt")
    assert ubm["means"].shape == (8, 72)  # 24 cepstra + deltas + delta-deltas
    assert ubm["covariances"].shape == (8, 72, 72)  # one full-covariance iteration (tiny_conf)
    assert torch.isclose(ubm["weights"].sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.load(ivector_dir / "extractor" / "final.pt")["projection"].shape == (8, 72, 10)


def test_stage3_ivectors_and_baseline(recipe):
    from cimc.vectors import load_vectors

    ivector_dir = recipe.exp / "ivector"
    for part, count in (("train", 16), ("test", 12)):
        ids, vectors = load_vectors(ivector_dir / f"ivectors_{part}.npy")
        assert len(ids) == count and vectors.shape == (count, 10) and np.isfinite(vectors).all()
        assert set(ids) == set(read_map(recipe.data / "kaldi" / part / "utt2spk"))
        assert (ivector_dir / f"ivectors_{part}.scp").is_file() and (ivector_dir / f"ivectors_{part}_cuts.jsonl.gz").is_file()
    table = (ivector_dir / "results.txt").read_text()
    assert "| cosine |" in table and "+ PLDA |" in table
    for line in table.splitlines()[4:]:
        eer = float(line.split("|")[2])
        assert 0.0 <= eer <= 100.0
    assert len((ivector_dir / "scores_plda.txt").read_text().splitlines()) == 65


# --- Stages 4-5 --------------------------------------------------------------------------------

needs_stage5 = pytest.mark.skipif(STOP_STAGE < 5, reason="tests/recipes/tiny_conf/cimc.yaml is not there yet")


@needs_stage5
def test_stage4_cimc_pseudo_labels(recipe):
    from lhotse import CutSet

    from cimc.cluster.labels import TRUE_SPEAKER_KEY, read_label_file

    out = recipe.exp / "cluster" / "cimc"
    assert "Stage 4" in recipe.log and (out / ".done").is_file() and (out / "config.yaml").is_file()
    labels = read_label_file(out / "labels.txt")
    short = read_map(recipe.exp / "ivector" / "short_train.txt")  # left out by --exclude
    utt2spk = read_map(recipe.data / "kaldi" / "train" / "utt2spk")
    assert set(labels) == set(utt2spk) - set(short)
    assert np.load(out / "labels.npy").max() < NUM_CLUSTERS
    cuts = CutSet.from_file(out / "cuts.jsonl.gz").to_eager()
    assert set(cuts.ids) == set(labels)
    for cut in cuts:
        assert cut.supervisions[0].speaker == labels[cut.id]
        assert cut.supervisions[0].custom[TRUE_SPEAKER_KEY] == utt2spk[cut.id]


@needs_stage5
def test_stage5_clustering_metrics(recipe):
    import json

    from cimc.metrics.clustering import METRIC_NAMES

    metrics = json.loads((recipe.exp / "cluster" / "cimc" / "metrics.json").read_text())
    assert set(METRIC_NAMES) <= set(metrics) and "Stage 5" in recipe.log
    assert 0.0 < metrics["acc"] <= 1.0 and 1 <= metrics["num_clusters"] <= NUM_CLUSTERS
    assert metrics["num_utterances"] == len(read_map(recipe.exp / "cluster" / "cimc" / "labels.txt"))
    table = (recipe.exp / "cluster" / "results.md").read_text()  # one row a method of stage 4
    assert table.splitlines()[2].startswith(f"| cimc (C={NUM_CLUSTERS}) | {metrics['acc']:.3f} |")


# --- Stages 6-7 --------------------------------------------------------------------------------


needs_stage7 = pytest.mark.skipif(STOP_STAGE < 7, reason="stages 6-7 need stage 4 (tests/recipes/tiny_conf/cimc.yaml)")


@needs_stage7
def test_stage6_ecapa_on_pseudo_labels(recipe):
    from lhotse import CutSet

    from cimc.config import load_config
    from cimc.sv.checkpoint import list_checkpoints, load_state
    from cimc.sv.config import SvConfig

    sv = recipe.exp / "sv" / "cimc"
    assert "Stage 6" in recipe.log and (sv / ".done").is_file()
    assert load_config(SvConfig, sv / "config.yaml").model.channels == 16  # tests/recipes/tiny_conf/ecapa.yaml
    # The head's classes are stage 4's pseudo-labels, not the true speakers.
    pseudo = {c.supervisions[0].speaker for c in CutSet.from_file(recipe.exp / "cluster" / "cimc" / "cuts.jsonl.gz")}
    assert set((sv / "labels.txt").read_text().split()[::2]) == pseudo
    assert [epoch for epoch, _ in list_checkpoints(sv)] == [1, 2]
    final = load_state(sv / "final.pt")
    assert final["selected"] in {"average of last 2 epochs", "epoch 1", "epoch 2"} and "heldout_loss" in final


@needs_stage7
def test_stage7_embeddings_scores_and_table(recipe):
    import json

    from cimc.vectors import load_vectors

    sv = recipe.exp / "sv" / "cimc"
    ids, vectors = load_vectors(sv / "embeddings_test.npy")
    assert set(ids) == set(read_map(recipe.data / "kaldi" / "test" / "utt2spk"))
    assert vectors.shape == (12, 192) and np.isfinite(vectors).all()
    assert len(load_vectors(sv / "embeddings_train.npy")[0]) == 16
    assert len((sv / "scores" / "scores.txt").read_text().splitlines()) == 65
    results = json.loads((sv / "scores" / "results.json").read_text())["ECAPA/cimc"]
    assert 0.0 <= results["eer"] <= 100.0 and {"mindcf_0.01", "mindcf_0.05"} <= set(results)
    assert (sv / "scores" / "det.png").read_bytes()[:4] == b"\x89PNG"
    table = (recipe.exp / "sv" / "results.txt").read_text()
    assert "ECAPA, cimc labels" in table and "i-vector/cosine" in table  # side by side with stage 3


def test_rerun_skips_finished_stages(recipe):
    feats = recipe.data / "feats" / "mfcc" / "train_cuts.jsonl.gz"
    written = feats.stat().st_mtime_ns
    result = run_recipe(recipe.data.parent, recipe.corpus, stage=0, stop_stage=1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Stage 0" not in result.stderr and result.stderr.count("features already computed") == 2
    assert feats.stat().st_mtime_ns == written


def test_rerun_of_stage1_with_an_edited_feature_config_is_refused(recipe, tmp_path):
    """Stage 1 does not hand stage 2 the features of another conf/mfcc.yaml: it stops, naming the change."""
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(TINY_CONF, conf)
    mfcc = conf / "mfcc.yaml"
    mfcc.write_text(mfcc.read_text().replace("num_ceps: 40", "num_ceps: 30"))
    feats = recipe.data / "feats" / "mfcc" / "train_cuts.jsonl.gz"
    written = feats.stat().st_mtime_ns
    result = run_recipe(recipe.data.parent, recipe.corpus, stage=1, stop_stage=1, conf=conf)
    assert result.returncode != 0
    assert "holds features computed with another config" in result.stderr and "mfcc.num_ceps 40 -> 30" in result.stderr
    assert feats.stat().st_mtime_ns == written


def test_rerun_reextracts_ivectors_after_a_retrained_extractor_and_warns_stage4(recipe):
    """Stage 3's marker counts only while it is newer than the extractor; stage 4 then names its stale input."""
    ivector_dir = recipe.exp / "ivector"
    marker = ivector_dir / ".ivectors_train.done"
    later = marker.stat().st_mtime + 1  # stages 4-7 of the fixture's run took longer than that
    os.utime(ivector_dir / "extractor" / "final.pt", (later, later))  # as if stage 2 had retrained it
    result = run_recipe(recipe.data.parent, recipe.corpus, stage=3, stop_stage=4)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ivector extract --cuts" in result.stderr and marker.stat().st_mtime > later
    assert "ivectors_train.npy is newer than the finished" in result.stderr  # stage 4 keeps its labels, and says so
    again = run_recipe(recipe.data.parent, recipe.corpus, stage=3, stop_stage=3)
    assert again.returncode == 0 and "ivector extract --cuts" not in again.stderr
