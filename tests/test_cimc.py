"""The CIMC/IMSAT trainer: it clusters, it is seeded, it resumes, it is registered, it rejects bad input."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score

from cimc.cluster.base import make_clusterer
from cimc.cluster.cimc import CimcConfig, ImsatConfig, build_mlp, make_schedule, train_cimc

torch.set_num_threads(1)


def hungarian_acc(true: np.ndarray, pred: np.ndarray) -> float:
    """Independent reference ACC (scipy's Hungarian on the dense contingency table)."""
    table = np.zeros((pred.max() + 1, true.max() + 1))
    np.add.at(table, (pred, true), 1)
    rows, cols = linear_sum_assignment(-table)
    return table[rows, cols].sum() / len(true)


def blobs(n_per: int = 60, n_clusters: int = 6, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs on the sphere: unit-norm centres, within-cluster std 0.05."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_clusters), n_per)
    return (centres[y] + 0.05 * rng.standard_normal((len(y), dim))).astype(np.float32), y


def tiny(**kw) -> CimcConfig:
    """Small network and run for tests; the defaults otherwise."""
    base = dict(hidden_dim=64, epochs=30, min_steps=150, min_batch_size=64, lr=0.01, device="cpu", progress=False)
    base.update(kw)
    return CimcConfig(**base)


@pytest.mark.parametrize("losses", [("imsat",), ("imsat", "supcon", "mixup")])
def test_trainer_separates_blobs(losses):
    X, y = blobs()
    metrics = lambda t, p: {"acc": hungarian_acc(t, p), "nmi": normalized_mutual_info_score(t, p)}
    # SupCon joins once H(Y|X) < 0.1 log C, after 165-250 steps on these blobs (seeds 0-2): give CIMC 300.
    steps = 300 if "supcon" in losses else 150
    result = train_cimc(X, 6, tiny(losses=losses, min_steps=steps, epochs=steps // 5), reference_labels=y,
                        metrics_fn=metrics)
    assert hungarian_acc(y, result.labels) >= 0.95
    assert result.labels.dtype == np.int64 and result.labels.shape == y.shape
    assert len(result.history) == result.history[-1]["epoch"]
    assert {"acc", "nmi", "vat", "mi", "loss", "used"} <= set(result.history[-1])
    if "supcon" in losses:
        assert "supcon" in result.history[-1] and "no_pos" in result.history[-1]


def test_a_supcon_gate_that_never_opens_is_reported(caplog):
    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    with caplog.at_level("WARNING", logger="cimc.cluster.trainer"):
        result = train_cimc(X, 4, tiny(epochs=3, min_steps=0, supcon_start_entropy=0.0, supcon_warmup=0.0))
    assert "supcon" not in result.history[-1]  # H(Y|X) < 0 never holds
    assert "SupCon never started" in caplog.text


def test_same_seed_same_labels_other_seed_other_init():
    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=3, min_steps=0)
    a = train_cimc(X, 4, cfg).labels
    b = train_cimc(X, 4, cfg).labels
    c = train_cimc(X, 4, dataclasses.replace(cfg, seed=1))
    np.testing.assert_array_equal(a, b)
    assert c.history[-1]["loss"] != train_cimc(X, 4, cfg).history[-1]["loss"]


@pytest.mark.parametrize("precision, in_run", [("tf32", True), ("fp32", False)])
def test_tf32_switches_hold_for_the_run_only(precision, in_run):
    """precision sets torch's process-wide TF32 switches while CIMC trains; whatever runs next in the process
    (k-means, the GMM, ECAPA) gets the caller's back."""
    import torch

    X, y = blobs(n_per=20, n_clusters=4, dim=8)
    seen = []

    def metrics(_truth, _pred):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return {}

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    caller = (not in_run, not in_run)
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = caller
        train_cimc(X, 4, tiny(epochs=2, min_steps=0, precision=precision), reference_labels=y, metrics_fn=metrics)
        assert seen and all(flags == (in_run, in_run) for flags in seen)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == caller
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("marginal_momentum", [0.0, 0.5])  # 0.5: the running p(y) is in the checkpoint too
def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, monkeypatch, caplog, marginal_momentum):
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    # the H(Y|X) warm-up and the lr decay span all 6 epochs
    cfg = tiny(epochs=6, min_steps=0, losses=("imsat", "mixup"), marginal_momentum=marginal_momentum)
    straight = train_cimc(X, 4, cfg)
    ckpt = tmp_path / "ckpt"
    save = Trainer._save_checkpoint

    def save_then_die(self):  # the job is killed right after its epoch-3 checkpoint
        save(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_cimc(X, 4, dataclasses.replace(cfg, checkpoint_dir=str(ckpt), checkpoint_every=3))
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="cimc.cluster.trainer"):
        resumed = train_cimc(X, 4, dataclasses.replace(cfg, checkpoint_dir=str(ckpt), checkpoint_every=3))
    assert "at epoch 3 (step" in caplog.text  # picked up, not trained afresh
    assert (ckpt / "checkpoint.pt").is_file() and (ckpt / "history.json").is_file()
    assert [h["epoch"] for h in resumed.history] == list(range(1, 7))
    np.testing.assert_array_equal(resumed.labels, straight.labels)
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-5)


def test_checkpoint_of_another_problem_is_refused(tmp_path):
    X, _ = blobs(n_per=10, n_clusters=3, dim=4)
    train_cimc(X, 3, tiny(epochs=1, min_steps=0, checkpoint_dir=str(tmp_path), checkpoint_every=1))
    with pytest.raises(ValueError, match="C=3"):
        train_cimc(X, 5, tiny(epochs=2, min_steps=0, checkpoint_dir=str(tmp_path)))


def test_a_checkpoint_folder_in_use_stops_a_second_run_naming_the_first(tmp_path):
    """Two runs given one checkpoint_dir (a YAML shared by two outputs) would resume from and overwrite one
    checkpoint.pt: the second stops before training; once the first lets go, a run goes ahead."""
    from cimc.cluster.cimc import CHECKPOINT_LOCK
    from cimc.utils import OutputBusyError, exclusive_dir

    X, _ = blobs(n_per=10, n_clusters=3, dim=4)
    cfg = tiny(epochs=1, min_steps=0, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    with exclusive_dir(tmp_path, "CIMC training", CHECKPOINT_LOCK):  # another open file: flock refuses it
        with pytest.raises(OutputBusyError, match=r"being written by CIMC training \(pid \d+\); wait for it to "
                                                   r"finish, or give another checkpoint_dir"):
            train_cimc(X, 3, cfg)
        assert not (tmp_path / "checkpoint.pt").exists()
    assert len(train_cimc(X, 3, cfg).labels) == len(X)
    assert (tmp_path / "checkpoint.pt").is_file()


def test_checkpoint_of_other_vectors_of_the_same_size_is_refused(tmp_path):
    """Vectors re-extracted into the same file (same N, C and config) must not resume the old run."""
    X, _ = blobs(n_per=10, n_clusters=3, dim=4)
    cfg = tiny(epochs=2, min_steps=0, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    first = train_cimc(X, 3, cfg)
    with pytest.raises(ValueError, match="trained on other vectors than this run's"):
        train_cimc(X + 0.01, 3, cfg)
    np.testing.assert_array_equal(train_cimc(X, 3, cfg).labels, first.labels)  # the same vectors resume


def test_checkpoint_of_another_config_is_refused_by_field_before_the_knn_radii(tmp_path, monkeypatch, caplog):
    X, _ = blobs(n_per=10, n_clusters=3, dim=4)
    cfg = tiny(epochs=2, min_steps=0, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    train_cimc(X, 3, cfg)

    def no_knn(*args, **kwargs):
        raise AssertionError("k-NN radii computed before the checkpoint was checked")

    with monkeypatch.context() as m:
        m.setattr("cimc.cluster.trainer.kth_neighbor_distance", no_knn)
        with pytest.raises(ValueError, match=r"trained with hidden_dim=64, lr=0\.01; this run asks for "
                                             r"hidden_dim=32, lr=0\.002"):
            train_cimc(X, 3, dataclasses.replace(cfg, lr=0.002, hidden_dim=32))
        with pytest.raises(ValueError, match=r"losses=\['imsat', 'supcon', 'mixup'\]; this run asks for losses=\['imsat'\]"):
            train_cimc(X, 3, dataclasses.replace(cfg, losses=("imsat",)))
    # where it saves, what it shows and how it computes the same math may change
    with caplog.at_level("INFO", logger="cimc.cluster.trainer"):
        train_cimc(X, 3, dataclasses.replace(cfg, progress=True, checkpoint_every=5, knn_chunk=7))
    assert "resumed CIMC" in caplog.text
    # a field added after the checkpoint was written: it ran at the default, so only a change from it is refused
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del state["config"]["marginal_momentum"]
    torch.save(state, tmp_path / "checkpoint.pt")
    train_cimc(X, 3, cfg)
    with pytest.raises(ValueError, match=r"with marginal_momentum=0\.0; this run asks for marginal_momentum=0\.5"):
        train_cimc(X, 3, dataclasses.replace(cfg, marginal_momentum=0.5))


def test_hidden_init_scale_sets_weight_std_but_not_the_batchnorm_forward():
    torch.manual_seed(0)
    model = build_mlp(400, 1200, 50, output_init_scale=1e-4, hidden_init_scale=1.5)
    for layer, fan_in in ((model[0], 400), (model[3], 1200)):
        assert float(layer.weight.detach().std()) == pytest.approx(1.5 / fan_in ** 0.5, rel=0.01)
        assert float(layer.bias.detach().abs().max()) == 0.0
    assert float(model[6].weight.detach().std()) == pytest.approx(1e-4, rel=0.01)
    # PyTorch's own init (scale 0): uniform within +-1/sqrt(fan_in)
    default = build_mlp(400, 64, 5, hidden_init_scale=0.0)
    assert float(default[0].weight.detach().abs().max()) <= 1 / 400 ** 0.5
    # The same draws at another scale give the same train-mode outputs: BatchNorm removes the scale,
    # which only changes how fast the optimiser moves the hidden layers.
    x = torch.randn(32, 400)
    outputs = []
    for scale in (0.5, 3.0):
        torch.manual_seed(1)
        outputs.append(build_mlp(400, 64, 5, output_init_scale=1.0, hidden_init_scale=scale)(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("field, value", [("hidden_init_scale", -0.1), ("output_init_scale", 0.0),
                                          ("optimizer", "lbfgs"), ("entropy_warmup", -0.5),
                                          ("entropy_warmup", 1.5)])
def test_bad_model_settings_are_rejected_by_name_before_the_knn_radii(field, value, monkeypatch):
    def no_knn(*args, **kwargs):
        raise AssertionError("k-NN radii computed before the config was checked")

    monkeypatch.setattr("cimc.cluster.trainer.kth_neighbor_distance", no_knn)
    with pytest.raises(ValueError, match=field):
        train_cimc(np.random.default_rng(0).normal(size=(40, 4)), 2, tiny(**{field: value}))


@pytest.mark.parametrize("line, message", [
    ("hidden_dim: 0", "hidden_dim must be >= 1, got 0"),  # was an IndexError inside torch
    ("batch_size: -1", "batch_size must be >= 1, got -1"),  # trained on one-point batches
    ("supcon_temperature: 0", "supcon_temperature must be > 0, got 0.0"),
    ("lr_decay: 2", r"lr_decay must be in \(0, 1\], got 2.0"),
    ("momentum: 1", r"momentum must be in \[0, 1\), got 1.0"),
    ("supcon_warmup: 1.5", r"supcon_warmup must be a fraction of the run in \[0, 1\], got 1.5"),
    ("mixup_weight: -1", "mixup_weight must be >= 0, got -1.0"),
    ("supcon_min_confidence: 1", r"supcon_min_confidence must be in \[0, 1\), got 1.0"),  # would leave SupCon empty
    ("supcon_min_confidence_until: 1.5", r"supcon_min_confidence_until must be a fraction of the run in \[0, 1\]"),
    ("precision: fp16", "precision 'fp16': use one of auto, fp32, tf32, bf16"),
    ("losses: []", "the loss list is empty"),
    ("losses: [imsat, supcn]", "unknown loss term 'supcn'"),  # was raised only once training began
])
def test_config_file_values_no_run_can_use_are_named_with_the_file(tmp_path, line, message):
    from cimc.config import ConfigError, load_config

    (tmp_path / "cimc.yaml").write_text(line + "\n")
    with pytest.raises(ConfigError, match=r"cimc\.yaml: " + message):
        load_config(CimcConfig, tmp_path / "cimc.yaml")


def test_schedule_keeps_paper_numbers_at_voxceleb_size_and_adds_steps_on_small_sets():
    cfg = CimcConfig()
    big = make_schedule(1_092_009, cfg)
    assert (big.batch_size, big.steps_per_epoch, big.epochs) == (10240, 106, 150)
    assert big.decay_per_step ** big.steps_per_epoch == pytest.approx(0.996)
    small = make_schedule(1797, cfg)
    assert small.batch_size == 256 and small.total_steps >= cfg.min_steps
    assert small.decay_per_step ** small.total_steps == pytest.approx(0.996 ** 150)


def test_registered_methods_and_their_loss_lists():
    assert make_clusterer("cimc").config.losses == ("imsat", "supcon", "mixup")
    assert make_clusterer("imsat").config.losses == ("imsat",)
    assert make_clusterer("imsat-mixup").config.losses == ("imsat", "mixup")
    assert isinstance(make_clusterer("imsat").config, ImsatConfig)
    X, y = blobs(n_per=30, n_clusters=3, dim=8)
    method = make_clusterer("imsat", tiny(losses=("imsat",), epochs=20, min_steps=100))
    labels = method.fit_predict(X, 3)
    assert hungarian_acc(y, labels) >= 0.95 and len(method.history) >= 20
    with pytest.raises(ValueError, match="number of clusters"):
        method.fit_predict(X, None)


def test_bad_inputs_are_named():
    X, _ = blobs(n_per=5, n_clusters=2, dim=4)
    X[3] = 0.0
    with pytest.raises(ValueError, match="row 3 .* all zeros"):
        train_cimc(X, 2, tiny())
    X[3] = np.nan
    with pytest.raises(ValueError, match="row 3 .*NaN"):
        train_cimc(X, 2, tiny())
    with pytest.raises(ValueError, match="unknown loss term 'vatt'"):
        train_cimc(blobs(n_per=5, n_clusters=2, dim=4)[0], 2, tiny(losses=("vatt",)))
    with pytest.raises(ValueError, match="optimizer 'adamw'"):
        train_cimc(blobs(n_per=5, n_clusters=2, dim=4)[0], 2, tiny(optimizer="adamw"))
    with pytest.raises(ValueError, match="n_clusters=11 must be between 2 and the number of points 10"):
        train_cimc(blobs(n_per=5, n_clusters=2, dim=4)[0], 11, tiny())


def test_supcon_waits_for_warmup_and_settled_predictions():
    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=120, min_steps=0, losses=("imsat", "supcon"))  # one step an epoch
    never = train_cimc(X, 4, dataclasses.replace(cfg, supcon_start_entropy=0.0)).history  # H(Y|X) < 0: never
    assert not any("supcon" in h for h in never)
    gated = train_cimc(X, 4, cfg).history
    began = [h["epoch"] for h in gated if "supcon" in h]
    assert began and began[0] > 36 and gated[began[0] - 2]["H(Y|X)"] < 0.1 * np.log(4)  # after 30% and settled
    alone = train_cimc(X, 4, dataclasses.replace(cfg, losses=("supcon",))).history  # no H(Y|X): warm-up decides
    assert [("supcon" in h) for h in alone] == [False] * 36 + [True] * 84


def test_a_run_without_supcon_logs_no_supcon_start(caplog):
    """The gate is SupCon's: IMSAT alone, whose H(Y|X) falls below the threshold, logged "SupCon starts at step ..."."""
    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=120, min_steps=0)
    with caplog.at_level(logging.INFO, logger="cimc.cluster.trainer"):
        imsat = train_cimc(X, 4, dataclasses.replace(cfg, losses=("imsat",))).history
        assert not any("SupCon" in r.getMessage() for r in caplog.records)
        assert min(h["H(Y|X)"] for h in imsat) < 0.1 * np.log(4)  # the gate's condition was met
        train_cimc(X, 4, dataclasses.replace(cfg, losses=("imsat", "supcon")))
    assert sum("SupCon starts" in r.getMessage() for r in caplog.records) == 1


def test_train_step_sums_the_weighted_terms_and_decays_the_lr_to_the_papers_total():
    """The optimised loss is sum_i w_i * term_i, SupCon's weight 0 until its gate opens and then ramped over a
    tenth of the run, mixup's fading linearly to 0 at step mixup_max_steps (1,200); the lr at step s is
    lr * lr_decay ** (epochs * s / total steps), so the run ends at lr * lr_decay ** epochs (the paper's 150 epochs
    of 0.996) however many steps it takes."""
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=50, min_steps=200, losses=("imsat", "supcon", "mixup"), supcon_weight=0.5, mixup_weight=0.3,
               lam=1.0, lr_decay=0.9, lr_warmup=0.0)  # the ramp: test_lr_warmup_ramps_the_lr_in_linearly_...
    trainer = Trainer(X, 4, cfg)
    constants = {"vat": 2.0, "mi": 7.0, "supcon": 3.0, "mixup": 5.0}  # imsat = vat + mi

    def fake(name):  # a term with a gradient (so a step runs) and a known value
        return lambda ctx: (ctx.logits.float().sum() * 0.0 + constants[name], {})

    trainer.terms = [(name, fake(name), weight) for name, _, weight in trainer.terms]
    assert [(n, w) for n, _, w in trainer.terms] == [("vat", 1.0), ("mi", 1.0), ("supcon", 0.5), ("mixup", 0.3)]
    total = trainer.schedule.total_steps
    assert total >= 200  # min_steps added epochs
    batch = torch.arange(trainer.schedule.batch_size)

    def mixup_at(step: int) -> float:
        return 0.3 * 5.0 * max(0.0, 1.0 - step / cfg.mixup_max_steps)

    trainer.step = 7  # SupCon's gate still closed
    assert float(trainer.train_step(batch)["loss"]) == pytest.approx(9.0 + mixup_at(7))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.9 ** (50 * 7 / total))
    trainer.supcon_began, trainer.step = 10, 10 + total // 20 - 1  # half way up SupCon's ramp (a tenth of the run)
    assert float(trainer.train_step(batch)["loss"]) == pytest.approx(9.0 + 0.5 * 3.0 * (total // 20) / (total // 10)
                                                                     + mixup_at(10 + total // 20 - 1))
    trainer.step = total  # the end of the run: the paper's total decay
    assert float(trainer.train_step(batch)["loss"]) == pytest.approx(9.0 + 0.5 * 3.0 + mixup_at(total))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.9 ** 50)


def test_lr_warmup_ramps_the_lr_in_linearly_then_leaves_the_decay():
    """With ``lr_warmup`` F the optimiser's lr at step s is min(1, (s + 1) / (F x total)) x lr x decay ** s."""
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=100, min_steps=0, losses=("imsat",), lr_decay=0.9, lr_warmup=0.2)  # one step an epoch
    trainer = Trainer(X, 4, cfg)
    assert trainer.schedule.total_steps == 100
    batch = torch.arange(trainer.schedule.batch_size)
    for step, ramp in ((0, 1 / 20), (9, 10 / 20), (19, 1.0), (99, 1.0)):
        trainer.step = step
        trainer.train_step(batch)
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(ramp * 0.01 * 0.9 ** step), step
    plain = Trainer(X, 4, dataclasses.replace(cfg, lr_warmup=0.0))  # the paper: the full lr from step 0
    plain.train_step(batch)
    assert plain.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize("longest, ramped", [(0, True), (100, True), (99, False)])
def test_lr_warmup_acts_only_on_runs_up_to_lr_warmup_max_run_steps(longest, ramped):
    """A 100-step run keeps the ramp under a limit of 100 steps (or none, 0) and starts at the full lr under 99."""
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=100, min_steps=0, losses=("imsat",), lr_decay=0.9, lr_warmup=0.2,
               lr_warmup_max_run_steps=longest)
    trainer = Trainer(X, 4, cfg)
    assert trainer.schedule.total_steps == 100
    trainer.train_step(torch.arange(trainer.schedule.batch_size))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 20 if ramped else 0.01)


def test_supcon_min_confidence_applies_until_its_fraction_of_the_run():
    """SupCon keeps only the confident points before ``supcon_min_confidence_until`` of the run, all points after."""
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=100, min_steps=0, losses=("imsat", "supcon"), supcon_min_confidence=0.5,
               supcon_min_confidence_until=0.4)  # one step an epoch: 100 steps, the threshold on steps 0-39
    trainer = Trainer(X, 4, cfg)
    trainer.supcon_began = 0
    assert logged_at_steps(trainer, (0, 39, 40, 99), "kept") == {0: True, 39: True, 40: False, 99: False}
    trainer = Trainer(X, 4, dataclasses.replace(cfg, supcon_min_confidence_until=1.0))  # 1: to the end
    trainer.supcon_began = 0
    assert logged_at_steps(trainer, (99,), "kept") == {99: True}


def logged_at_steps(trainer, steps, key: str) -> dict[int, bool]:
    """Whether one training step at each of ``steps`` (set by hand) logs ``key``."""
    batch = torch.arange(trainer.schedule.batch_size)
    logged = {}
    for step in steps:
        trainer.step = step
        logged[step] = key in trainer.train_step(batch)
    return logged


def test_mixup_fade_takes_the_weight_down_linearly_to_0_at_the_cap():
    """Weight 1 - step / cap up to the cap, 0 from it on; without a cap (0, the paper's) mixup stays at full weight."""
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=20, min_steps=0, losses=("imsat", "mixup"), mixup_max_steps=8, mixup_fade=True, mixup_weight=1.0)
    trainer = Trainer(X, 4, cfg)
    weights = {}
    for step in (0, 2, 6, 8, 19):
        trainer.step = step
        weights[step] = trainer.weight("mixup", cfg.mixup_weight)
    assert weights == {0: 1.0, 2: 0.75, 6: 0.25, 8: 0.0, 19: 0.0}
    assert logged_at_steps(trainer, (0, 6, 8, 19), "mixup") == {0: True, 6: True, 8: False, 19: False}
    uncapped = Trainer(X, 4, dataclasses.replace(cfg, mixup_max_steps=0))
    uncapped.step = 19
    assert uncapped.weight("mixup", cfg.mixup_weight) == 1.0


def test_mixup_max_steps_stops_mixup_from_that_step_and_a_cap_past_the_run_changes_nothing():
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=20, min_steps=0, losses=("imsat", "mixup"), mixup_fade=False)  # one step an epoch
    trainer = Trainer(X, 4, dataclasses.replace(cfg, mixup_max_steps=6))
    assert logged_at_steps(trainer, (0, 5, 6, 19), "mixup") == {0: True, 5: True, 6: False, 19: False}
    stopped = train_cimc(X, 4, dataclasses.replace(cfg, mixup_max_steps=6)).history
    assert [("mixup" in h) for h in stopped] == [True] * 6 + [False] * 14
    # Runs no longer than the cap are the uncapped run, bit for bit (the small sets' defaults-length runs).
    whole, capped = (train_cimc(X, 4, dataclasses.replace(cfg, mixup_max_steps=cap)) for cap in (0, 20))
    assert np.array_equal(whole.labels, capped.labels) and whole.history == capped.history
    with pytest.raises(ValueError, match="mixup_max_steps"):
        tiny(mixup_max_steps=-1)
    # The default cap is at least every run the default schedule makes up to 92,159 points (150 epochs of at most 8
    # batches, or min_steps), so there mixup fades over the whole run; from 92,160 points (9 batches of 10,240) it
    # reaches 0 at step 1,200 and stays off. The lr ramp's limit is the same line: on below it, off from 92,160 points.
    default = CimcConfig()
    sizes = [*range(2, 3000), *range(3000, 92160, 97), 81919, 81920, 92159]
    assert (max(make_schedule(n, default).total_steps for n in sizes) == default.mixup_max_steps
            == default.lr_warmup_max_run_steps == 1200)
    assert make_schedule(92160, default).total_steps == 1350 and make_schedule(1_092_009, default).total_steps == 15900


def test_a_config_saved_before_a_departure_existed_is_compared_at_what_that_run_did():
    """A checkpoint or config.yaml from before mixup_max_steps (mixup on every step) is not today's defaults."""
    from cimc.config import changed_settings, to_dict

    newer = ("mixup_max_steps", "mixup_fade", "supcon_min_confidence", "mixup_weight", "lr_warmup",
             "lr_warmup_max_run_steps")
    older = {k: v for k, v in to_dict(CimcConfig()).items() if k not in newer}
    assert changed_settings(older, CimcConfig()) == {
        "mixup_max_steps": (0, 1200), "mixup_fade": (False, True), "supcon_min_confidence": (0.0, 0.99),
        "mixup_weight": (1.0, 0.5), "lr_warmup": (0.0, 0.05), "lr_warmup_max_run_steps": (0, 1200)}
    assert changed_settings(older, CimcConfig(mixup_max_steps=0, mixup_fade=False, supcon_min_confidence=0.0,
                                              mixup_weight=1.0, lr_warmup=0.0, lr_warmup_max_run_steps=0)) == {}
    assert changed_settings(to_dict(CimcConfig()), CimcConfig()) == {}
    assert set(CimcConfig.BEFORE_FIELD_EXISTED) <= {f.name for f in dataclasses.fields(CimcConfig)}


def test_epoch_means_average_each_term_over_the_steps_that_logged_it():
    """The epoch in which SupCon's threshold ends logs "kept" on its first steps only: its epoch mean is theirs,
    not diluted by the steps after."""
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=40, n_clusters=4, dim=8)
    cfg = tiny(epochs=2, min_steps=0, min_batch_size=16, batch_size=16, losses=("imsat", "supcon"),
               supcon_min_confidence=0.3, supcon_min_confidence_until=0.75)  # 10 steps an epoch, threshold to 15
    trainer = Trainer(X, 4, cfg)
    trainer.supcon_began = 0
    steps, train_step = [], trainer.train_step

    def logged_step(batch):
        logged = train_step(batch)
        steps.append({k: float(v) for k, v in logged.items()})
        return logged

    trainer.train_step = logged_step
    trainer.step = trainer.schedule.steps_per_epoch  # the second epoch: steps 10-19
    assert trainer.schedule.steps_per_epoch == 10 and trainer.confident_only_steps == 15
    means = trainer.run_epoch()
    assert sum("kept" in s for s in steps) == 5 and all("kept" in s for s in steps[:5])
    for key in ("kept", "supcon", "loss", "H(Y|X)"):
        logged = [s[key] for s in steps if key in s]
        assert means[key] == pytest.approx(sum(logged) / len(logged), rel=1e-6), key


def test_entropy_warmup_ramps_the_conditional_entropy_in_and_keeps_predictions_soft():
    from cimc.cluster.trainer import Trainer

    X, _ = blobs(n_per=20, n_clusters=4, dim=8)
    cfg = tiny(epochs=100, min_steps=0, losses=("imsat",), entropy_warmup=0.5)  # one step an epoch
    trainer = Trainer(X, 4, cfg)
    weights = []
    for step in (0, 24, 49, 50, 99):
        trainer.step = step
        weights.append(trainer.cond_weight())
    assert weights == pytest.approx([1 / 50, 25 / 50, 1.0, 1.0, 1.0])
    assert Trainer(X, 4, dataclasses.replace(cfg, entropy_warmup=0.0)).cond_weight() == 1.0
    capped = Trainer(X, 4, dataclasses.replace(cfg, entropy_warmup_max_steps=20))  # 20 of the 50 steps
    capped_weights = []
    for step in (0, 9, 19, 49):
        capped.step = step
        capped_weights.append(capped.cond_weight())
    assert capped_weights == pytest.approx([1 / 20, 10 / 20, 1.0, 1.0])
    loose = Trainer(X, 4, dataclasses.replace(cfg, entropy_warmup_max_steps=500))  # a cap above the ramp: no effect
    loose.step = 24
    assert loose.cond_weight() == pytest.approx(25 / 50)
    # Without the push to confident predictions, H(Y|X) is still well above the paper schedule's at 20 % of the run.
    ramped = train_cimc(X, 4, cfg).history
    paper = train_cimc(X, 4, dataclasses.replace(cfg, entropy_warmup=0.0)).history
    assert ramped[19]["H(Y|X)"] > 2 * paper[19]["H(Y|X)"]


def test_paper_config_has_supcon_from_step_zero():
    X, _ = blobs(n_per=10, n_clusters=3, dim=4)
    cfg = tiny(epochs=2, min_steps=0, supcon_warmup=0.0, supcon_start_entropy=1.0)
    assert all("supcon" in h for h in train_cimc(X, 3, cfg).history)


@pytest.mark.parametrize("recipe", ["voxceleb", "mini_synth"])
def test_recipe_cimc_paper_yaml_is_the_paper_as_written(recipe):
    """conf/cimc_paper.yaml must give back every setting the paper states, and undo every field that
    CimcConfig marks DEPARTURE (a new departure without its paper value here fails)."""
    import inspect
    import re
    from pathlib import Path

    from cimc.config import load_config

    path = Path(__file__).resolve().parents[1] / "egs" / recipe / "conf" / "cimc_paper.yaml"
    paper = load_config(CimcConfig, path)
    stated = dict(losses=("imsat", "supcon", "mixup"), optimizer="sgd", lr=0.01, momentum=0.9, lr_decay=0.996,
                  batch_size=10240, epochs=150, lr_warmup=0.0, entropy_warmup=0.0, supcon_warmup=0.0,
                  supcon_start_entropy=1.0, supcon_min_confidence=0.0, supcon_weight=1.0, mixup_weight=1.0,
                  mixup_alpha=1.0, mixup_max_steps=0, mixup_fade=False, marginal_momentum=0.0, min_steps=0,
                  min_batches_per_epoch=1, eps_scale=0.25, knn_k=10)
    assert {k: getattr(paper, k) for k in stated} == stated
    departures = re.findall(r"^    (\w+): .*# DEPARTURE", inspect.getsource(CimcConfig), flags=re.M)
    assert "entropy_warmup" in departures and "optimizer" in departures
    assert [f for f in departures if getattr(paper, f) == getattr(CimcConfig(), f)] == []


def test_loss_kernels_follow_compile_losses():
    from cimc.cluster import losses as L
    from cimc.cluster.cimc import loss_kernels

    assert loss_kernels(CimcConfig(), "cpu") is L.EAGER  # auto: eager off CUDA
    assert loss_kernels(CimcConfig(compile_losses="never"), "cuda") is L.EAGER
    assert loss_kernels(CimcConfig(), "cuda") is L.compiled_kernels()  # compiled lazily, on first call
    assert loss_kernels(CimcConfig(compile_losses="always"), "cpu") is L.compiled_kernels()
    with pytest.raises(ValueError, match="compile_losses 'yes'"):
        loss_kernels(CimcConfig(compile_losses="yes"), "cpu")


def test_a_compiled_run_compiles_each_kernel_once_and_supcon_once_more_at_its_switch(monkeypatch):
    """torch.compile with fixed shapes recompiles on any new guard (a shape, a Python float's value, None for a
    tensor) and past its cache limit (8) silently runs eagerly: a per-step recompile would cost the GPU run its
    fused kernels. A whole run through SupCon's start and its switch from the confident points to all of them
    must compile the four kernels once each, and supcon_softmax once more (``kept`` becomes None). aot_eager
    traces as torch.compile does, without a C++ or GPU compiler."""
    from torch._dynamo.utils import counters

    from cimc.cluster import losses as L

    traced = L.compiled_kernels(backend="aot_eager")
    monkeypatch.setattr(L, "compiled_kernels", lambda backend="inductor": traced)
    torch._dynamo.reset()
    counters.clear()
    try:
        X, _ = blobs(n_per=40, n_clusters=4, dim=8)
        config = tiny(epochs=2, min_steps=60, supcon_start_entropy=1.0, compile_losses="always")
        history = train_cimc(X, 4, config).history
        assert "kept" in history[len(history) // 2] and "supcon" in history[-1] and "kept" not in history[-1]
        assert counters["stats"]["unique_graphs"] == 5
        assert counters["frames"]["total"] == 5
    finally:
        torch._dynamo.reset()  # the traced graphs stay out of the tests after this one, pass or fail


@pytest.mark.parametrize("recipe", ["voxceleb", "mini_synth"])
def test_recipe_cimc_yaml_is_the_library_default(recipe):
    """egs/*/conf/cimc.yaml documents the defaults; it must not drift from CimcConfig."""
    from pathlib import Path

    from cimc.config import load_config

    path = Path(__file__).resolve().parents[1] / "egs" / recipe / "conf" / "cimc.yaml"
    assert load_config(CimcConfig, path) == CimcConfig()
