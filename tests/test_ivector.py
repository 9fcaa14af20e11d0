"""i-vector core: deltas, UBM EM, Baum-Welch statistics, extraction and T-matrix EM."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from cimc.ivector import extractor as ext
from cimc.ivector import ubm
from cimc.ivector.frontend import add_deltas, split_for_job

torch.set_num_threads(1)


def naive_deltas(frames: np.ndarray, order: int, window: int) -> np.ndarray:
    """Kaldi's definition spelt out: delta_i[t] = sum_n n * delta_{i-1}[clamp(t+n)] / sum_n n^2.

    Note Kaldi clamps the *input* frames for the combined filter, not each intermediate delta, so
    the reference builds the order-i filter by repeated convolution and clamps once.
    """
    num_frames = len(frames)
    filters = [np.array([1.0])]
    for _ in range(order):
        prev, new = filters[-1], np.zeros(len(filters[-1]) + 2 * window)
        for j in range(-window, window + 1):
            for k in range(len(prev)):
                new[j + k + window] += j * prev[k]
        filters.append(new / sum(j * j for j in range(-window, window + 1)))
    out = np.zeros((num_frames, frames.shape[1] * (order + 1)))
    for i, taps in enumerate(filters):
        half = (len(taps) - 1) // 2
        for t in range(num_frames):
            for j in range(-half, half + 1):
                out[t, i * frames.shape[1] : (i + 1) * frames.shape[1]] += taps[j + half] * frames[min(max(t + j, 0), num_frames - 1)]
    return out


@pytest.mark.parametrize("num_frames", [1, 3, 17])
def test_add_deltas_matches_naive(num_frames):
    frames = np.random.default_rng(num_frames).normal(size=(num_frames, 4)).astype(np.float32)
    np.testing.assert_allclose(add_deltas(frames, 2, 2), naive_deltas(frames, 2, 2), rtol=1e-5, atol=1e-5)
    # On a linear ramp the first delta is the slope and the second is zero (away from the edges).
    ramp = np.arange(20, dtype=np.float32)[:, None] * 0.5
    out = add_deltas(ramp, 2, 2)
    np.testing.assert_allclose(out[4:-4, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[4:-4, 2], 0.0, atol=1e-6)


def test_split_for_job_covers_everything_once():
    items = list(range(11))
    parts = [split_for_job(items, j, 3) for j in (1, 2, 3)]
    assert sum(parts, []) == items and max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="job 4"):
        split_for_job(items, 4, 3)


def toy_mixture(rng, n=3000):
    means = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 4.0]])
    stds = np.array([[1.0, 0.5], [0.7, 1.2], [0.6, 0.6]])
    weights = np.array([0.5, 0.3, 0.2])
    comp = rng.choice(3, size=n, p=weights)
    return means[comp] + stds[comp] * rng.normal(size=(n, 2))


def run_em(frames: torch.Tensor, num_components: int, iters: int) -> tuple[ubm.DiagGmm, list[float]]:
    gmm = ubm.kmeans_init(frames, num_components, num_iters=5, seed=0)
    history = []
    for _ in range(iters):
        stats = ubm.UbmStats.zeros(num_components, frames.shape[1])
        # Two "jobs" merged by addition must equal one pass over all frames.
        ubm.accumulate(gmm, frames[: len(frames) // 2], stats)
        other = ubm.UbmStats.zeros(num_components, frames.shape[1])
        ubm.accumulate(gmm, frames[len(frames) // 2 :], other)
        stats = stats + other
        history.append(stats.log_likelihood / stats.num_frames)
        gmm = ubm.estimate(stats, var_floor=1e-6, weight_floor=1e-8)
    return gmm, history


def test_ubm_em_is_monotone_and_agrees_with_sklearn():
    data = toy_mixture(np.random.default_rng(0))
    frames = torch.as_tensor(data)
    gmm, history = run_em(frames, 3, 30)
    assert all(b >= a - 1e-9 for a, b in zip(history, history[1:])), history
    reference = GaussianMixture(3, covariance_type="diag", tol=1e-8, max_iter=500, random_state=0).fit(data)
    order_ours, order_ref = np.argsort(gmm.means[:, 0].numpy()), np.argsort(reference.means_[:, 0])
    np.testing.assert_allclose(gmm.means.numpy()[order_ours], reference.means_[order_ref], atol=2e-3)
    np.testing.assert_allclose(gmm.weights.numpy()[order_ours], reference.weights_[order_ref], atol=2e-3)
    np.testing.assert_allclose(gmm.variances.numpy()[order_ours], reference.covariances_[order_ref], rtol=1e-2)
    # Our log-likelihood is sklearn's score (mean log-density) for the same parameters.
    stats = ubm.UbmStats.zeros(3, 2)
    ubm.accumulate(gmm, frames, stats)
    assert stats.log_likelihood / len(data) == pytest.approx(reference.score(data), abs=1e-4)


def test_weight_floor_reseeds_dead_gaussian():
    stats = ubm.UbmStats.zeros(2, 1)
    stats.count[:] = torch.tensor([100.0, 0.0])
    stats.first[:, 0] = torch.tensor([100.0, 0.0])
    stats.second[:, 0] = torch.tensor([200.0, 0.0])
    gmm = ubm.estimate(stats, weight_floor=1e-3)
    assert torch.isfinite(gmm.means).all() and torch.isfinite(gmm.variances).all()
    np.testing.assert_allclose(gmm.weights.numpy(), [0.5, 0.5])
    assert gmm.means[0, 0] < 1.0 < gmm.means[1, 0]


def naive_stats(gmm: ubm.DiagGmm, frames: np.ndarray, num_gselect: int, min_post: float):
    """Per-frame loop in numpy: log N per Gaussian, top-k, renormalise, prune, renormalise."""
    w, mu, var = (t.numpy() for t in (gmm.weights, gmm.means, gmm.variances))
    counts, first = np.zeros(len(w)), np.zeros_like(mu)
    for x in frames:
        ll = np.log(w) - 0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var).sum(1)
        top = np.argsort(-ll)[:num_gselect]
        p = np.exp(ll[top] - ll[top].max())
        p /= p.sum()
        p[(p < min_post) & (np.arange(len(p)) > 0)] = 0
        p /= p.sum()
        counts[top] += p
        first[top] += p[:, None] * x
    return counts, first


def random_problem(seed=0, num_components=6, dim=3, ivector_dim=4, num_utts=5):
    rng = np.random.default_rng(seed)
    gmm = ubm.DiagGmm(
        torch.as_tensor(rng.dirichlet(np.ones(num_components))),
        torch.as_tensor(rng.normal(size=(num_components, dim)) * 2),
        torch.as_tensor(rng.uniform(0.5, 2.0, size=(num_components, dim))),
    )
    utts = [rng.normal(size=(n, dim)) * 2 for n in rng.integers(0, 40, size=num_utts)]
    utts[0] = np.zeros((0, dim))  # an utterance without voiced frames
    extractor = ext.IvectorExtractor.initialize(gmm, ivector_dim, prior_offset=10.0, seed=seed)
    return gmm, utts, extractor


def test_baum_welch_stats_match_naive_loop():
    gmm, utts, _ = random_problem()
    counts, first = ext.baum_welch_stats(gmm, utts, num_gselect=3, min_post=0.05, dtype=torch.float64)
    for b, frames in enumerate(utts):
        ref_n, ref_f = naive_stats(gmm, frames, 3, 0.05)
        np.testing.assert_allclose(counts[b].numpy(), ref_n, atol=1e-10)
        np.testing.assert_allclose(first[b].numpy(), ref_f, atol=1e-10)


def naive_ivector(gmm, extractor, counts, first):
    """Posterior mean by the textbook formula in the unwhitened space, one utterance at a time."""
    if isinstance(gmm, ubm.DiagGmm):
        cov = np.stack([np.diag(v) for v in gmm.variances.numpy()])
        m = extractor.projection.numpy() / extractor.whiten.numpy()[:, :, None]  # M_c = Sigma_c^{1/2} T_c
    else:
        cov = gmm.covariances.numpy()
        m = np.linalg.cholesky(cov) @ extractor.projection.numpy()  # T_c = chol(Sigma_c)^{-1} M_c
    r = m.shape[2]
    prior = np.zeros(r)
    prior[0] = extractor.prior_offset
    precision, linear = np.eye(r), prior.copy()
    for c in range(len(cov)):
        sigma_inv = np.linalg.inv(cov[c])
        precision += counts[c] * m[c].T @ sigma_inv @ m[c]
        linear += m[c].T @ sigma_inv @ first[c]
    w = np.linalg.solve(precision, linear)
    w[0] -= extractor.prior_offset
    return w


def test_batched_extraction_matches_unbatched_numpy():
    gmm, utts, extractor = random_problem(seed=1)
    counts, first = ext.baum_welch_stats(gmm, utts, num_gselect=6, min_post=0.0, dtype=torch.float64)
    batched = extractor.extract(counts, first).numpy()
    for b in range(len(utts)):
        np.testing.assert_allclose(batched[b], naive_ivector(gmm, extractor, counts[b].numpy(), first[b].numpy()), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(batched[0], 0.0, atol=1e-12)  # no frames: the prior mean, never NaN
    # float32 on the same problem stays close (what CPU/GPU extraction uses).
    batched32 = extractor.to("cpu", torch.float32).extract(counts.float(), first.float()).numpy()
    np.testing.assert_allclose(batched32, batched, atol=1e-3, rtol=1e-3)


def tv_data(seed=0, num_utts=60):
    """Utterances drawn from a true total-variability model, so EM has something to find."""
    rng = np.random.default_rng(seed)
    gmm, _, _ = random_problem(seed, num_components=8, dim=3)
    shift = rng.normal(size=(8, 3, 2)) * 0.8
    utts = []
    for _ in range(num_utts):
        w = rng.normal(size=2)
        comp = rng.choice(8, size=int(rng.integers(20, 60)), p=gmm.weights.numpy())
        mu = gmm.means.numpy() + shift @ w
        utts.append(mu[comp] + np.sqrt(gmm.variances.numpy()[comp]) * rng.normal(size=(len(comp), 3)))
    counts, first = ext.baum_welch_stats(gmm, utts, num_gselect=8, min_post=0.0, dtype=torch.float64)
    return gmm, counts, first


@pytest.mark.parametrize("min_divergence", [False, True])
def test_tmatrix_em_increases_likelihood_and_auxiliary(min_divergence):
    gmm, counts, first = tv_data()
    extractor = ext.IvectorExtractor.initialize(gmm, 3, prior_offset=100.0, seed=0)
    history = []
    for _ in range(8):
        stats = ext.ExtractorStats.zeros(8, 3, 3)
        ext.accumulate(extractor, counts[:30], first[:30], stats)  # two jobs, merged
        other = ext.ExtractorStats.zeros(8, 3, 3)
        ext.accumulate(extractor, counts[30:], first[30:], other)
        stats = stats + other
        history.append(stats.log_likelihood)
        updated = ext.estimate(extractor, stats, min_divergence=False)
        assert ext.auxiliary(updated.projection, stats) >= ext.auxiliary(extractor.projection, stats) - 1e-9
        extractor = ext.estimate(extractor, stats, min_divergence=min_divergence)
    assert all(b >= a - 1e-7 for a, b in zip(history, history[1:])), history
    assert history[-1] > history[0] + 1.0


def test_min_divergence_keeps_supervectors_and_whitens_prior():
    gmm, counts, first = tv_data(seed=3)
    extractor = ext.IvectorExtractor.initialize(gmm, 3, prior_offset=100.0, seed=0)
    stats = ext.ExtractorStats.zeros(8, 3, 3)
    ext.accumulate(extractor, counts, first, stats)
    plain = ext.estimate(extractor, stats, min_divergence=False)
    md = ext.estimate(extractor, stats, min_divergence=True)
    # T_md = T_plain A^{-1} for the re-parametrisation w' = A w; recover A^{-1} by least squares.
    t_plain, t_md = plain.projection.reshape(-1, 3).numpy(), md.projection.reshape(-1, 3).numpy()
    a_inv = np.linalg.lstsq(t_plain, t_md, rcond=None)[0]
    np.testing.assert_allclose(t_plain @ a_inv, t_md, atol=1e-8)
    a = np.linalg.inv(a_inv)
    mean = stats.w_sum.numpy() / stats.num_utterances
    cov = stats.ww_sum.numpy() / stats.num_utterances - np.outer(mean, mean)
    np.testing.assert_allclose(a @ mean, [md.prior_offset, 0, 0], atol=1e-8)
    np.testing.assert_allclose(a @ cov @ a.T, np.eye(3), atol=1e-8)
    assert plain.prior_offset == 100.0 and md.prior_offset > 0


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=5), gselect=st.integers(1, 6),
       min_post=st.sampled_from([0.0, 0.025, 0.3]), scale=st.sampled_from([1.0, 0.1]), seed=st.integers(0, 1000))
def test_stats_invariants(lengths, gselect, min_post, scale, seed):
    """Each utterance's zeroth-order statistics sum to scale * frames; F / N is a convex combination
    of its frames, so it stays inside their bounding box."""
    gmm, _, _ = random_problem(seed)
    rng = np.random.default_rng(seed)
    utts = [rng.normal(size=(n, 3)) * 3 for n in lengths]
    counts, first = ext.baum_welch_stats(gmm, utts, gselect, min_post, scale, dtype=torch.float64)
    np.testing.assert_allclose(counts.sum(1).numpy(), scale * np.array(lengths), atol=1e-9)
    assert (counts >= 0).all() and ((counts > 0).sum(1) <= torch.tensor(lengths) * gselect).all()
    for b, frames in enumerate(utts):
        used = counts[b] > 1e-12
        if used.any():
            means = (first[b][used] / counts[b][used, None]).numpy()
            assert (means >= frames.min(0) - 1e-9).all() and (means <= frames.max(0) + 1e-9).all()


@settings(max_examples=25, deadline=None)
@given(num_frames=st.integers(1, 12), window=st.integers(1, 3), seed=st.integers(0, 1000))
def test_deltas_are_linear_and_keep_statics(num_frames, window, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, num_frames, 3)).astype(np.float32)
    out = add_deltas(a, 2, window)
    np.testing.assert_array_equal(out[:, :3], a)
    np.testing.assert_allclose(add_deltas(a + 2 * b, 2, window), out + 2 * add_deltas(b, 2, window), atol=1e-4)
    np.testing.assert_allclose(add_deltas(np.ones_like(a), 2, window)[:, 3:], 0.0, atol=1e-6)  # constant: no deltas


# --- full-covariance refinement ------------------------------------------------------------------

from cimc.ivector import full_ubm  # noqa: E402


def correlated_mixture(rng, n=4000):
    means = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, -2.0]])
    covs = np.array([[[1.0, 0.8, 0.2], [0.8, 1.0, 0.1], [0.2, 0.1, 0.5]], [[0.5, -0.3, 0.0], [-0.3, 1.0, 0.4], [0.0, 0.4, 1.0]]])
    comp = rng.choice(2, size=n, p=[0.6, 0.4])
    return np.stack([rng.multivariate_normal(means[c], covs[c]) for c in comp])


def test_full_gmm_log_likelihoods_match_scipy():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4, 4))
    gmm = full_ubm.FullGmm(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), torch.as_tensor(rng.normal(size=(3, 4))),
                           torch.as_tensor(a @ a.transpose(0, 2, 1) + 0.5 * np.eye(4)))
    x = rng.normal(size=(7, 4)) * 2
    ours = gmm.log_likelihoods(torch.as_tensor(x)).numpy()
    ref = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(x) for w, m, c in zip(*(t.numpy() for t in (gmm.weights, gmm.means, gmm.covariances)))], 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    w = gmm.whitening().numpy()
    np.testing.assert_allclose(w @ gmm.covariances.numpy() @ w.transpose(0, 2, 1), np.broadcast_to(np.eye(4), (3, 4, 4)), atol=1e-10)


def test_full_ubm_em_is_monotone_and_agrees_with_sklearn():
    data = correlated_mixture(np.random.default_rng(1))
    frames = torch.as_tensor(data)
    diag, _ = run_em(frames, 2, 5)
    gmm, history = full_ubm.FullGmm.from_diag(diag), []
    for _ in range(40):
        stats = full_ubm.FullUbmStats.zeros(2, 3)
        full_ubm.accumulate(gmm, frames[:1500], stats)
        other = full_ubm.FullUbmStats.zeros(2, 3)
        full_ubm.accumulate(gmm, frames[1500:], other)
        stats = stats + other
        history.append(stats.log_likelihood / len(data))
        gmm = full_ubm.estimate(stats, var_floor=1e-6)
    assert all(b >= a - 1e-9 for a, b in zip(history, history[1:])), history
    reference = GaussianMixture(2, covariance_type="full", tol=1e-10, max_iter=500, random_state=0).fit(data)
    order, ref_order = np.argsort(gmm.means[:, 0].numpy()), np.argsort(reference.means_[:, 0])
    np.testing.assert_allclose(gmm.means.numpy()[order], reference.means_[ref_order], atol=1e-3)
    np.testing.assert_allclose(gmm.weights.numpy()[order], reference.weights_[ref_order], atol=1e-3)
    np.testing.assert_allclose(gmm.covariances.numpy()[order], reference.covariances_[ref_order], atol=2e-3)
    assert history[-1] == pytest.approx(reference.score(data), abs=1e-4)


def test_extraction_with_full_covariance_ubm_matches_numpy():
    gmm, utts, _ = random_problem(seed=2)
    rng = np.random.default_rng(2)
    mix = np.eye(3) + 0.3 * rng.normal(size=(6, 3, 3))
    full = full_ubm.FullGmm(gmm.weights, gmm.means, torch.as_tensor(mix @ mix.transpose(0, 2, 1) + 0.2 * np.eye(3)))
    extractor = ext.IvectorExtractor.initialize(full, 4, prior_offset=10.0, seed=2)
    counts, first = ext.baum_welch_stats(full, utts, num_gselect=6, min_post=0.0, dtype=torch.float64)
    batched = extractor.extract(counts, first).numpy()
    for b in range(len(utts)):
        np.testing.assert_allclose(batched[b], naive_ivector(full, extractor, counts[b].numpy(), first[b].numpy()), atol=1e-5, rtol=1e-5)
    # Column 0 of M_c = chol(Sigma_c) T_c holds mu_c / prior_offset (Kaldi's initialisation).
    m0 = (np.linalg.cholesky(full.covariances.numpy()) @ extractor.projection.numpy())[:, :, 0]
    np.testing.assert_allclose(m0 * 10.0, full.means.numpy(), atol=1e-10)
