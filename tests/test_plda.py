"""LDA and two-covariance PLDA on synthetic data with known between/within covariances."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from scipy.stats import multivariate_normal
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from cimc.ivector.backend import Plda, class_scatter, length_norm, train_lda, train_plda


def random_spd(rng, dim, scale=1.0):
    a = rng.normal(size=(dim, dim))
    return scale * (a @ a.T / dim + 0.3 * np.eye(dim))


def two_cov_data(rng, num_spk, per_spk, between, within, mean):
    dim = len(mean)
    speakers = rng.multivariate_normal(mean, between, size=num_spk)
    labels = np.repeat(np.arange(num_spk), per_spk)
    x = speakers[labels] + rng.multivariate_normal(np.zeros(dim), within, size=len(labels))
    return x, labels


def test_class_scatter_sums_to_total_covariance():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(200, 3)), rng.integers(0, 7, size=200)
    mean, within, between = class_scatter(x, labels)
    np.testing.assert_allclose(within + between, np.cov(x.T, bias=True), atol=1e-12)
    np.testing.assert_allclose(mean, x.mean(0))


def test_lda_finds_the_discriminant_subspace_like_sklearn():
    rng = np.random.default_rng(1)
    dim = 6
    # Speaker means vary only in a 2-D subspace; the within-class covariance is a random SPD matrix.
    basis = rng.normal(size=(dim, 2))
    between = basis @ basis.T * 4
    within = random_spd(rng, dim)
    x, labels = two_cov_data(rng, 300, 8, between + 1e-9 * np.eye(dim), within, np.ones(dim))
    lda = train_lda(x, labels, dim=2)
    y = lda(x)
    _, within_y, _ = class_scatter(y, labels)
    np.testing.assert_allclose(within_y, np.eye(2), atol=1e-4)  # within-class covariance whitened
    reference = LinearDiscriminantAnalysis(solver="eigen").fit(x, labels).scalings_[:, :2]
    assert np.max(subspace_angles(lda.transform.T, reference)) < 1e-3
    # The true answer: directions Sw^{-1} B span Sw^{-1} span(basis).
    assert np.max(subspace_angles(lda.transform.T, np.linalg.solve(within, basis))) < 0.1


def test_lda_dim_is_capped_by_classes():
    rng = np.random.default_rng(2)
    x, labels = rng.normal(size=(60, 5)), np.repeat(np.arange(3), 20)
    assert train_lda(x, labels, dim=4).transform.shape == (2, 5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        train_lda(x, np.zeros(60), dim=1)


def test_plda_recovers_known_covariances():
    rng = np.random.default_rng(3)
    dim = 4
    between, within, mean = random_spd(rng, dim, 2.0), random_spd(rng, dim, 0.5), rng.normal(size=dim)
    # Unequal sessions per speaker exercise the grouping by count.
    x1, l1 = two_cov_data(rng, 1500, 3, between, within, mean)
    x2, l2 = two_cov_data(rng, 1500, 9, between, within, mean)
    x, labels = np.vstack([x1, x2]), np.concatenate([l1, l2 + 1500])
    plda = train_plda(x, labels, num_iters=20)
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)  # noqa: E731
    assert rel(plda.between, between) < 0.08
    assert rel(plda.within, within) < 0.03
    np.testing.assert_allclose(plda.mean, mean, atol=0.1)


def test_plda_score_is_the_exact_log_likelihood_ratio():
    rng = np.random.default_rng(4)
    dim = 3
    plda = Plda(rng.normal(size=dim), random_spd(rng, dim, 2.0), random_spd(rng, dim, 0.5))
    enroll, test = rng.normal(size=(5, dim)) * 2, rng.normal(size=(5, dim)) * 2
    total = plda.between + plda.within
    joint = np.block([[total, plda.between], [plda.between, total]])
    same = multivariate_normal(np.concatenate([plda.mean, plda.mean]), joint).logpdf(np.hstack([enroll, test]))
    diff = multivariate_normal(plda.mean, total).logpdf(enroll) + multivariate_normal(plda.mean, total).logpdf(test)
    np.testing.assert_allclose(plda.score(enroll, test), same - diff, rtol=1e-9, atol=1e-9)


def test_plda_separates_speakers_after_lda_and_length_norm():
    rng = np.random.default_rng(5)
    dim = 8
    x, labels = two_cov_data(rng, 200, 6, random_spd(rng, dim, 3.0), random_spd(rng, dim, 0.3), np.zeros(dim))
    lda = train_lda(x, labels, dim=6)
    y = length_norm(lda(x))
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.sqrt(6))
    plda = train_plda(y, labels, num_iters=5)
    a, b, c = y[0:1], y[1:2], y[6:7]  # a and b share a speaker, c is another one
    assert plda.score(a, b)[0] > plda.score(a, c)[0]
