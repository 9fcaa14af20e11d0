"""bench/cluster_quality.py's screening machinery: variant files, the data filter, the time budget."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

BENCH = Path(__file__).resolve().parents[1] / "bench" / "cluster_quality.py"


@pytest.fixture(scope="module")
def cq(bench_module):
    return bench_module("cluster_quality")


def small_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n, centers=3, n_features=4, random_state=seed)
    return X.astype(np.float32), y


def test_load_variants_reads_rows_and_rejects_a_row_without_method(cq, tmp_path):
    good = tmp_path / "v.yaml"
    good.write_text("- {name: a, method: kmeans, set: {lr: 0.1}, data: N=30}\n- {method: gmm}\n")
    a, b = cq.load_variants(good)
    assert (a.name, a.method, a.overrides, a.data) == ("a", "kmeans", (("lr", 0.1),), ("N=30",))
    assert (b.name, b.data) == ("gmm", ())
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: x}\n")
    with pytest.raises(ValueError, match="entry 0 needs at least a 'method'"):
        cq.load_variants(bad)


def test_run_all_keeps_the_data_filter_and_stops_at_the_budget(cq, capsys):
    sets = {"one (N=30, C=3)": small_set(30, 0), "two (N=60, C=3)": small_set(60, 1)}
    variants = [cq.Variant("km", "kmeans"), cq.Variant("km60", "kmeans", data=("N=60",))]
    results = cq.run_all(sets, variants, seeds=2, jobs=1, threads=1, time_budget=None)
    assert sorted(results) == [("one (N=30, C=3)", "km"), ("two (N=60, C=3)", "km"), ("two (N=60, C=3)", "km60")]
    assert all(len(runs) == 2 for runs in results.values())
    assert all([r["seed"] for r in runs] == [0, 1] for runs in results.values())  # bar_check pairs on it
    y = sets["two (N=60, C=3)"][1]
    assert results[("two (N=60, C=3)", "km")][0]["acc"] == 1.0  # separated blobs: every point right
    nothing = cq.run_all(sets, variants, seeds=2, jobs=1, threads=1, time_budget=-1.0)
    assert all(runs == [] for runs in nothing.values())
    assert "time budget reached: 6 of 6 fits not run" in capsys.readouterr().out


def test_a_rows_overrides_reach_a_classical_method_and_an_unknown_field_is_named(cq):
    # hard, overlapping blobs so that 1 and 10 k-means++ starts give different labellings
    X, _ = make_blobs(300, centers=12, n_features=2, cluster_std=2.5, random_state=0)
    X = X.astype(np.float32)
    from sklearn.cluster import KMeans

    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)  # kmeans l2-normalises by default
    for n_init in (1, 10):
        labels, _ = cq.run_method("kmeans", X, 12, seed=3, overrides=(("backend", "sklearn"), ("n_init", n_init)))
        expected = KMeans(12, n_init=n_init, random_state=3).fit_predict(Xn)
        assert cq.score(expected, labels)["acc"] == pytest.approx(1.0)
    one, _ = cq.run_method("kmeans", X, 12, seed=3, overrides=(("backend", "sklearn"),))
    ten, _ = cq.run_method("kmeans", X, 12, seed=3, overrides=(("backend", "sklearn"), ("n_init", 10)))
    assert cq.score(one, ten)["acc"] < 1.0  # the override changed the fit
    with pytest.raises(Exception, match="n_starts"):
        cq.run_method("kmeans", X, 12, seed=3, overrides=(("n_starts", 10),))


def test_unbalanced_subset_gives_log_uniform_sizes_and_keeps_each_class_first_items(cq):
    labels = np.repeat([5, 7, 9], 10)[np.random.default_rng(1).permutation(30)]
    keep = cq.unbalanced_subset(labels, 2, 8, seed=3)
    # sizes 2 * 4 ** (k / 2) for k = 0, 1, 2: 2, 4, 8, dealt to the classes in a seeded order
    order = np.random.default_rng(3).permutation(3)
    expected = {c: np.flatnonzero(labels == c)[:n] for c, n in zip([5, 7, 9], np.array([2, 4, 8])[order])}
    assert keep.tolist() == sorted(np.concatenate(list(expected.values())).tolist())
    assert sorted(np.bincount(labels[keep])[[5, 7, 9]].tolist()) == [2, 4, 8]
    assert len(cq.unbalanced_subset(labels, 20, 40)) == 30  # classes shorter than their size keep all
    with pytest.raises(ValueError, match="smallest <= largest"):
        cq.unbalanced_subset(labels, 9, 3)


def test_sets_are_labelled_by_size_and_two_under_one_label_are_refused(cq):
    a, b = small_set(30, 0), small_set(30, 1)
    sets = cq.label_sets([("blobs", "a.npy", a), ("blobs of 30, cut", "a.npy cut", (a[0][:12], a[1][:12]))])
    assert list(sets) == ["blobs (N=30, C=3)", f"blobs of 30, cut (N=12, C={len(np.unique(a[1][:12]))})"]
    assert sets["blobs (N=30, C=3)"][0] is a[0]
    # two sets of one size would share a table row and their --records fits
    with pytest.raises(ValueError, match="b.npy and a.npy would both be labelled 'blobs \\(N=30, C=3\\)'"):
        cq.label_sets([("blobs", "a.npy", a), ("blobs", "b.npy", b)])


def test_clusters_per_class_asks_each_method_for_that_many_clusters(cq):
    X, y = small_set(30, 0)  # 3 classes of 10
    sets = cq.label_sets([("blobs", "a.npy", (X, y))], (1.0, 0.5, 2.0))
    assert list(sets) == ["blobs (N=30, C=3)", "blobs, 2 of 3 classes (N=30, C=2)",
                          "blobs, 6 of 3 classes (N=30, C=6)"]
    assert [cq.clusters_asked(data) for data in sets.values()] == [3, 2, 6]
    results = cq.run_all(sets, [cq.Variant("km", "kmeans")], seeds=1, jobs=1, threads=1, time_budget=None)
    assert [runs[0]["used"] for runs in results.values()] == [3, 2, 6]
    # 2 clusters for 3 blobs of 10: Hungarian ACC matches two classes at most, 20 of 30 points
    assert results[("blobs, 2 of 3 classes (N=30, C=2)", "km")][0]["acc"] <= 20 / 30 + 1e-9
    # a ratio that rounds to one cluster a class is the set itself, under its label: refused, not run twice
    with pytest.raises(ValueError, match="would both be labelled 'blobs \\(N=30, C=3\\)'"):
        cq.label_sets([("blobs", "a.npy", (X, y))], (1.0, 1.1))
    # the draws of a cut still pool when each asks for other than one cluster a class
    cut, draw3 = "cut, 2 of 3 classes (N=9, C=2)", "cut, draw 3, 2 of 3 classes (N=9, C=2)"
    assert cq.draws_pooled([cut, draw3]) == {"cut, 2 of 3 classes, 2 draws pooled (N=9, C=2)": [cut, draw3]}


def test_unbalanced_cuts_name_each_draw_and_deal_the_sizes_by_its_seed(cq):
    X, y = small_set(30, 0)
    cuts = cq.unbalanced_cuts([("a.npy", (X, y))], 2, 8, [0, 4])
    assert [name for name, _, _ in cuts] == ["mini_synth i-vectors of 30, 2-8 per speaker",
                                             "mini_synth i-vectors of 30, 2-8 per speaker, draw 4"]
    for (_, source, (X_cut, y_cut)), draw in zip(cuts, [0, 4]):
        keep = cq.unbalanced_subset(y, 2, 8, seed=draw)
        assert source == f"a.npy cut to 2-8 (draw {draw})"
        np.testing.assert_array_equal(X_cut, X[keep])
        np.testing.assert_array_equal(y_cut, y[keep])
    # the draws differ in which class gets which size, so they are two sets under two labels
    sizes = [np.bincount(y_cut, minlength=3).tolist() for _, _, (_, y_cut) in cuts]
    assert sorted(sizes[0]) == sorted(sizes[1]) == [2, 4, 8] and sizes[0] != sizes[1]
    assert len(cq.label_sets(cuts)) == 2


def test_unbalanced_flag_reads_min_max_and_names_a_bad_value(cq):
    import argparse

    assert cq.size_range("8,50") == (8, 50)
    for bad in ("8", "8,50,9", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError, match="MIN,MAX"):
            cq.size_range(bad)


def test_bar_check_pairs_seeds_and_says_whether_each_link_holds(cq):
    import argparse

    assert cq.bar_chain("a>=b s1.5 > c") == [("a", ">=", "b s1.5"), ("b s1.5", ">", "c")]
    for bad in ("a", "a>", ">=b"):
        with pytest.raises(argparse.ArgumentTypeError, match="row names joined by >= or >"):
            cq.bar_chain(bad)

    def runs(accs, nmis, seeds):
        return [{"acc": a, "nmi": n, "seed": s} for a, n, s in zip(accs, nmis, seeds)]

    # b's seed 2 has no partner in c and is left out; seeds arrive out of order (parallel fits)
    results = {("set (N=9, C=3)", "a"): runs([0.9, 0.8, 0.7], [0.5, 0.5, 0.5], [0, 1, 2]),
               ("set (N=9, C=3)", "b"): runs([0.5, 0.6, 0.7], [0.6, 0.4, 0.5], [2, 0, 1]),
               ("set (N=9, C=3)", "c"): runs([0.7, 0.5], [0.5, 0.3], [1, 0])}
    text = cq.bar_check(results, cq.bar_chain("a>=b>c"))
    rows = text.splitlines()[2:]
    # a - b on seeds 0, 1, 2: ACC 0.3, 0.1, 0.2 (mean 0.2, std 0.1, s.e. 0.1 / sqrt 3 = 0.058)
    #                         NMI -0.1, 0.1, 0.0 (mean 0, s.e. 0.058: holds for >=, within noise)
    assert rows[0] == ("| set (N=9, C=3) | a >= b | 3 | +0.200 ± 0.058 holds | "
                       "+0.000 ± 0.058 holds (within noise) |")
    # b - c on seeds 0, 1: ACC 0.6 - 0.5, 0.7 - 0.7 = 0.1, 0.0; NMI 0.4 - 0.3, 0.5 - 0.5 = 0.1, 0.0
    assert rows[1] == ("| set (N=9, C=3) | b > c | 2 | +0.050 ± 0.050 holds (within noise) | "
                       "+0.050 ± 0.050 holds (within noise) |")
    assert cq.bar_check(results, cq.bar_chain("b>a")).splitlines()[2].startswith(
        "| set (N=9, C=3) | b > a | 3 | -0.200 ± 0.058 fails |")  # beyond two standard errors: no "noise" mark
    # no row named d (a misspelt --bar, say): nothing to check, and the text says so
    missing = "Not checked, no such row ran: d (links naming it are left out)."
    assert cq.bar_check(results, cq.bar_chain("c>d")) == missing
    assert cq.bar_check(results, cq.bar_chain("a>=b>d")).endswith("\n\n" + missing)
    one_seed = {key: [r for r in rs if r["seed"] == 1] for key, rs in results.items()}
    # seed 1: c - a = 0.7 - 0.8 (ACC), 0.5 - 0.5 (NMI); no spread, so no standard error and no noise verdict
    assert cq.bar_check(one_seed, cq.bar_chain("c>=a")).splitlines()[2] == (
        "| set (N=9, C=3) | c >= a | 1 | -0.100 fails (one seed) | +0.000 holds (one seed) |")


def test_bar_check_pools_the_draws_of_one_cut(cq):
    cut, draw3, other = "cut (N=9, C=3)", "cut, draw 3 (N=9, C=3)", "set (N=9, C=3)"
    assert cq.draws_pooled([cut, other, draw3]) == {"cut, 2 draws pooled (N=9, C=3)": [cut, draw3]}
    assert cq.draws_pooled([cut, other]) == {}  # one draw: nothing to pool

    def runs(accs, seeds):
        return [{"acc": a, "nmi": 0.5, "seed": s} for a, s in zip(accs, seeds)]

    results = {(cut, "a"): runs([0.6, 0.7], [0, 1]), (cut, "b"): runs([0.5, 0.5], [0, 1]),
               (draw3, "a"): runs([0.4, 0.9], [0, 1]), (draw3, "b"): runs([0.4], [0])}
    rows = cq.bar_check(results, cq.bar_chain("a>=b")).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| cut (N=9, C=3)", "| cut, draw 3 (N=9, C=3)",
                                                     "| cut, 2 draws pooled (N=9, C=3)"]
    # pooled pairs: 0.1, 0.2 from the cut and 0.0 from draw 3 (its seed 1 has no b): mean 0.1, std 0.1,
    # s.e. 0.1 / sqrt 3 = 0.058
    assert rows[2] == ("| cut, 2 draws pooled (N=9, C=3) | a >= b | 3 | +0.100 ± 0.058 holds (within noise) | "
                       "+0.000 ± 0.000 holds (within noise) |")


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_pool_worker_ends_once_its_sweep_is_killed(cq):
    import subprocess
    import time

    # the worker: the pool's initializer, then a fit that would run for a minute
    worker = (f"import os, sys, time; sys.path.insert(0, {str(BENCH.parent)!r}); import cluster_quality as cq; "
              "cq._init_pool_worker(1); print(os.getpid(), flush=True); time.sleep(60)")
    # the sweep: starts the worker and is killed (no shutdown, no word to the worker)
    # (the worker holds none of this test's pipes, so the run below ends with the sweep)
    sweep = (f"import os, subprocess, sys; w = subprocess.Popen([sys.executable, '-c', {worker!r}], "
             "stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True); "
             "print(w.stdout.readline().strip(), flush=True); os._exit(0)")
    pid = int(subprocess.run([sys.executable, "-c", sweep], capture_output=True, text=True, timeout=120,
                             check=True).stdout)
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(pid), "the orphaned worker is still running its fit"


def test_records_resume_a_run_and_add_seeds_without_redoing_fits(cq, tmp_path, capsys):
    sets = {"one (N=30, C=3)": small_set(30, 0)}
    variants = [cq.Variant("km", "kmeans")]
    records = tmp_path / "fits.jsonl"
    first = cq.run_all(sets, variants, seeds=2, jobs=1, threads=1, time_budget=None, records=records)
    assert len(records.read_text().splitlines()) == 2
    # A planted record stands for a fit already done: the next run takes it instead of fitting seed 2 again.
    planted = {"data": "one (N=30, C=3)", "variant": "km", "seed": 2, "acc": 0.25, "nmi": 0.5, "used": 3,
               "seconds": 1.0}
    with records.open("a") as f:
        f.write(json.dumps(planted) + "\n")
    capsys.readouterr()
    more = cq.run_all(sets, variants, seeds=4, jobs=1, threads=1, time_budget=None, records=records)
    runs = more[("one (N=30, C=3)", "km")]
    assert [r["seed"] for r in runs] == [0, 1, 2, 3]
    assert [r["acc"] for r in runs[:2]] == [r["acc"] for r in first[("one (N=30, C=3)", "km")]]
    assert runs[2]["acc"] == 0.25  # from the file, not refitted (k-means on these blobs scores 1.0)
    out = capsys.readouterr().out
    assert "3 of 4 fits taken from" in out and "km seed 3:" in out and "km seed 0:" not in out
    assert len(records.read_text().splitlines()) == 4


def test_a_fit_recorded_with_other_settings_than_its_row_now_gives_is_refused(cq, tmp_path):
    """A row keeps its name when a default moves under it: its old fits must not be paired with new ones."""
    sets = {"one (N=30, C=3)": small_set(30, 0)}
    records = tmp_path / "fits.jsonl"
    cq.run_all(sets, [cq.Variant("km", "kmeans")], seeds=1, jobs=1, threads=1, time_budget=None, records=records)
    (line,) = records.read_text().splitlines()
    saved = json.loads(line)["config"]
    assert saved == cq.settings_of(cq.Variant("km", "kmeans"), 0)
    assert saved["seed"] == 0 and saved["n_init"] == cq.method_config("kmeans", 0).n_init
    moved = cq.Variant("km", "kmeans", (("n_init", saved["n_init"] + 9),))
    with pytest.raises(ValueError, match=rf"one \(N=30, C=3\) / km / seed 0 .*n_init {saved['n_init']} -> "
                                         rf"{saved['n_init'] + 9}"):
        cq.run_all(sets, [moved], seeds=1, jobs=1, threads=1, time_budget=None, records=records)
    # the same settings spelt out in the row are the same fit: taken from the file
    pinned = cq.Variant("km", "kmeans", (("n_init", saved["n_init"]),))
    again = cq.run_all(sets, [pinned], seeds=1, jobs=1, threads=1, time_budget=None, records=records)
    assert len(again[("one (N=30, C=3)", "km")]) == 1 and len(records.read_text().splitlines()) == 1


def test_records_name_the_line_that_is_not_a_fit(cq, tmp_path):
    records = tmp_path / "fits.jsonl"
    records.write_text('{"data": "d", "variant": "v", "seed": 0}\nnot json\n')
    with pytest.raises(ValueError, match=r"fits.jsonl:2: not a fit record"):
        cq.read_records(records)


def test_every_recorded_sweep_list_still_builds_its_configs(cq):
    """Each bench/sweeps/*.yaml is the command of a result in bench/results/: a renamed config field must fail here."""
    from cimc.cluster.cimc import CimcConfig
    from cimc.config import ConfigError

    sweeps = sorted((BENCH.parent / "sweeps").glob("*.yaml"))
    assert len(sweeps) >= 20
    # A list with a .patch beside it screens fields that exist only with that throwaway patch applied.
    patched = [path for path in sweeps if path.with_suffix(".patch").exists()]
    assert [path.name for path in patched] == ["cimc_mixup_batchnorm.yaml", "cimc_mixup_late.yaml",
                                              "cimc_mixup_partners.yaml", "cimc_mixup_window.yaml",
                                              "cimc_vat_batchnorm.yaml"]
    for path in sorted(set(sweeps) - set(patched)):
        for variant in cq.load_variants(path):
            config = cq.method_config(variant.method, 3, variant.overrides)
            for field, value in variant.overrides:
                assert getattr(config, field) == (tuple(value) if isinstance(value, list) else value), (path, field)
            if isinstance(config, CimcConfig):
                assert (config.seed, config.progress) == (3, False)
    with pytest.raises(ConfigError, match="no_such_field"):
        cq.method_config("cimc", 0, (("no_such_field", 1),))


def test_a_method_without_config_refuses_fields_instead_of_dropping_them(cq, monkeypatch):
    import cimc.cluster.base

    monkeypatch.setattr(cimc.cluster.base, "config_class", lambda name: None)
    assert cq.method_config("kmeans", 0) is None
    with pytest.raises(ValueError, match="kmeans takes no config, so it cannot set n_init"):
        cq.method_config("kmeans", 0, (("n_init", 10),))


def test_first_seed_runs_the_later_seeds_only(cq):
    """--first-seed 2 --seeds 2 fits seeds 2 and 3, with the labels those seeds give in a run from seed 0."""
    sets = {"one (N=30, C=3)": small_set(30, 0)}
    variants = [cq.Variant("gmm", "gmm")]
    later = cq.run_all(sets, variants, seeds=2, jobs=1, threads=1, time_budget=None, first_seed=2)
    from_zero = cq.run_all(sets, variants, seeds=4, jobs=1, threads=1, time_budget=None)
    runs = later[("one (N=30, C=3)", "gmm")]
    assert [r["seed"] for r in runs] == [2, 3]
    assert [(r["acc"], r["nmi"]) for r in runs] == [(r["acc"], r["nmi"]) for r in from_zero[("one (N=30, C=3)", "gmm")][2:]]


def test_size_table_sets_the_predicted_sizes_beside_the_true_classes(cq, tmp_path):
    """Hand-worked: classes of 6, 3 and 1 points; a fit that splits them 4, 4, 2; H of (0.6, 0.3, 0.1) in nats."""
    y = np.array([0] * 6 + [1] * 3 + [2])
    assert cq.cluster_sizes(np.array([5, 5, 9, 5, 9, 9, 9, 5, 7, 7])) == [4, 4, 2]
    assert cq.size_entropy([6, 3, 1]) == pytest.approx(-(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1)))
    assert cq.size_entropy([5, 5, 0]) == pytest.approx(np.log(2))  # empty clusters hold no share
    results = {("s (N=10, C=3)", "even"): [{"seed": 0, "sizes": [4, 4, 2]}, {"seed": 1, "sizes": [4, 3, 3]}],
               ("s (N=10, C=3)", "old"): [{"seed": 0}]}  # recorded before fits kept their sizes
    sets = {"s (N=10, C=3)": (np.zeros((10, 2)), y), "unrun (N=4, C=2)": (np.zeros((4, 2)), np.array([0, 0, 1, 1]))}
    lines = cq.size_table(sets, results).splitlines()
    assert len(lines) == 4  # header, rule, the truth, "even"; "old" has no sizes to show, "unrun" no row
    truth = f"{cq.size_entropy([6, 3, 1]):.3f} (log C 1.099)"
    assert lines[2] == f"| s (N=10, C=3) | true classes | | 1 | 3 | 6 | {truth} |"
    entropy = (cq.size_entropy([4, 4, 2]) + cq.size_entropy([4, 3, 3])) / 2
    assert lines[3] == f"| s (N=10, C=3) | even | 2 | 2.5 | 3.5 | 4.0 | {entropy:.3f} |"
    # asked for 2 clusters of the 3 classes (--clusters-per-class): both bounds, log K and log C
    halved = {"s, 2 of 3 classes (N=10, C=2)": (np.zeros((10, 2)), y, 2)}
    two = {("s, 2 of 3 classes (N=10, C=2)", "two"): [{"seed": 0, "sizes": [7, 3]}]}
    bounds = f"{cq.size_entropy([6, 3, 1]):.3f} (log K 1.099, log C 0.693)"
    assert cq.size_table(halved, two).splitlines()[2] == (
        f"| s, 2 of 3 classes (N=10, C=2) | true classes | | 1 | 3 | 6 | {bounds} |")
    # A fit through run_all records its sizes, and a record written before sizes existed still loads.
    records = tmp_path / "fits.jsonl"
    run = cq.run_all({"two (N=60, C=3)": small_set(60, 1)}, [cq.Variant("km", "kmeans")], seeds=1, jobs=1,
                     threads=1, time_budget=None, records=records)
    fit = run[("two (N=60, C=3)", "km")][0]
    assert fit["acc"] == 1.0 and fit["sizes"] == [20, 20, 20]  # every point right, and make_blobs deals 20 each
    assert json.loads(records.read_text())["sizes"] == [20, 20, 20]
