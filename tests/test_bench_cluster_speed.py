"""bench/cluster_speed.py's helpers for the whole run on synthetic i-vectors: the ACC ceiling, the commitment
steps, the synthetic set and its files, the summary table."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from cimc.metrics.clustering import cluster_accuracy, contingency_table
from cimc.utils import array_digest


@pytest.fixture(scope="module")
def cs(bench_module):
    return bench_module("cluster_speed")


@pytest.mark.parametrize("n_clusters", [1, 2, 3])
def test_acc_ceiling_is_the_best_acc_over_every_labelling(cs, n_clusters):
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 3])  # sizes 3, 2, 2, 1
    best = max(cluster_accuracy(contingency_table(truth, np.array(labels)))
               for labels in itertools.product(range(n_clusters), repeat=len(truth)))
    assert cs.acc_ceiling(truth, n_clusters) == pytest.approx(best)
    assert cs.acc_ceiling(truth, n_clusters) == pytest.approx([3, 5, 7][n_clusters - 1] / 8)


def test_acc_ceiling_is_one_with_as_many_clusters_as_classes(cs):
    assert cs.acc_ceiling(np.array([0, 1, 1, 2]), 3) == 1.0
    assert cs.acc_ceiling(np.array([0, 1, 1, 2]), 5) == 1.0


def test_commitment_steps_find_the_first_epoch_below_each_fraction_of_log_c(cs):
    log_c = math.log(10)
    history = [{"step": 100, "H(Y|X)": 0.99 * log_c}, {"step": 200, "H(Y|X)": 0.85 * log_c},
               {"step": 300, "H(Y|X)": 0.95 * log_c}, {"step": 400, "H(Y|X)": 0.05 * log_c}]
    assert cs.commitment_steps(history, 10) == {"moves": 200, "confident": 400}
    assert cs.commitment_steps(history[:3], 10) == {"moves": 200, "confident": None}
    assert cs.commitment_steps([{"step": 100}], 10) == {"moves": None, "confident": None}  # no MI term logged


def test_synthetic_noise_sets_the_within_speaker_share_of_variance(cs):
    # Before the l2 norm the within-speaker share is noise^2 / (1 + noise^2); the norm changes it little in 400-d.
    for noise in (0.8, 2.2):
        X, speakers = cs.synthetic_ivectors(20_000, 400, 50, seed=1, noise=noise)
        assert X.dtype == np.float32 and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
        means = np.stack([X[speakers == s].mean(0) for s in range(50)])
        within = ((X - means[speakers]) ** 2).sum(1).mean() / ((X - X.mean(0)) ** 2).sum(1).mean()
        assert within == pytest.approx(noise ** 2 / (1 + noise ** 2), abs=0.02)


def test_write_synthetic_gives_files_cluster_quality_reads(cs, tmp_path):
    X, speakers = cs.synthetic_ivectors(30, 8, 3, noise=1.0)
    cs.write_synthetic(tmp_path / "syn", X, speakers)
    ids = (tmp_path / "syn" / "ivectors_train.ids").read_text().split()
    utt2spk = dict(line.split() for line in (tmp_path / "syn" / "utt2spk").read_text().splitlines())
    assert np.array_equal(np.load(tmp_path / "syn" / "ivectors_train.npy"), X)
    assert len(ids) == 30 and [utt2spk[u] for u in ids] == [f"spk{s:05d}" for s in speakers]


def test_summary_table_has_a_row_per_run(cs, tmp_path):
    run = {"set": "defaults", "noise": 2.2, "acc": 0.5, "nmi": 0.8, "acc_ceiling": 0.834, "used": 4990,
           "steps": 15900, "moves": 1060, "confident": None, "seconds": 250.0}
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(run) + "\n" + json.dumps({**run, "set": "mixup_weight=0.3", "acc": 0.6}) + "\n")
    lines = cs.summary_table(path).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| defaults | 2.2 | 0.500 (0.834) | 0.800 | 4990 | 1060 / - (of 15900) | 4.2 |")
    assert lines[3].startswith("| mixup_weight=0.3 |")


def test_neighbour_stats_agree_with_scikit_learn(cs):
    from sklearn.neighbors import NearestNeighbors

    X, speakers = cs.synthetic_ivectors(600, 20, 12, seed=3, noise=1.2)
    stats = cs.neighbour_stats(X, speakers, queries=200, k=10, chunk=64)
    picked = np.random.default_rng(0).choice(600, 200, replace=False)  # the same sample (seed 0)
    _, nearest = NearestNeighbors(n_neighbors=11).fit(X).kneighbors(X[picked])
    same = speakers[nearest[:, 1:]] == speakers[picked][:, None]  # column 0 is the point itself
    assert stats["nn1"] == pytest.approx(same[:, 0].mean())
    assert stats["nn10"] == pytest.approx(same.mean())
    means = np.stack([X[speakers == s].mean(0) for s in range(12)])
    within = ((X - means[speakers]) ** 2).sum() / ((X - X.mean(0)) ** 2).sum()
    assert stats["within"] == pytest.approx(within, rel=1e-5)


def test_two_covariance_set_keeps_the_sources_between_and_within_covariances(cs):
    # Source: speakers of unequal spread along different axes; the copy must carry the same covariances.
    rng = np.random.default_rng(0)
    means = rng.standard_normal((40, 6)) * np.array([3, 2, 1, 1, 1, 1]) + 10 * np.eye(6)[0]
    speakers = rng.integers(0, 40, 4000)
    X = means[speakers] + rng.standard_normal((4000, 6)) * np.array([0.2, 0.2, 0.2, 1, 1, 1])
    Z, new_speakers = cs.two_covariance_set(X, speakers, n=40_000, n_speakers=400, seed=1)
    assert Z.shape == (40_000, 6) and Z.dtype == np.float32 and new_speakers.max() < 400

    def covariances(V, labels):
        V = V / np.linalg.norm(V, axis=1, keepdims=True)
        centres = np.stack([V[labels == s].mean(0) for s in np.unique(labels)])
        return np.cov(centres.T), np.cov((V - centres[np.searchsorted(np.unique(labels), labels)]).T)

    (source_between, source_within), (copy_between, copy_within) = covariances(X, speakers), covariances(Z, new_speakers)
    # The copy is Gaussian before its l2 norm, which bends it along the radius (axis 0): compare the spread
    # along the other axes, to 15 %, and the total spread, to 10 %.
    assert np.allclose(np.diag(copy_within)[1:], np.diag(source_within)[1:], rtol=0.15)
    assert np.allclose(np.diag(copy_between)[1:], np.diag(source_between)[1:], rtol=0.15)
    assert np.trace(copy_within) == pytest.approx(np.trace(source_within), rel=0.1)
    assert np.trace(copy_between) == pytest.approx(np.trace(source_between), rel=0.1)


def test_two_covariance_set_within_scale_multiplies_only_the_within_speaker_spread(cs):
    rng = np.random.default_rng(0)
    means = rng.standard_normal((40, 6)) + 10 * np.eye(6)[0]  # far from the origin: the l2 norm barely bends it
    speakers = rng.integers(0, 40, 4000)
    X = means[speakers] + 0.3 * rng.standard_normal((4000, 6))

    def spreads(V, labels):
        centres = np.stack([V[labels == s].mean(0) for s in range(labels.max() + 1)])
        return np.var(centres[:, 1:], axis=0).sum(), np.var((V - centres[labels])[:, 1:], axis=0).sum()

    plain, scaled = (cs.two_covariance_set(X, speakers, n=40_000, n_speakers=400, seed=1, within_scale=s)
                     for s in (1.0, 2.0))
    (between_1, within_1), (between_2, within_2) = spreads(*plain), spreads(*scaled)
    assert within_2 / within_1 == pytest.approx(4.0, rel=0.05)  # std x 2: variance x 4
    assert between_2 / between_1 == pytest.approx(1.0, rel=0.05)  # the same speakers (same seed)


def test_kmeans_run_records_scikit_learns_kmeans_on_the_same_set(cs, tmp_path):
    # The proxy's k-means reference: the summary line must hold the ACC / NMI of KMeans(one start) on that set.
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    args = cs.argparse.Namespace(fit_to=None, num_items=600, speakers=6, dim=5, noise=0.6, clusters=[5],
                                 device="cpu", set=[], summary=tmp_path / "runs.jsonl")
    cs.kmeans_run(args)
    X, truth, _ = cs.make_set(args)
    expected = KMeans(5, n_init=1, random_state=0).fit_predict(X)  # rows already unit length
    (row,) = [json.loads(line) for line in args.summary.read_text().splitlines()]
    assert row["set"] == "k-means (one start)" and row["used"] == 5 and row["steps"] is None
    assert row["acc"] == pytest.approx(cluster_accuracy(contingency_table(truth, expected)))
    assert row["nmi"] == pytest.approx(normalized_mutual_info_score(truth, expected))
    assert row["acc_ceiling"] == pytest.approx(cs.acc_ceiling(truth, 5))
    # The set's digest, to tell runs on the same set from runs on another draw (e.g. other BLAS threads).
    other_set = cs.make_set(cs.argparse.Namespace(**{**vars(args), "noise": 0.7}))[0]
    assert row["data_digest"] == array_digest(X)[:16] != array_digest(other_set)[:16]
    assert "(of -)" in cs.summary_table(args.summary)
    # --set reaches KMeansConfig here (CIMC's config has no use for k-means): seed and restarts as scikit-learn's.
    other = cs.argparse.Namespace(**{**vars(args), "set": ["seed=3", "n_init=2"], "summary": tmp_path / "other.jsonl"})
    cs.kmeans_run(other)
    expected = KMeans(5, n_init=2, random_state=3).fit_predict(X)
    (row,) = [json.loads(line) for line in other.summary.read_text().splitlines()]
    assert row["set"] == "k-means (seed=3 n_init=2)"
    assert row["nmi"] == pytest.approx(normalized_mutual_info_score(truth, expected))
    from cimc.config import ConfigError

    with pytest.raises(ConfigError, match="entropy_warmup"):  # a CIMC field is named, not ignored
        cs.kmeans_run(cs.argparse.Namespace(**{**vars(args), "set": ["entropy_warmup=0"]}))
