"""Each CIMC loss term against a naive or closed-form computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from sklearn.neighbors import NearestNeighbors

from cimc.cluster import losses as L
from cimc.cluster.cimc import CimcConfig, build_loss_terms, build_mlp
from cimc.cluster.knn import kth_neighbor_distance

torch.set_num_threads(1)


def naive_supcon(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> tuple[torch.Tensor, int]:
    """Khosla et al.'s L_out written with loops over anchors (no chunking, no tricks)."""
    z = F.normalize(features, dim=1)
    n = len(labels)
    total, no_pos = features.new_zeros(()), 0
    for i in range(n):
        others = [a for a in range(n) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            no_pos += 1
            continue
        denom = torch.logsumexp(torch.stack([z[i] @ z[a] / temperature for a in others]), 0)
        total = total - torch.stack([z[i] @ z[p] / temperature - denom for p in positives]).mean()
    return total / n, no_pos


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_supcon_chunked_equals_naive_value_and_gradient(chunk):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(13, 5, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 0, 5, 5, 1])  # labels 2 and 4: anchors without positives
    a = feats.clone().requires_grad_(True)
    b = feats.clone().requires_grad_(True)
    got, no_pos = L.supcon_loss(a, labels, temperature=0.1, chunk_size=chunk, matmul_dtype=torch.float64)
    want, want_no_pos = naive_supcon(b, labels, 0.1)
    got.backward()
    want.backward()
    assert int(no_pos) == want_no_pos == 2
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-10)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)


def test_supcon_hand_worked_two_pairs():
    # Two orthogonal pairs: each anchor sees its partner at cos 1 and two others at cos 0.
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    loss, no_pos = L.supcon_loss(feats, torch.tensor([0, 0, 1, 1]), temperature=0.5)
    expected = -(2.0 - math.log(math.exp(2.0) + 2.0))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert int(no_pos) == 0


def test_supcon_all_singletons_is_zero_not_nan():
    feats = torch.randn(6, 4, requires_grad=True)
    loss, no_pos = L.supcon_loss(feats, torch.arange(6), temperature=0.07)
    loss.backward()
    assert float(loss) == 0.0 and int(no_pos) == 6
    assert torch.isfinite(feats.grad).all() and float(feats.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("features", ["logits", "probs"])
def test_supcon_term_uses_argmax_labels_and_chosen_features(features):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    term = L.SupConLoss(temperature=0.2, chunk_size=4, matmul_dtype=torch.float64, features=features)
    got, _ = term(L.LossContext(None, None, a, None))
    feats = b if features == "logits" else torch.softmax(b, dim=1)
    want, _ = naive_supcon(feats, logits.argmax(1), 0.2)
    got.backward()
    want.backward()
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-10)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_supcon_over_kept_rows_equals_supcon_of_the_subset(chunk):
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(13, 5, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 0, 5, 5, 1])
    kept = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)  # labels 2, 3, 4: no positive left
    a = feats.clone().requires_grad_(True)
    b = feats.clone().requires_grad_(True)
    got, no_pos = L.supcon_loss(a, labels, 0.1, chunk_size=chunk, matmul_dtype=torch.float64, num_classes=6, kept=kept)
    want, want_no_pos = naive_supcon(b[kept], labels[kept], 0.1)
    got.backward()
    (want * 10 / 13).backward()
    assert int(no_pos) == want_no_pos == 3
    assert float(got.detach()) == pytest.approx(float(want.detach()) * 10 / 13, rel=1e-10)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)


def test_supcon_min_confidence_leaves_the_unsure_points_out():
    # Confident rows (top prob >= 0.9) by construction; the naive loss over them alone, as a mean over all 8 rows.
    logits = torch.tensor([[5.0, 0, 0], [4.0, 0, 0.5], [0.3, 0, 0.2], [0, 6.0, 0], [0, 4.5, 0.1], [0.1, 0.2, 0],
                           [0, 0, 5.0], [0.2, 0, 4.0]], dtype=torch.float64)
    confident = torch.softmax(logits, 1).amax(1) >= 0.9
    assert confident.tolist() == [True, True, False, True, True, False, True, True]
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    got, logged = L.SupConLoss(temperature=0.2, matmul_dtype=torch.float64, min_confidence=0.9)(
        L.LossContext(None, None, a, None))
    want, _ = naive_supcon(b[confident], logits.argmax(1)[confident], 0.2)
    got.backward()
    (want * 6 / 8).backward()
    assert float(got.detach()) == pytest.approx(float(want.detach()) * 6 / 8, rel=1e-10)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)
    assert float(a.grad[~confident].abs().sum()) == 0.0 and float(logged["kept"]) == 0.75


def test_supcon_min_confidence_with_no_confident_point_is_zero_not_nan():
    a = torch.zeros(5, 3, requires_grad=True)  # uniform predictions: top prob 1/3
    got, logged = L.SupConLoss(min_confidence=0.5)(L.LossContext(None, None, a, None))
    got.backward()
    assert float(got) == 0.0 and float(logged["kept"]) == 0.0 and float(a.grad.abs().sum()) == 0.0


def test_supcon_min_confidence_lifted_takes_every_point():
    # The steps past supcon_min_confidence_until (ctx.confident_only False): the naive SupCon over all rows.
    logits = torch.tensor([[5.0, 0, 0], [0.3, 0, 0.2], [0, 6.0, 0], [0.1, 0.2, 0], [0, 0, 5.0], [0.2, 0, 4.0]],
                          dtype=torch.float64)
    got, logged = L.SupConLoss(temperature=0.2, matmul_dtype=torch.float64, min_confidence=0.9)(
        L.LossContext(None, None, logits, None, confident_only=False))
    want, _ = naive_supcon(logits, logits.argmax(1), 0.2)
    assert float(got) == pytest.approx(float(want), rel=1e-10) and "kept" not in logged


def test_supcon_term_rejects_unknown_features():
    with pytest.raises(ValueError, match="supcon_features 'hidden'"):
        L.SupConLoss(features="hidden")


def test_entropy_terms_closed_form():
    probs = torch.tensor([[0.5, 0.5, 0.0 + 1e-30], [0.25, 0.25, 0.5]], dtype=torch.float64)
    cond, marginal = L.entropy_terms(probs.log())
    rows = [-(0.5 * math.log(0.5)) * 2, -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5))]
    mean = [0.375, 0.375, 0.25]
    assert float(cond) == pytest.approx(np.mean(rows), abs=1e-12)
    assert float(marginal) == pytest.approx(-sum(m * math.log(m) for m in mean), abs=1e-12)


def test_entropy_terms_finite_for_saturated_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]], requires_grad=True)
    cond, marginal = L.entropy_terms(logits)
    (cond - 3.5 * marginal).backward()
    assert float(cond) == pytest.approx(0.0, abs=1e-6) and float(marginal) == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_entropy_terms_and_kl_take_exact_zeros(momentum):
    """A class no row can predict (logit -inf) has p = 0 and adds 0 to each entropy, value and gradient: the
    closed form on the other two classes (scipy), not 0 * log 0 = NaN."""
    from scipy.stats import entropy

    logits = torch.tensor([[0.3, -1.2, float("-inf")], [2.0, 0.1, float("-inf")]], requires_grad=True)
    ctx = L.LossContext(model=None, x=None, logits=logits, eps=None)
    loss, logged = L.MutualInformationLoss(lam=1.0, mu=1.0, marginal_momentum=momentum)(ctx)
    loss.backward()
    probs = torch.softmax(logits.detach()[:, :2].double(), 1).numpy()
    assert float(logged["H(Y|X)"]) == pytest.approx(entropy(probs, axis=1).mean(), rel=1e-5)
    if momentum == 0:
        assert float(logged["H(Y)"]) == pytest.approx(entropy(probs.mean(0)), rel=1e-5)
    assert torch.isfinite(logits.grad).all() and (logits.grad[:, 2] == 0).all()
    target = logits.detach()
    assert float(L.kl_from_logits(target, target)) == pytest.approx(0.0, abs=1e-6)  # KL(p || p) with p_3 = 0


def test_mutual_information_loss_weights():
    logits = torch.randn(8, 4)
    cond, marginal = L.entropy_terms(logits)
    ctx = L.LossContext(model=None, x=None, logits=logits, eps=None)
    loss, logged = L.MutualInformationLoss(lam=0.5, mu=3.5)(ctx)
    assert float(loss) == pytest.approx(0.5 * (float(cond) - 3.5 * float(marginal)), rel=1e-6)
    assert float(logged["H(Y)"]) == pytest.approx(float(marginal))
    warming = L.LossContext(model=None, x=None, logits=logits, eps=None, cond_weight=0.25)
    loss, logged = L.MutualInformationLoss(lam=0.5, mu=3.5)(warming)
    assert float(loss) == pytest.approx(0.5 * (0.25 * float(cond) - 3.5 * float(marginal)), rel=1e-6)
    assert float(logged["H(Y|X)"]) == pytest.approx(float(cond))  # logged unweighted: SupCon's gate reads it
    ramped = 0.5 * 0.25 * (float(cond) - 3.5 * float(marginal))  # with marginal_warmup H(Y) ramps too
    loss, _ = L.MutualInformationLoss(lam=0.5, mu=3.5, marginal_warmup=True)(warming)
    assert float(loss) == pytest.approx(ramped, rel=1e-6)
    config = CimcConfig(losses=("imsat",), marginal_warmup=True)  # the config's field reaches the term
    terms = {name: term for name, term, _ in build_loss_terms(config)}
    assert float(terms["mi"](warming)[0]) == pytest.approx(ramped, rel=1e-6)


def test_smoothed_marginal_follows_its_average_and_has_h_gradient_at_it():
    """marginal_momentum m: p(y) = m * running + (1 - m) * batch mean (from uniform), and the H(Y) term's
    gradient in the logits is the exact H's evaluated at p (equal to H(batch)'s when p is the batch mean)."""
    torch.manual_seed(0)
    first, second = torch.randn(6, 4), torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    term = L.MutualInformationLoss(lam=1.0, mu=1.0, marginal_momentum=0.75)
    term(L.LossContext(model=None, x=None, logits=first, eps=None, cond_weight=0.0))
    loss, logged = term(L.LossContext(model=None, x=None, logits=second, eps=None, cond_weight=0.0))
    b1, b2 = F.softmax(first.double(), 1).mean(0), F.softmax(second, 1).mean(0).detach()
    want = 0.75 * (0.75 * torch.full((4,), 0.25, dtype=torch.float64) + 0.25 * b1) + 0.25 * b2
    torch.testing.assert_close(term.running_marginal, want)
    assert float(logged["H(Y)"]) == pytest.approx(float(-(want * want.log()).sum()))
    loss.backward()
    # closed form: d(-sum_k b_k log p_k)/d logits with p fixed; H's gradient at p differs only by the
    # constant -1 per class, which the softmax's sum-to-one removes
    ref = second.detach().clone().requires_grad_(True)
    (F.softmax(ref, 1).mean(0) * want.log()).sum().backward()
    torch.testing.assert_close(second.grad, ref.grad)
    same = L.MutualInformationLoss(lam=1.0, mu=1.0, marginal_momentum=0.5)
    same.running_marginal = F.softmax(second.detach(), 1).mean(0)  # p = batch mean: exactly H(Y)'s gradient
    logits = second.detach().clone().requires_grad_(True)
    same(L.LossContext(model=None, x=None, logits=logits, eps=None, cond_weight=0.0))[0].backward()
    exact = second.detach().clone().requires_grad_(True)
    (-L.entropy_terms(exact)[1]).backward()
    torch.testing.assert_close(logits.grad, exact.grad)


def test_kl_from_logits_matches_torch():
    p, q = torch.randn(5, 7), torch.randn(5, 7)
    want = F.kl_div(F.log_softmax(q, 1), F.log_softmax(p, 1), log_target=True, reduction="batchmean")
    assert float(L.kl_from_logits(p, q)) == pytest.approx(float(want), rel=1e-5)


def _model_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    model = build_mlp(6, 16, 4, output_init_scale=1.0)
    x = F.normalize(torch.randn(32, 6), dim=1)
    return model, x


def test_vat_direction_increases_kl_more_than_random():
    model, x = _model_and_batch()
    logits = model(x)
    eps = 0.3
    direction = L.vat_direction(model, x, logits, xi=0.05)
    with L.frozen_batchnorm_stats(model):
        adv = float(L.kl_from_logits(logits.detach(), model(x + eps * direction)))
        rand = [float(L.kl_from_logits(logits.detach(), model(x + eps * L._unit_rows(torch.randn_like(x)))))
                for _ in range(10)]
    assert torch.allclose(direction.norm(dim=1), torch.ones(len(x)))
    assert adv > max(rand)


def test_perturbed_passes_leave_batchnorm_running_stats_alone():
    model, x = _model_and_batch()
    model(x)  # one clean pass updates the running stats
    before = [t.clone() for t in model.state_dict().values()]
    ctx = L.LossContext(model, x, model(x), eps=torch.full((len(x),), 0.1))
    after_clean = [t.clone() for t in model.state_dict().values()]
    L.VatLoss(xi=0.1)(ctx)
    L.MixupLoss()(ctx)
    for a, b in zip(after_clean, model.state_dict().values()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(before, after_clean))  # the clean pass did update


def test_vat_loss_is_zero_at_zero_radius():
    model, x = _model_and_batch()
    logits = model(x)
    eps = torch.zeros(len(x))
    loss, _ = L.VatLoss(xi=0.1)(L.LossContext(model, x, logits, eps))
    assert float(loss) == pytest.approx(0.0, abs=1e-6)  # r = 0: p(x + r) == p(x) (same batch statistics)


def test_vat_loss_matches_a_naive_power_iteration_with_per_sample_radii():
    """R_SAT by hand: a random unit d, one power iteration (the gradient of KL(p(x) || p(x + xi d)) w.r.t. d, made
    unit per row), then KL(p(x) || p(x + eps_i d_i)) with each sample's own radius; batch statistics throughout."""
    model, x = _model_and_batch()
    logits = model(x)
    eps = torch.linspace(0.05, 0.6, len(x))  # distinct radii: one radius for all would not match
    xi = 0.1

    def naive_kl(p_logits, q_logits):
        p = F.softmax(p_logits, dim=1)
        return (p * (F.log_softmax(p_logits, dim=1) - F.log_softmax(q_logits, dim=1))).sum(1).mean()

    torch.manual_seed(11)
    loss, _ = L.VatLoss(xi=xi)(L.LossContext(model, x, logits, eps))
    torch.manual_seed(11)
    d = torch.randn_like(x)
    d = (d / d.norm(dim=1, keepdim=True)).requires_grad_(True)
    with L.frozen_batchnorm_stats(model):
        grad, = torch.autograd.grad(naive_kl(logits.detach(), model(x + xi * d)), d)
        r = (grad / grad.norm(dim=1, keepdim=True)).detach()
        want = naive_kl(logits.detach(), model(x + eps[:, None] * r))
    assert float(want) > 1e-4  # a real perturbation, not the zero-radius case
    assert float(loss) == pytest.approx(float(want), rel=1e-4)
    with L.frozen_batchnorm_stats(model):  # the mean radius instead: a different value
        assert float(naive_kl(logits.detach(), model(x + eps.mean() * r))) != pytest.approx(float(want), rel=1e-3)


def mixup_draws(n: int, seed: int = 5) -> tuple[Tensor, Tensor]:
    """The Beta(1, 1) weights (n, 1) and the partners (n,) that MixupLoss draws after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return torch.distributions.Beta(1.0, 1.0).sample((n, 1)), torch.randperm(n)


def test_mixup_matches_hand_computation():
    model, x = _model_and_batch()
    logits = model(x)
    torch.manual_seed(5)
    loss, _ = L.MixupLoss(alpha=1.0)(L.LossContext(model, x, logits, None))
    mix, partner = mixup_draws(len(x))
    target = F.softmax(mix * logits + (1 - mix) * logits[partner], dim=1)
    with L.frozen_batchnorm_stats(model):
        log_q = F.log_softmax(model(mix * x + (1 - mix) * x[partner]), dim=1)
    want = (target * (target.log() - log_q)).sum(1).mean()
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    assert 0.0 < float(mix.min()) and float(mix.max()) < 1.0


def test_mixup_penalises_the_logits_scale_through_the_mixed_batchs_own_batchnorm_statistics():
    """Linear-BatchNorm-Linear is affine for fixed statistics, so with the clean batch's statistics (written out by
    hand) f(a x + (1-a) y) = a f(x) + (1-a) f(y) and mixup's KL is 0. MixupLoss normalises the mixed batch with its own:
    a mixed batch has ~2/3 of the clean variance (Beta(1, 1): E[a^2 + (1-a)^2] = 2/3), is scaled back up, and its
    logits spread ~sqrt(3/2) x past the target's; the loss is not 0 and falls with the logits' scale squared (the
    brake on early commitment, docs/cimc_tuning.md "Why mixup brakes")."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 4))
    x = F.normalize(torch.randn(4096, 6), dim=1)
    linear, batchnorm, out = model

    def by_hand(inputs: Tensor, stats_of: Tensor) -> Tensor:
        h, h_ref = linear(inputs), linear(stats_of)
        mean, var = h_ref.mean(0), ((h_ref - h_ref.mean(0)) ** 2).mean(0)
        return out((h - mean) / torch.sqrt(var + batchnorm.eps) * batchnorm.weight + batchnorm.bias)

    logits = model(x)
    assert torch.allclose(by_hand(x, x), logits, atol=1e-5)
    torch.manual_seed(5)
    own, _ = L.MixupLoss()(L.LossContext(model, x, logits, None))
    mix, partner = mixup_draws(len(x))
    target = mix * logits + (1 - mix) * logits[partner]
    mixed = mix * x + (1 - mix) * x[partner]
    assert float(L.kl_from_logits(target, by_hand(mixed, x))) == pytest.approx(0.0, abs=1e-6)  # clean statistics
    with L.frozen_batchnorm_stats(model):
        mixed_own = model(mixed)
    assert float(L.kl_from_logits(target, mixed_own)) == pytest.approx(float(own), rel=1e-5)
    spread = float((mixed_own - mixed_own.mean(0)).std() / (target - target.mean(0)).std())
    assert spread == pytest.approx(math.sqrt(3 / 2), rel=0.05)
    assert float(own) > 1e-3

    def at_logit_scale(scale: float) -> float:
        with torch.no_grad():
            out.weight.mul_(scale)
            out.bias.mul_(scale)
        torch.manual_seed(5)
        return float(L.MixupLoss()(L.LossContext(model, x, model(x), None))[0])

    small = at_logit_scale(0.1)
    assert at_logit_scale(0.1) == pytest.approx(small / 100, rel=0.02)  # near uniform: KL ~ scale^2


def test_mixup_target_is_stop_gradient():
    model, x = _model_and_batch()
    logits = model(x)
    loss, _ = L.MixupLoss()(L.LossContext(model, x, logits, None))
    grad, = torch.autograd.grad(loss, logits, allow_unused=True)
    assert grad is None


def test_vicreg_terms_closed_form():
    z = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 5.0]])
    ctx = L.LossContext(None, None, z, None)
    var, _ = L.VicRegVarianceLoss(gamma=2.5)(ctx)
    std = torch.sqrt(torch.tensor([4.0, 3.0]) + 1e-4)  # unbiased variances 4 and 3
    assert float(var) == pytest.approx(float(F.relu(2.5 - std).mean()), rel=1e-6)
    cov, _ = L.VicRegCovarianceLoss()(ctx)
    c = np.cov(z.numpy().T)
    assert float(cov) == pytest.approx(2 * c[0, 1] ** 2 / 2, rel=1e-5)


def test_expand_loss_names():
    assert L.expand_loss_names(["imsat", "supcon", "mixup"]) == ("vat", "mi", "supcon", "mixup")
    with pytest.raises(ValueError, match="unknown loss term 'supcom'"):
        L.expand_loss_names(["imsat", "supcom"])


@pytest.mark.parametrize("k,chunk,block", [(1, 7, 1000), (10, 16, 23), (4, 100, 50)])
def test_knn_radius_matches_sklearn(k, chunk, block):
    X = np.random.default_rng(0).standard_normal((150, 8)).astype(np.float32)
    X[5] = X[6]  # a duplicate: its nearest other point is at distance 0
    want = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)[0][:, k]
    got = kth_neighbor_distance(X, k, chunk_size=chunk, block_size=block)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert got[5] == pytest.approx(want[5], abs=1e-3)


@pytest.mark.parametrize("k,chunk,block", [(1, 7, 1000), (10, 16, 23), (4, 100, 3)])
def test_nearest_neighbors_match_sklearn(k, chunk, block):
    from cimc.cluster.knn import nearest_neighbors

    X = np.random.default_rng(1).standard_normal((150, 8)).astype(np.float32)
    want_dist, want_index = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    got_dist, got_index = nearest_neighbors(X, k, chunk_size=chunk, block_size=block)
    np.testing.assert_array_equal(got_index, want_index[:, 1:])  # sklearn counts the point itself first
    np.testing.assert_allclose(got_dist, want_dist[:, 1:], rtol=1e-4, atol=1e-4)


def test_knn_radius_bad_k():
    with pytest.raises(ValueError, match="k=5"):
        kth_neighbor_distance(np.zeros((5, 2), np.float32), 5)


def test_compiled_kernels_match_eager_values_and_gradients():
    # aot_eager traces the functions as torch.compile does (no C++/GPU compiler needed): same numbers, same grads.
    compiled = L.compiled_kernels(backend="aot_eager")
    gen = torch.Generator().manual_seed(3)
    target = torch.randn(32, 7, generator=gen)
    logits = torch.randn(32, 7, generator=gen)
    for kernels in (L.EAGER, compiled):
        z = logits.clone().requires_grad_(True)
        cond, marginal = kernels.entropy(z)
        (kernels.kl(target, z) + cond - 2 * marginal).backward()
        if kernels is L.EAGER:
            want_value, want_grad = float(cond - 2 * marginal), z.grad
        else:
            assert float(cond - 2 * marginal) == pytest.approx(want_value, rel=1e-6)
            torch.testing.assert_close(z.grad, want_grad)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3] * 4 + [4, 5, 5, 6])
    grads = []
    for kernels in (L.EAGER, compiled):
        z = logits.clone().requires_grad_(True)
        loss, no_pos = L.supcon_loss(z, labels, temperature=0.2, chunk_size=64, kernels=kernels)
        loss.backward()
        grads.append((float(loss), z.grad))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1])
    want, _ = naive_supcon(logits.double(), labels, 0.2)
    assert grads[1][0] == pytest.approx(float(want), rel=1e-5)
