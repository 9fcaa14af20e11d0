"""Stage-7 back-end: AS-norm vs a naive loop, missing embeddings named, results files and tables."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cimc.data.trials import Trial, write_trials
from cimc.metrics.verification import format_results_table
from cimc.scoring import adaptive_snorm, cosine_scores
from cimc.sv.config import ScoreConfig
from cimc.sv.score import compare_results, read_results, run_scoring
from cimc.vectors import save_vectors


def naive_snorm(vectors: dict, trial: Trial, cohort: np.ndarray, top_k: int, mean: np.ndarray) -> float:
    def unit(v):
        v = v - mean
        return v / np.linalg.norm(v)

    e, t = unit(vectors[trial.enroll]), unit(vectors[trial.test])
    c = np.array([unit(v) for v in cohort])
    raw = float(e @ t)
    normalised = []
    for side in (e, t):
        top = sorted(c @ side, reverse=True)[:top_k]
        normalised.append((raw - np.mean(top)) / np.std(top))
    return 0.5 * sum(normalised)


@pytest.fixture
def toy_vectors():
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(6)]
    x = rng.normal(size=(6, 5))
    trials = [Trial("u0", "u1", True), Trial("u2", "u3", False), Trial("u0", "u5", False), Trial("u4", "u4", True)]
    cohort = rng.normal(size=(20, 5))
    return ids, x, trials, cohort


def test_adaptive_snorm_matches_naive(toy_vectors):
    ids, x, trials, cohort = toy_vectors
    mean = cohort.mean(axis=0)
    got = adaptive_snorm(ids, x, trials, cohort, top_k=7, mean=mean)
    vectors = dict(zip(ids, x))
    expected = [naive_snorm(vectors, t, cohort, 7, mean) for t in trials]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_missing_embedding_is_named(tmp_path, toy_vectors):
    ids, x, _, cohort = toy_vectors
    save_vectors(tmp_path / "test", ids, x)
    save_vectors(tmp_path / "train", [f"c{i}" for i in range(20)], cohort)
    write_trials(tmp_path / "trials.txt", [Trial("u0", "u1", True), Trial("u0", "ghost_utt", False)])
    for snorm in (False, True):
        with pytest.raises(KeyError, match="ghost_utt"):
            run_scoring(tmp_path / "trials.txt", tmp_path / "test", tmp_path / "out", ScoreConfig(snorm=snorm),
                        tmp_path / "train")


def test_run_scoring_writes_results(tmp_path, toy_vectors):
    ids, x, trials, cohort = toy_vectors
    save_vectors(tmp_path / "test", ids, x)
    save_vectors(tmp_path / "train", [f"c{i}" for i in range(20)], cohort)
    write_trials(tmp_path / "trials.txt", trials)
    results = run_scoring(tmp_path / "trials.txt", tmp_path / "test", tmp_path / "out", ScoreConfig(), tmp_path / "train", "sys")
    lines = (tmp_path / "out" / "scores.txt").read_text().split("\n")
    scores = cosine_scores(ids, x, trials, mean=cohort.mean(axis=0))
    assert [float(line.split()[2]) for line in lines if line] == pytest.approx(scores, abs=1e-6)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["sys"]["eer"] == pytest.approx(results["eer"])
    assert (tmp_path / "out" / "det.png").is_file()
    with pytest.raises(ValueError, match="train-vectors"):
        run_scoring(tmp_path / "trials.txt", tmp_path / "test", tmp_path / "out2", ScoreConfig())


def test_comparison_reads_json_tables_and_plain_lines(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps({"cimc": {"eer": 4.2, "mindcf_0.01": 0.3}}))
    (tmp_path / "ivector.txt").write_text(  # stage 3's Markdown table
        "# i-vector baseline\n\n| system | EER (%) | minDCF (p=0.01) |\n| --- | --- |\n| cosine | 6.000 | 0.5000 |\n"
        "| LDA200 + PLDA | 5.000 | - |\n")
    (tmp_path / "ours.txt").write_text(format_results_table({"x": {"eer": 3.0, "mindcf_0.05": 0.25, "targets": 4}}))
    (tmp_path / "plain.txt").write_text("cosine EER: 7.5 %\n")
    rows = compare_results({"cimc": tmp_path / "a" / "results.json", "ivector": tmp_path / "ivector.txt",
                            "old": tmp_path / "plain.txt", "ours": tmp_path / "ours.txt"})
    assert rows == {"cimc": {"eer": 4.2, "mindcf_0.01": 0.3}, "ivector/cosine": {"eer": 6.0, "mindcf_0.01": 0.5},
                    "ivector/LDA200 + PLDA": {"eer": 5.0}, "old": {"eer": 7.5},
                    "ours": {"eer": 3.0, "mindcf_0.05": 0.25, "targets": 4.0}}
    (tmp_path / "empty.txt").write_text("nothing here\n")
    with pytest.raises(ValueError, match="empty.txt"):
        read_results(tmp_path / "empty.txt")
