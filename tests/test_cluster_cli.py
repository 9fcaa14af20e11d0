"""`cimc cluster`, `cluster-metrics`, `cluster-table`, `cluster-ablation` and the label files they use."""
from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sklearn import metrics as skm
from sklearn.datasets import make_blobs

from cimc.cli import cli
from cimc.cluster.labels import TRUE_SPEAKER_KEY, join_labels, read_label_file, write_pseudo_label_cuts
from cimc.vectors import save_vectors


@pytest.fixture
def corpus(tmp_path):
    """60 utterances of 3 speakers as 8-d vectors (.npy + .ids and .scp), an utt2spk, and Lhotse cuts."""
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    X, y = make_blobs(60, centers=3, n_features=8, cluster_std=0.5, random_state=0)
    ids = [f"spk{s}-utt{i:02d}" for i, s in enumerate(y)]
    save_vectors(tmp_path / "ivectors", ids, X, kaldi=True)
    (tmp_path / "utt2spk").write_text("".join(f"{u} spk{s}\n" for u, s in zip(ids, y)))
    cuts = []
    for utt, spk in zip(ids, y):
        rec = Recording(id=utt, sources=[AudioSource("file", [0], f"/nonexistent/{utt}.wav")], sampling_rate=16000,
                        num_samples=16000, duration=1.0)
        sup = SupervisionSegment(id=utt, recording_id=utt, start=0, duration=1.0, speaker=f"spk{spk}")
        cuts.append(MonoCut(id=utt, start=0, duration=1.0, channel=0, recording=rec, supervisions=[sup]))
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    return tmp_path, ids, y


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def invoke_raising(*args):
    """Invoke for a command expected to raise (inside ``pytest.raises``)."""
    CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cluster_writes_labels_cuts_config_and_skips_when_done(corpus):
    from lhotse import load_manifest

    root, ids, y = corpus
    out = root / "kmeans"
    (root / "kmeans.yaml").write_text("n_init: 2\nseed: 3\n")
    invoke("cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3,
           "--config", root / "kmeans.yaml", "--override", "max_iter=50", "--cuts", root / "cuts.jsonl.gz",
           "--output", out)
    labels = np.load(out / "labels.npy")
    assert labels.shape == (60,) and skm.adjusted_rand_score(y, labels) == 1.0
    assert read_label_file(out / "labels.txt") == {u: str(l) for u, l in zip(ids, labels)}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert {k: saved[k] for k in ("n_init", "seed", "max_iter")} == {"n_init": 2, "seed": 3, "max_iter": 50}
    assert json.loads((out / "summary.json").read_text())["nonempty_clusters"] == 3
    cuts = load_manifest(out / "cuts.jsonl.gz")
    for cut, label, spk in zip(cuts, labels, y):
        assert cut.supervisions[0].speaker == str(label)
        assert cut.supervisions[0].custom[TRUE_SPEAKER_KEY] == f"spk{spk}"
    (out / "labels.txt").write_text("edited\n")  # a rerun of the same request must not touch a finished folder
    invoke("cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3,
           "--config", root / "kmeans.yaml", "--override", "max_iter=50", "--output", out)
    assert (out / "labels.txt").read_text() == "edited\n"


def test_a_finished_folder_refuses_another_request_and_adds_cuts_asked_for_later(corpus, monkeypatch):
    from lhotse import load_manifest

    root, ids, y = corpus
    out = root / "kmeans"
    args = ["cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3, "--output", out]
    invoke(*args, "--override", "seed=3")
    labels = np.load(out / "labels.npy")
    for changed, named in [(["--override", "seed=4"], "seed 3 -> 4"),
                           (["--override", "seed=3", "--override", "n_init=2"], "n_init 1 -> 2"),
                           (["--override", "seed=3", "--num-clusters", 2], "num-clusters 3 -> 2"),
                           (["--override", "seed=3", "--input", root / "ivectors.scp"], "ivectors.scp"),
                           (["--override", "seed=3", "--exclude", root / "utt2spk"], "exclude None -> "),
                           (["--override", "seed=4", "--num-clusters", 2], "num-clusters 3 -> 2; seed 3 -> 4")]:
        with pytest.raises(ValueError, match=f"{out} holds the finished labels of another request .*{named}"):
            invoke_raising(*args, *changed)
    # where the math runs may change; so may the directory the same files are named from
    monkeypatch.chdir(root)
    invoke("cluster", "--input", "ivectors.npy", "--method", "kmeans", "--num-clusters", 3, "--output", "kmeans",
           "--override", "seed=3", "--override", "device=cpu", "--override", "chunk_size=16",
           "--cuts", "cuts.jsonl.gz")
    np.testing.assert_array_equal(np.load(out / "labels.npy"), labels)
    cuts = load_manifest(out / "cuts.jsonl.gz")  # not asked for the first time: written now, from the stored labels
    assert [(c.id, c.supervisions[0].speaker) for c in cuts] == [(u, str(l)) for u, l in zip(ids, labels)]


def test_cluster_reads_kaldi_scp_and_estimates_k(corpus):
    root, _, y = corpus
    invoke("cluster", "--input", root / "ivectors.scp", "--method", "spectral", "--output", root / "sc")
    assert skm.adjusted_rand_score(y, np.load(root / "sc" / "labels.npy")) == 1.0


def test_cluster_leaves_out_excluded_utterances(corpus, caplog):
    from lhotse import load_manifest

    from cimc.cluster.run import drop_excluded

    root, ids, _ = corpus
    (root / "short.txt").write_text(f"{ids[3]} 12\n{ids[40]} 0\nnot-an-utterance 3\n")
    with caplog.at_level(logging.WARNING, logger="cimc.cluster.run"):  # (before the CLI resets logging)
        kept_ids, _ = drop_excluded(ids, np.zeros((60, 2)), root / "short.txt")
    assert kept_ids == [u for u in ids if u not in (ids[3], ids[40])]
    assert "1 of the 3 utterances listed in" in caplog.text and "not among the 60 vectors: not-an-utterance" in caplog.text
    invoke("cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3, "--exclude",
           root / "short.txt", "--cuts", root / "cuts.jsonl.gz", "--output", root / "ex")
    kept = set(read_label_file(root / "ex" / "labels.txt"))
    assert kept == set(ids) - {ids[3], ids[40]}
    assert set(load_manifest(root / "ex" / "cuts.jsonl.gz").ids) == kept


def test_cluster_rejects_unknown_method_and_bad_override(corpus):
    root, _, _ = corpus
    result = CliRunner().invoke(cli, ["cluster", "--input", str(root / "ivectors.npy"), "--method", "dbscan",
                                      "--num-clusters", "3", "--output", str(root / "x")])
    assert result.exit_code != 0 and "dbscan" in result.output
    with pytest.raises(ValueError, match="n_inits"):
        invoke_raising("cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3,
                       "--override", "n_inits=2", "--output", root / "x")
    (root / "broken.npy").write_text("not numpy\n")  # the config is read first, before the vectors
    with pytest.raises(ValueError, match="n_init must be >= 1"):
        invoke_raising("cluster", "--input", root / "broken.npy", "--method", "kmeans", "--num-clusters", 3,
                       "--override", "n_init=0", "--output", root / "x")


def test_pseudo_label_cuts_report_mismatches(corpus, caplog):
    root, ids, _ = corpus
    with pytest.raises(ValueError, match="1 labelled utterances have no cut.*ghost"):
        write_pseudo_label_cuts(root / "cuts.jsonl.gz", ids + ["ghost"], np.zeros(61), root / "a.jsonl.gz")
    assert write_pseudo_label_cuts(root / "cuts.jsonl.gz", ids[:50], np.zeros(50), root / "b.jsonl.gz") == 50
    assert "10 cuts" in caplog.text and ids[55] in caplog.text


def test_pseudo_labels_reach_cuts_without_supervisions(corpus):
    """An unlabelled corpus may have cuts with no supervision: each gets one spanning it, with its pseudo-label."""
    from lhotse import CutSet, load_manifest
    from lhotse.utils import fastcopy

    from cimc.sv.data import speaker_of

    root, ids, _ = corpus
    bare = CutSet.from_cuts(fastcopy(c, supervisions=[]) for c in load_manifest(root / "cuts.jsonl.gz"))
    bare.to_file(root / "bare.jsonl.gz")
    labels = np.arange(60) % 4
    assert write_pseudo_label_cuts(root / "bare.jsonl.gz", ids, labels, root / "out.jsonl.gz") == 60
    for cut, label in zip(load_manifest(root / "out.jsonl.gz"), labels):
        (sup,) = cut.supervisions
        assert speaker_of(cut) == str(label) and (sup.start, sup.duration) == (0.0, cut.duration)
        assert sup.recording_id == cut.recording_id and sup.custom == {TRUE_SPEAKER_KEY: None}


def test_cluster_metrics_joins_by_utterance_and_matches_sklearn(corpus):
    root, ids, y = corpus
    rng = np.random.default_rng(0)
    hyp = rng.integers(0, 4, 60)
    # hyp lacks the first 5 utterances and has one extra
    (root / "hyp.txt").write_text("".join(f"{u} c{h}\n" for u, h in list(zip(ids, hyp))[5:]) + "stray 1\n")
    result = invoke("cluster-metrics", "--ref", root / "utt2spk", "--hyp", root / "hyp.txt", "--features",
                    root / "ivectors.npy", "--name", "random", "--output", root / "metrics.json")
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["num_utterances"] == 55
    order = np.argsort(ids[5:])  # joined utterances are sorted by id
    true, pred = y[5:][order], hyp[5:][order]
    assert metrics["nmi"] == pytest.approx(skm.normalized_mutual_info_score(true, pred), abs=1e-9)
    assert metrics["ami"] == pytest.approx(skm.adjusted_mutual_info_score(true, pred), abs=1e-9)
    X = np.load(root / "ivectors.npy")[5:][order]
    assert metrics["silhouette"] == pytest.approx(skm.silhouette_score(X, pred, metric="cosine"), abs=1e-6)
    # the log (stderr, mixed into the output here) names what was left out
    assert "| random |" in result.output and "5 utterances" in result.output and "stray" in result.output

    invoke("cluster-metrics", "--ref", root / "utt2spk", "--hyp", root / "utt2spk", "--output", root / "m2.json")
    table = invoke("cluster-table", f"random={root / 'metrics.json'}", root / "m2.json", "--output",
                   root / "t.md").stdout
    assert table.splitlines()[2].startswith("| random |") and table.splitlines()[3].startswith(f"| {root.name} |")
    assert (root / "t.md").read_text() == table
    (root / "c=5").mkdir()  # '=' in the name and in the path
    (root / "m2.json").rename(root / "c=5" / "m2.json")
    table = invoke("cluster-table", f"cimc (C=5)={root / 'c=5' / 'm2.json'}", root / "c=5" / "m2.json").stdout
    assert table.splitlines()[2].startswith("| cimc (C=5) |") and table.splitlines()[3].startswith("| c=5 |")


def test_undefined_metrics_are_json_null(corpus):
    """One predicted cluster: silhouette, Calinski-Harabasz and Davies-Bouldin are undefined, written as null
    (strict JSON: Python's default would write NaN, which other parsers reject); cluster-table leaves them blank."""
    root, ids, _ = corpus
    (root / "one.txt").write_text("".join(f"{u} 0\n" for u in ids))
    invoke("cluster-metrics", "--ref", root / "utt2spk", "--hyp", root / "one.txt", "--features",
           root / "ivectors.npy", "--output", root / "one.json")
    text = (root / "one.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert metrics["silhouette"] is None and metrics["num_clusters"] == 1
    assert invoke("cluster-table", f"one={root / 'one.json'}").stdout.splitlines()[2].startswith("| one |")


def test_cluster_metrics_on_vectors_already_in_utterance_order(corpus):
    """The in-place path (no reordered copy): same feature metrics as scikit-learn, the file left as it was."""
    from cimc.cluster.run import evaluate_label_files

    root, ids, y = corpus
    order = np.argsort(ids)
    X = np.load(root / "ivectors.npy")[order]
    save_vectors(root / "sorted", [ids[i] for i in order], X)
    metrics = evaluate_label_files(root / "utt2spk", root / "utt2spk", root / "sorted.npy")
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert metrics["silhouette"] == pytest.approx(skm.silhouette_score(X, y[order], metric="cosine"), abs=1e-6)
    assert metrics["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(unit, y[order]), rel=1e-5)
    assert np.array_equal(np.load(root / "sorted.npy"), X)


def test_label_files_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("u1 a\nu2\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_label_file(bad)
    bad.write_text("u1 a\n\nu1 b\n")
    with pytest.raises(ValueError, match="bad.txt:3.*twice"):
        read_label_file(bad)
    with pytest.raises(ValueError, match="no utterance in common"):
        join_labels({"a": "1"}, {"b": "1"})


def test_cluster_ablation_writes_table_i_layout_and_resumes(corpus):
    root, _, _ = corpus
    (root / "few.yaml").write_text("n_init: 1\nmax_iter: 2\n")
    (root / "many.yaml").write_text("n_init: 4\n")
    out = root / "ablation"
    args = ["cluster-ablation", "--input", root / "ivectors.npy", "--ref", root / "utt2spk", "--method", "kmeans",
            "--configs", root / "few.yaml", root / "many.yaml", "--num-clusters", "2,3", "--output", out]
    printed = invoke(*args).stdout
    lines = (out / "table.md").read_text().splitlines()
    assert lines[0].startswith("| row | losses | C | acc | ami | nmi | num_clusters |")
    assert [line.split("|")[1].strip() + line.split("|")[3].strip() for line in lines[2:]] == \
        ["few2", "few3", "many2", "many3"]
    csv_rows = (out / "table.csv").read_text().splitlines()
    assert len(csv_rows) == 5 and csv_rows[0].startswith("row,losses,C,acc,ami,nmi")
    csv_table = list(csv.DictReader(csv_rows))
    assert [r["num_clusters"] for r in csv_table] == ["2", "3", "2", "3"]  # counts, not "2.0"
    assert float(csv_table[0]["acc"]) == json.loads((out / "few_C2" / "metrics.json").read_text())["acc"]
    assert printed == (out / "table.md").read_text()
    # resume: a finished row is read back, not recomputed
    metrics = json.loads((out / "many_C3" / "metrics.json").read_text())
    assert metrics["acc"] == 1.0
    (out / "many_C3" / "metrics.json").write_text(json.dumps({**metrics, "acc": 0.123}))
    invoke(*args)
    assert "| many | kmeans | 3 | 0.123 |" in (out / "table.md").read_text()
    # a row edited since it ran is refused, not read back as if it were the new one
    (root / "many.yaml").write_text("n_init: 5\n")
    with pytest.raises(ValueError, match="many_C2 holds the finished labels of another request .*n_init 4 -> 5"):
        invoke_raising(*args)


def test_cluster_ablation_from_spec_with_overrides(corpus):
    root, ids, _ = corpus
    (root / "conf").mkdir()
    (root / "conf" / "base.yaml").write_text("n_init: 1\n")
    (root / "conf" / "ablation.yaml").write_text(yaml.safe_dump({
        "method": "kmeans", "num_clusters": [3],
        "rows": [{"name": "plain", "config": "base.yaml"},
                 {"name": "restarts", "config": "base.yaml", "overrides": ["n_init=3"]},
                 {"name": "gmm", "method": "gmm"}]}))
    (root / "short.txt").write_text(f"{ids[7]} 11\n")  # stage 3's list of utterances too short for an i-vector
    invoke("cluster-ablation", "--input", root / "ivectors.npy", "--ref", root / "utt2spk", "--spec",
           root / "conf" / "ablation.yaml", "--no-feature-metrics", "--exclude", root / "short.txt", "--output",
           root / "abl")
    assert yaml.safe_load((root / "abl" / "restarts_C3" / "config.yaml").read_text())["n_init"] == 3
    for row in ("plain", "restarts", "gmm"):
        assert set(read_label_file(root / "abl" / f"{row}_C3" / "labels.txt")) == set(ids) - {ids[7]}
    assert (root / "abl" / "gmm_C3" / "labels.npy").is_file()
    assert "silhouette" not in (root / "abl" / "table.md").read_text()


def test_cluster_ablation_rows_with_their_own_c_values(corpus):
    """As Table I: a row may list its own C values (IMSAT at 5k, 10k and 5994 there); --num-clusters on the
    command line sets every row's; a row left with none is refused before anything runs."""
    from cimc.cluster.ablation import load_spec, run_ablation

    root, _, _ = corpus
    spec = {"method": "kmeans", "num_clusters": [2],
            "rows": [{"name": "own", "num_clusters": [3, 4]}, {"name": "shared"}]}
    (root / "abl.yaml").write_text(yaml.safe_dump(spec))
    args = ["cluster-ablation", "--input", root / "ivectors.npy", "--ref", root / "utt2spk", "--spec",
            root / "abl.yaml", "--no-feature-metrics"]
    invoke(*args, "--output", root / "a")
    rows = [line.split("|")[1:4] for line in (root / "a" / "table.md").read_text().splitlines()[2:]]
    assert [(r[0].strip(), r[2].strip()) for r in rows] == [("own", "3"), ("own", "4"), ("shared", "2")]
    invoke(*args, "--num-clusters", "5", "--output", root / "b")
    assert sorted(p.name for p in (root / "b").iterdir() if p.is_dir()) == ["own_C5", "shared_C5"]
    del spec["num_clusters"]
    (root / "abl.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(cli, [str(a) for a in args] + ["--output", str(root / "c")])
    assert result.exit_code == 2 and "give --num-clusters (or num_clusters in the spec)" in result.output
    with pytest.raises(ValueError, match="ablation row 'shared' has no C"):  # the library says which row
        run_ablation(root / "ivectors.npy", root / "utt2spk", load_spec(root / "abl.yaml")[1], [], root / "c",
                     method="kmeans")
    assert not (root / "c" / "own_C3").exists()


def test_cluster_ablation_checks_every_row_before_running_any(corpus):
    from cimc.config import ConfigError

    root, _, _ = corpus
    spec = {"method": "kmeans", "num_clusters": [3],
            "rows": [{"name": "good"}, {"name": "typo", "overrides": ["n_init=0"]}]}
    (root / "ablation.yaml").write_text(yaml.safe_dump(spec))
    args = ["cluster-ablation", "--input", root / "ivectors.npy", "--ref", root / "utt2spk", "--spec",
            root / "ablation.yaml", "--output", root / "abl"]
    with pytest.raises(ConfigError, match=r"ablation row 'typo': KMeansConfig: n_init must be >= 1, got 0"):
        invoke_raising(*args)
    assert not (root / "abl").exists()  # the good row did not run first
    spec["rows"] = [{"name": "a/b"}]
    (root / "ablation.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="row name 'a/b' cannot name a folder"):
        invoke_raising(*args)
    # a C that is not a whole number >= 1, in a late row or at the top: refused naming the file and row, not
    # after the first rows have trained (it raised a TypeError then)
    for bad_spec, where in [({"rows": [{"name": "good"}, {"name": "late", "num_clusters": ["5k"]}]},
                             r"ablation\.yaml: rows\[1\] \(late\): num_clusters must be whole numbers >= 1, got '5k'"),
                            ({"num_clusters": [3.0], "rows": [{"name": "good"}]},
                             r"ablation\.yaml: num_clusters must be whole numbers >= 1, got 3\.0"),
                            ({"num_clusters": 3, "rows": [{"name": "good"}]},
                             r"ablation\.yaml\.num_clusters: expected a list \(list\), got 3")]:
        (root / "ablation.yaml").write_text(yaml.safe_dump({"method": "kmeans", **bad_spec}))
        with pytest.raises(ConfigError, match=where):
            invoke_raising(*args)
        assert not (root / "abl").exists()
    from cimc.cluster.ablation import AblationRow, run_ablation

    with pytest.raises(ConfigError, match="ablation row 'zero': num_clusters must be whole numbers >= 1, got 0"):
        run_ablation(root / "ivectors.npy", root / "utt2spk", [AblationRow("zero", num_clusters=[0])], [],
                     root / "abl", method="kmeans")


def test_cluster_metrics_names_rows_and_explains_unnamed_vectors(corpus, monkeypatch):
    root, ids, y = corpus
    np.save(root / "rows.npy", np.load(root / "ivectors.npy"))  # no rows.ids: its utterances are "0", "1", ...
    with pytest.raises(ValueError, match=r"no vector in .*rows\.npy \(it has no \.ids file beside it"):
        invoke_raising("cluster-metrics", "--ref", root / "utt2spk", "--hyp", root / "utt2spk", "--features",
                       root / "rows.npy", "--output", root / "m.json")
    monkeypatch.chdir(root)  # a hyp given without a folder: the row is named after the current one
    printed = invoke("cluster-metrics", "--ref", "utt2spk", "--hyp", "utt2spk", "--output", "m.json").stdout
    assert printed.splitlines()[2].startswith(f"| {root.name} |")


@pytest.mark.parametrize("text, message", [("{bad", "is not JSON"), ("[1, 2]", "holds no clustering metrics"),
                                           ('{"acc": "x"}', "acc is 'x', not a number")])
def test_cluster_table_names_a_file_that_is_not_metrics(tmp_path, text, message):
    (tmp_path / "m.json").write_text(text)
    result = CliRunner().invoke(cli, ["cluster-table", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and "m.json" in result.output and message in result.output


def test_cluster_table_names_the_whole_item_when_no_file_matches(tmp_path):
    item = f"cimc (C=5)={tmp_path / 'c=1' / 'metrics.json'}"  # '=' in the name and in the (missing) path
    result = CliRunner().invoke(cli, ["cluster-table", item])
    assert result.exit_code == 2 and f"{item}: no such file" in result.output


def test_ablation_rows_describe_their_loss_combination():
    from cimc.cluster.ablation import AblationRow, loss_description

    assert loss_description("cimc", AblationRow("IMSAT", overrides=["losses=[imsat]"])) == "imsat"
    assert loss_description("cimc", AblationRow("full", overrides=["losses=[imsat, supcon, mixup]"])) == \
        "imsat + supcon + mixup"


def test_cluster_config_prints_loadable_defaults(tmp_path):
    from cimc.cluster.baselines import AhcConfig
    from cimc.config import load_config

    printed = invoke("cluster-config", "--method", "ahc", "--output", tmp_path / "ahc.yaml").stdout
    assert yaml.safe_load(printed)["linkage"] == "ward"
    assert load_config(AhcConfig, tmp_path / "ahc.yaml") == AhcConfig()


def test_mini_synth_stages_4_5_put_methods_side_by_side(corpus):
    """egs/mini_synth stages 4-5 on stand-in stage 0-3 outputs (two baselines instead of CIMC + k-means)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root, ids, _ = corpus
    data, exp = root / "data", root / "exp"
    (data / "kaldi" / "train").mkdir(parents=True)
    (data / "manifests").mkdir()
    (exp / "ivector").mkdir(parents=True)
    shutil.copy(root / "utt2spk", data / "kaldi" / "train" / "utt2spk")
    shutil.copy(root / "cuts.jsonl.gz", data / "manifests" / "train_cuts.jsonl.gz")
    for suffix in (".npy", ".ids"):
        shutil.copy(root / f"ivectors{suffix}", exp / "ivector" / f"ivectors_train{suffix}")
    (exp / "ivector" / "short_train.txt").write_text(f"{ids[0]} 3\n")
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CIMC_VENV=sys.prefix, OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(repo / "egs" / "mini_synth" / "run.sh"), "--stage", "4", "--stop-stage", "5",
         "--num-clusters", "3", "--cluster-methods", "kmeans gmm", "--data", str(data), "--exp", str(exp)],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (exp / "cluster" / "results.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["kmeans", "gmm"]
    assert table in result.stdout  # printed for the person running the recipe
    for method in ("kmeans", "gmm"):
        metrics = json.loads((exp / "cluster" / method / "metrics.json").read_text())
        assert metrics["acc"] == 1.0 and metrics["num_utterances"] == 59  # one utterance excluded as short
        assert (exp / "cluster" / method / "cuts.jsonl.gz").is_file()


def test_cluster_rejects_a_wrong_cuts_file_before_clustering(corpus):
    """A recordings manifest passed as --cuts stops the run before any clustering, naming the file."""
    from lhotse import load_manifest

    root, _, _ = corpus
    recordings = root / "recordings.jsonl.gz"
    load_manifest(root / "cuts.jsonl.gz").decompose()[0].to_file(recordings)
    with pytest.raises(ValueError, match=r"recordings\.jsonl\.gz holds a RecordingSet, not cuts"):
        invoke_raising("cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3,
                       "--cuts", recordings, "--output", root / "wrong")
    assert not (root / "wrong" / "labels.npy").exists()


def test_utterances_without_a_cut_stop_the_run_before_clustering(corpus, monkeypatch):
    from lhotse import load_manifest

    from cimc.cluster.baselines import KMeansClusterer

    root, ids, _ = corpus
    load_manifest(root / "cuts.jsonl.gz").subset(cut_ids=ids[2:]).to_file(root / "fewer.jsonl.gz")
    monkeypatch.setattr(KMeansClusterer, "fit_predict", lambda *a, **k: pytest.fail("clustered before the check"))
    with pytest.raises(ValueError, match=f"2 of the 60 utterances to cluster have no cut in .*fewer.jsonl.gz: "
                                         f"{ids[0]}, {ids[1]}"):
        invoke_raising("cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3,
                       "--cuts", root / "fewer.jsonl.gz", "--output", root / "km")


def test_reclustering_an_unfinished_folder_leaves_nothing_of_the_earlier_request(corpus):
    """With .done deleted the folder is clustered again: the old cuts (none asked for now) do not survive, and
    a finished folder asked for cuts from another manifest writes those."""
    from lhotse import load_manifest
    from lhotse.utils import fastcopy

    root, ids, _ = corpus
    out = root / "km"
    args = ["cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--output", out]
    invoke(*args, "--num-clusters", 3, "--cuts", root / "cuts.jsonl.gz")
    (out / ".done").unlink()
    invoke(*args, "--num-clusters", 2)
    assert not (out / "cuts.jsonl.gz").exists()
    assert json.loads((out / "summary.json").read_text())["cuts"] is None
    invoke(*args, "--num-clusters", 2, "--cuts", root / "cuts.jsonl.gz")
    load_manifest(root / "cuts.jsonl.gz").map_supervisions(
        lambda s: fastcopy(s, speaker=f"other-{s.speaker}")).to_file(root / "renamed.jsonl.gz")
    invoke(*args, "--num-clusters", 2, "--cuts", root / "renamed.jsonl.gz")  # another manifest: rewritten
    labels = np.load(out / "labels.npy")
    cuts = load_manifest(out / "cuts.jsonl.gz")
    assert [(c.id, c.supervisions[0].speaker) for c in cuts] == [(u, str(l)) for u, l in zip(ids, labels)]
    assert all(c.supervisions[0].custom[TRUE_SPEAKER_KEY].startswith("other-spk") for c in cuts)
    assert json.loads((out / "summary.json").read_text())["cuts"] == str((root / "renamed.jsonl.gz").resolve())


def test_an_output_folder_of_another_stage_is_refused_not_cleaned(corpus):
    """--output mistyped onto another tool's folder (an ECAPA experiment's config.yaml, say): refused before its
    files are removed; a cluster folder whose run died before any labels (only its .lock) is still taken."""
    root, _, _ = corpus
    other = root / "exp_sv"
    other.mkdir()
    (other / "config.yaml").write_text("model: ecapa\n")
    args = ["cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3]
    with pytest.raises(ValueError, match=r"exp_sv holds config\.yaml but no clustering by `cimc cluster`"):
        invoke_raising(*args, "--output", other)
    assert (other / "config.yaml").read_text() == "model: ecapa\n" and not (other / "labels.npy").exists()
    died = root / "died"
    died.mkdir()
    (died / ".lock").write_text("cimc cluster --method cimc (pid 1)\n")
    (died / "config.yaml").write_text("stale\n")
    invoke(*args, "--output", died)
    assert (died / "labels.npy").is_file() and "n_init" in (died / "config.yaml").read_text()


def test_all_zero_vectors_are_named_by_utterance(corpus):
    """A zero vector has no direction: methods that l2-normalise stop naming it; raw k-means keeps it."""
    root, ids, _ = corpus
    from cimc.vectors import load_vectors

    _, X = load_vectors(root / "ivectors.npy")
    X[[7, 30]] = 0
    save_vectors(root / "zeros", ids, X)
    for method in ("cimc", "kmeans"):
        with pytest.raises(ValueError, match=rf"2 all-zero vector\(s\).*: {ids[7]}, {ids[30]}; leave them out"):
            invoke_raising("cluster", "--input", root / "zeros.npy", "--method", method, "--num-clusters", 3,
                           "--output", root / f"z_{method}")
    invoke("cluster", "--input", root / "zeros.npy", "--method", "kmeans", "--num-clusters", 3,
           "--override", "l2_normalize=false", "--output", root / "raw")
    assert np.load(root / "raw" / "labels.npy").shape == (60,)
    (root / "exclude.txt").write_text(f"{ids[7]}\n{ids[30]}\n")
    invoke("cluster", "--input", root / "zeros.npy", "--method", "kmeans", "--num-clusters", 3,
           "--exclude", root / "exclude.txt", "--output", root / "excluded")
    assert np.load(root / "excluded" / "labels.npy").shape == (58,)


def test_training_figure_draws_the_history():
    """Each panel's lines are the history's own numbers against the step; SupCon only where it was logged."""
    import math

    from cimc.cluster.plot import (
        batch_entropy_of_equal_sizes, clusters_filled_by_equal_sizes, loss_term_names, training_figure,
    )

    history = [{"epoch": e, "step": 10 * e, "vat": 0.1 * e, "mi": -1.0 - e, "H(Y|X)": 2.0 / e, "H(Y)": 1.5,
                "mixup": 0.01, "loss": -e, "used": 3 + e, "lr": 0.01 / e, **({"supcon": 2.0 / e} if e > 2 else {})}
               for e in range(1, 5)]
    assert loss_term_names(history) == ["vat", "mi", "mixup", "loss", "supcon"]
    fig = training_figure(history, n_clusters=5)
    terms, entropies, clusters, last = fig.axes
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in terms.lines}
    assert drawn["vat"] == ([10, 20, 30, 40], [0.1, 0.2, 0.30000000000000004, 0.4])
    assert drawn["supcon"] == ([30, 40], [2.0 / 3, 0.5])
    entropy_lines = {line.get_label(): list(line.get_ydata()) for line in entropies.lines}
    assert entropy_lines["H(Y|X)"] == [2.0, 1.0, 2.0 / 3, 0.5] and entropy_lines["log C (C = 5)"] == [math.log(5)] * 2
    assert list(clusters.lines[0].get_ydata()) == [4, 5, 6, 7] and len(clusters.lines) == 1
    # With the batch size, a reference line: all 5 clusters equal, batch 4 -> 5 (1 - 0.8^4) = 2.952 expected.
    reference = training_figure(history, n_clusters=5, batch_size=4).axes[2].lines[1]
    assert reference.get_ydata()[0] == pytest.approx(2.952)
    draws = np.random.default_rng(0).integers(0, 50, size=(4000, 100))  # batches of 100 from 50 equal clusters
    simulated = np.mean([np.unique(row).size for row in draws])
    assert clusters_filled_by_equal_sizes(50, 100) == pytest.approx(simulated, abs=0.1)
    # By hand, 4 points from 5 equal clusters: all apart (p 120/625, H log 4), one pair (360/625, H 1.0397),
    # two pairs (60/625, log 2), three and one (80/625, 0.5623), all four together (5/625, 0).
    by_hand = (120 * math.log(4) + 360 * (1.5 * math.log(2)) + 60 * math.log(2)
               + 80 * (-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))) / 625
    assert batch_entropy_of_equal_sizes(5, 4) == pytest.approx(by_hand)
    counts = [np.bincount(row, minlength=50) / 100 for row in draws]
    entropy = np.mean([-(p[p > 0] * np.log(p[p > 0])).sum() for p in counts])
    assert batch_entropy_of_equal_sizes(50, 100) == pytest.approx(entropy, abs=0.005)
    assert training_figure(history, n_clusters=5, batch_size=4).axes[1].lines[3].get_ydata()[0] == \
        pytest.approx(batch_entropy_of_equal_sizes(5, 4))
    assert last.get_title() == "learning rate" and list(last.lines[0].get_ydata()) == [0.01, 0.005, 0.01 / 3, 0.0025]
    with_ref = [{**r, "acc": 0.2 * r["epoch"], "nmi": 0.25 * r["epoch"]} for r in history]
    last = training_figure(with_ref, n_clusters=5).axes[3]
    assert [line.get_label() for line in last.lines] == ["ACC", "NMI"]
    assert list(last.lines[1].get_ydata()) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match="no training history"):
        training_figure([], n_clusters=5)


def test_cluster_writes_the_training_curves_of_cimc_only(corpus):
    from matplotlib.image import imread

    root, _, _ = corpus
    invoke("cluster", "--input", root / "ivectors.npy", "--method", "cimc", "--num-clusters", 3, "--ref",
           root / "utt2spk", "--override", "min_steps=30", "--override", "hidden_dim=32", "--output", root / "c")
    assert imread(root / "c" / "training.png").shape == (700, 1100, 4)
    invoke("cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3, "--output",
           root / "k")
    assert not (root / "k" / "training.png").exists()


def test_cimc_checkpointing_into_its_own_output_folder_does_not_refuse_itself(corpus):
    """`cimc cluster` holds output/.lock and CIMC holds checkpoint_dir/.checkpoint.lock while it trains: a
    checkpoint_dir that is the output folder itself works, and a second run into it still stops."""
    from cimc.utils import OutputBusyError, exclusive_dir

    root, _, y = corpus
    out = root / "c"
    args = ["cluster", "--input", root / "ivectors.npy", "--method", "cimc", "--num-clusters", 3, "--override",
            "min_steps=30", "--override", "hidden_dim=32", "--override", f"checkpoint_dir={out}", "--output", out]
    with exclusive_dir(out, "CIMC training", ".checkpoint.lock"):  # another run training into the same folder
        with pytest.raises(OutputBusyError, match="being written by CIMC training"):
            invoke_raising(*args)
    invoke(*args)
    assert (out / "checkpoint.pt").is_file() and (out / "labels.npy").is_file()
    assert skm.normalized_mutual_info_score(y, np.load(out / "labels.npy")) > 0.5


def test_the_cimc_command_ends_a_bad_input_with_its_message_not_a_traceback(corpus, monkeypatch, capsys):
    from cimc.cli import main

    root, _, _ = corpus
    args = ["cimc", "cluster", "--input", str(root / "ivectors.npy"), "--method", "kmeans", "--num-clusters", "99",
            "--output", str(root / "km")]
    monkeypatch.setattr("sys.argv", args)
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    assert "ERROR" in err and "n_clusters=99 must be between 1 and the number of points 60 [ValueError" in err
    monkeypatch.setattr("sys.argv", args[:1] + ["-v"] + args[1:])
    with pytest.raises(ValueError, match="n_clusters=99"):  # -v: the traceback too
        main()


def test_a_second_run_into_a_folder_being_written_stops_naming_the_first(corpus):
    from cimc.utils import OutputBusyError, exclusive_dir

    root, _, y = corpus
    args = ["cluster", "--input", root / "ivectors.npy", "--method", "kmeans", "--num-clusters", 3, "--output",
            root / "km"]
    with exclusive_dir(root / "km", "cimc cluster --method cimc"):  # the first run, still training
        with pytest.raises(OutputBusyError, match=r"km is being written by cimc cluster --method cimc \(pid \d+\)"):
            invoke_raising(*args)
        assert not (root / "km" / "labels.npy").exists()
    invoke(*args)  # once it has finished (or died: the lock goes with its process)
    assert skm.adjusted_rand_score(y, np.load(root / "km" / "labels.npy")) == 1.0


def test_exclusive_dir_goes_on_unguarded_where_the_folder_cannot_be_locked(tmp_path, monkeypatch, caplog):
    """A read-only folder (a shared, finished exp/) or a file system without flock (Lustre without -o flock):
    the command still runs, with a warning, instead of failing on the lock."""
    import errno
    import fcntl

    import cimc.utils
    from cimc.utils import exclusive_dir

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with caplog.at_level(logging.WARNING, logger="cimc.utils"), exclusive_dir(tmp_path / "a", "test") as out:
        assert out == tmp_path / "a"
    assert "does not lock files (No locks available)" in caplog.text
    monkeypatch.undo()

    def read_only(path, mode="r", *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(cimc.utils, "open", read_only, raising=False)  # as root, chmod would not stop a write
    with caplog.at_level(logging.WARNING, logger="cimc.utils"), exclusive_dir(tmp_path / "b", "test") as out:
        assert out == tmp_path / "b"
    assert "cannot write its .lock (Permission denied)" in caplog.text
    monkeypatch.undo()
    with exclusive_dir(tmp_path / "c", "test"):  # and where it can, the lock still excludes a second run
        with pytest.raises(cimc.utils.OutputBusyError):
            with exclusive_dir(tmp_path / "c", "again"):
                pass


def test_umask_is_read_without_changing_it():
    import os

    from cimc.utils import _umask

    before = os.umask(0o027)
    try:
        assert _umask() == 0o027 and _umask() == 0o027
    finally:
        os.umask(before)


def test_the_command_line_is_logged_but_not_for_a_help_request(monkeypatch):
    """Every run's log opens with its command line; `cimc cluster --help` prints the help alone."""
    import sys

    for argv, logged in ((["cluster-config", "--method", "kmeans"], True), (["cluster", "--help"], False),
                         (["cluster", "--input", "x.npy", "-h"], False)):
        monkeypatch.setattr(sys, "argv", ["cimc", *argv])
        result = CliRunner().invoke(cli, argv, catch_exceptions=False)  # the log goes to the runner's stderr
        assert result.exit_code == 0, result.output
        assert ("command: cimc " + " ".join(argv) in result.output) == logged, result.output
