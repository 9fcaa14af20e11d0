"""Stages 2-3 end to end on a tiny corpus of speaker-specific filtered noise: train-ubm,
train-extractor, extract (in process and as run.pl jobs), score; short utterances; the CLI."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cimc.config import ConfigError, load_config
from cimc.ivector.config import IvectorConfig
from cimc.vectors import load_vectors

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def speaker_audio(rng, poles: np.ndarray, seconds: float, sr: int = 16000) -> np.ndarray:
    """Pulse train + noise through the speaker's all-pole filter, with loud and silent stretches."""
    from scipy.signal import lfilter

    n = int(abs(seconds) * sr)
    excitation = 0.3 * rng.normal(size=n)
    excitation[:: int(sr / rng.uniform(90, 200))] += 3.0
    audio = lfilter([1.0], np.poly(poles).real, excitation)
    if seconds < 0:  # digital silence: the VAD finds no voiced frame
        return np.zeros(int(-seconds * sr), np.float32)
    envelope = np.ones(n)
    envelope[: n // 10] = 0.01  # a quiet lead-in for the VAD to drop
    return (0.1 * audio / np.abs(audio).max() * envelope).astype(np.float32)


def make_corpus(root: Path, num_train_spk=8, num_test_spk=4, utts=6, seed=0) -> dict[str, Path]:
    """Recordings, cuts with speakers, features + VAD (stage 1), and trials over the test set."""
    import soundfile as sf
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    from cimc.data.trials import Trial, write_trials
    from cimc.features.compute import compute_features
    from cimc.features.config import FeaturePipelineConfig

    rng = np.random.default_rng(seed)
    paths = {}
    for part, num_spk in (("train", num_train_spk), ("test", num_test_spk)):
        cuts = []
        for s in range(num_spk):
            radius, angle = rng.uniform(0.85, 0.97, size=3), rng.uniform(0.1, 2.8, size=3)
            poles = np.concatenate([radius * np.exp(1j * angle), radius * np.exp(-1j * angle)])
            for u in range(utts):
                utt = f"{part}{s:02d}-{u:02d}"
                seconds = rng.uniform(1.0, 2.0)
                if part == "test" and s == 0 and u < 2:
                    seconds = [0.03, -1.0][u]  # 3 frames; 1 s of silence
                wav = root / "wav" / f"{utt}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                sf.write(wav, speaker_audio(rng, poles, seconds), 16000)
                rec = Recording.from_file(wav, recording_id=utt)
                sup = SupervisionSegment(utt, utt, 0.0, rec.duration, speaker=f"{part}spk{s:02d}")
                cuts.append(MonoCut(utt, 0.0, rec.duration, 0, recording=rec, supervisions=[sup]))
        manifest = root / f"{part}_raw_cuts.jsonl.gz"
        CutSet.from_cuts(cuts).to_file(manifest)
        compute_features(manifest, FeaturePipelineConfig(), root / "feats", part, 1)
        paths[part] = root / "feats" / f"{part}_cuts.jsonl.gz"
    test_ids = [f"test{s:02d}-{u:02d}" for s in range(num_test_spk) for u in range(utts)]
    trials = [Trial(a, b, a[:6] == b[:6]) for i, a in enumerate(test_ids) for b in test_ids[i + 1 :]]
    write_trials(root / "trials.txt", trials)
    paths["trials"] = root / "trials.txt"
    return paths


# The toy speakers differ by a fixed filter, i.e. a constant cepstral offset that CMN would remove.
TINY = ["frontend.num_ceps=13", "frontend.cmn=false", "frontend.min_frames=5", "ubm.num_components=8", "ubm.num_iters=3", "ubm.subsample=2", "ubm.full_cov_iters=2",
        "extractor.ivector_dim=10", "extractor.num_iters=3", "extractor.batch_size=7", "backend.lda_dim=6"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from cimc.ivector.pipeline import train_extractor, train_ubm

    root = tmp_path_factory.mktemp("ivector")
    paths = make_corpus(root / "data")
    config = load_config(IvectorConfig, None, TINY)
    exp = root / "exp"
    train_ubm(paths["train"], config, exp)
    train_extractor(paths["train"], config, exp)
    return paths, exp, config


def test_training_writes_resumable_models(trained, caplog):
    from cimc.ivector.pipeline import read_objective, train_extractor, train_ubm

    paths, exp, config = trained
    for sub in ("ubm", "extractor"):
        assert (exp / sub / ".done").is_file() and (exp / sub / "final.pt").is_file()
        assert load_config(IvectorConfig, exp / sub / "config.yaml") == config
        assert not list((exp / sub / "acc").glob("*.pt"))  # job statistics cleaned up once merged
    assert [(exp / "ubm" / f"{p}{i}.pt").is_file() for p, i in (("", 3), ("full", 2), ("", 4), ("full", 3))] == [True, True, False, False]
    assert torch.load(exp / "ubm" / "final.pt")["covariances"].shape == (8, 39, 39)  # full refinement was used
    assert torch.load(exp / "extractor" / "final.pt")["whiten"].shape == (8, 39, 39)
    ubm_objective, t_objective = read_objective(exp / "ubm"), read_objective(exp / "extractor")
    diagonal = ubm_objective["diagonal UBM: log-likelihood per frame"]
    assert sorted(diagonal) == list(range(config.ubm.num_iters))
    assert sorted(ubm_objective["full UBM: log-likelihood per frame"]) == list(range(config.ubm.full_cov_iters))
    values = [diagonal[i] for i in sorted(diagonal)]
    assert all(b >= a - 1e-4 for a, b in zip(values, values[1:])), values  # EM never lowers the likelihood
    assert sorted(t_objective) == ["T-matrix: EM auxiliary function", "T-matrix: i-vector log-likelihood per utterance"]
    assert all((exp / sub / "objective.png").is_file() for sub in ("ubm", "extractor"))
    ubm_mtime = (exp / "ubm" / "final.pt").stat().st_mtime
    train_ubm(paths["train"], config, exp)  # done marker: nothing retrained
    assert (exp / "ubm" / "final.pt").stat().st_mtime == ubm_mtime
    # ...also where the math runs, or a section the UBM does not read, changes; another UBM is refused by field
    other = dataclasses.replace(config, ubm=dataclasses.replace(config.ubm, device="cpu"),
                                extractor=dataclasses.replace(config.extractor, ivector_dim=7))
    train_ubm(paths["train"], other, exp)
    assert (exp / "ubm" / "final.pt").stat().st_mtime == ubm_mtime
    with pytest.raises(ConfigError, match=r"ubm was trained with another config .*ubm\.num_components 8 -> 16"):
        train_ubm(paths["train"], dataclasses.replace(config, ubm=dataclasses.replace(config.ubm, num_components=16)), exp)
    with pytest.raises(ConfigError, match=r"extractor was trained with another config .*extractor\.ivector_dim 10 -> 7"):
        train_extractor(paths["train"], other, exp)
    # a UBM retrained since (same settings) leaves the finished T-matrix in place, and says so
    later = (exp / "extractor" / ".done").stat().st_mtime + 5
    os.utime(exp / "ubm" / "final.pt", (later, later))
    with caplog.at_level("WARNING", logger="cimc.utils"):
        train_extractor(paths["train"], config, exp)
    assert f"{exp / 'ubm' / 'final.pt'} is newer than the finished {exp / 'extractor'}" in caplog.text


def test_extract_in_process_matches_runpl_jobs_and_lists_short(trained):
    from cimc.ivector.extract import extract_ivectors

    paths, exp, _ = trained
    ids, vectors = extract_ivectors(paths["test"], exp, "test", num_jobs=1)
    assert np.isfinite(vectors).all() and vectors.shape == (24, 10)
    short = dict(line.split() for line in (exp / "short_test.txt").read_text().splitlines())
    assert short.keys() == {"test00-00", "test00-01"} and int(short["test00-00"]) < 5 and short["test00-01"] == "0"
    np.testing.assert_array_equal(vectors[[ids.index("test00-00"), ids.index("test00-01")]], 0.0)
    # Two jobs through utils/run.pl (subprocesses) give the same vectors in the same order.
    jobs_ids, jobs_vectors = extract_ivectors(paths["test"], exp, "test2", num_jobs=2, cmd=str(REPO / "utils" / "run.pl"))
    assert jobs_ids == ids
    # Equal up to float32 rounding: the products before the float64 solve round differently with another
    # thread count or split into batches (measured: 1e-4 and 2e-4 at values up to 55 on an AMD EPYC).
    np.testing.assert_allclose(jobs_vectors, vectors, rtol=1e-3, atol=1e-3)
    assert (exp / "log" / "extract_test2.2.log").is_file()
    # The same vectors in every output form.
    np.testing.assert_allclose(load_vectors(exp / "ivectors_test.scp")[1], vectors, atol=1e-6)
    from lhotse import CutSet

    attached = {c.id: c.custom["ivector"] for c in CutSet.from_file(exp / "ivectors_test_cuts.jsonl.gz")}
    np.testing.assert_allclose(attached[ids[3]], vectors[3], atol=1e-6)


def test_cli_extract_and_score_separates_speakers(trained, tmp_path):
    from cimc.cli import cli

    paths, exp, _ = trained
    runner = CliRunner()
    result = runner.invoke(cli, ["ivector", "extract", "--cuts", str(paths["train"]), "--dir", str(exp), "--name", "train", "--no-kaldi"])
    assert result.exit_code == 0, result.output
    assert not (exp / "ivectors_train.ark").exists()
    if not (exp / "ivectors_test.npy").exists():
        runner.invoke(cli, ["ivector", "extract", "--cuts", str(paths["test"]), "--dir", str(exp), "--name", "test"])
    config = tmp_path / "ivector.yaml"
    config.write_text("backend:\n  lda_dim: 6\n  plda_iters: 5\n")
    result = runner.invoke(cli, [
        "ivector", "score", "--config", str(config), "--train", str(exp / "ivectors_train.npy"), "--test", str(exp / "ivectors_test.npy"),
        "--trials", str(paths["trials"]), "--train-cuts", str(paths["train"]), "--output-dir", str(tmp_path / "out"),
    ])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "out" / "results.txt").read_text()
    assert "| cosine |" in table and "| LDA6 + PLDA |" in table
    eers = [float(line.split("|")[2]) for line in table.splitlines() if line.startswith("| cosine") or line.startswith("| LDA")]
    assert all(eer < 20.0 for eer in eers), table  # chance is 50 %; the two empty test utterances cost some
    assert (tmp_path / "out" / "det.png").stat().st_size > 0
    assert len((tmp_path / "out" / "scores_plda.txt").read_text().splitlines()) == len(paths["trials"].read_text().splitlines())


def test_bad_config_key_is_named(tmp_path):
    from cimc.cli import cli

    bad = tmp_path / "bad.yaml"
    bad.write_text("ubm:\n  num_component: 8\n")
    result = CliRunner().invoke(cli, ["ivector", "write-default-config", str(tmp_path / "default.yaml")])
    assert result.exit_code == 0 and load_config(IvectorConfig, tmp_path / "default.yaml") == IvectorConfig()
    from cimc.config import ConfigError

    with pytest.raises(ConfigError, match="num_component"):
        load_config(IvectorConfig, bad)


def test_objective_record_replaces_a_rerun_iteration(tmp_path):
    from cimc.ivector.pipeline import read_objective, record_objective

    record_objective(tmp_path, "a b", 0, -5.0)
    record_objective(tmp_path, "a b", 1, -4.0)
    record_objective(tmp_path, "c", 0, 2.5)
    record_objective(tmp_path, "a b", 1, -3.5)  # the interrupted iteration 1, run again
    assert read_objective(tmp_path) == {"a b": {0: -5.0, 1: -3.5}, "c": {0: 2.5}}
    assert (tmp_path / "objective.tsv").read_text().splitlines()[0] == "series\titer\tvalue"
