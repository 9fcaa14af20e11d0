"""The shared core: typed configs, atomic writes, vector I/O, trials and cosine scoring."""
from __future__ import annotations

import dataclasses
import os
import stat
import typing

import numpy as np
import pytest
import yaml

from cimc.config import ConfigError, changed_settings, load_config, save_config
from cimc.data.trials import Trial, read_trials, write_trials
from cimc.scoring import cosine_scores
from cimc.utils import atomic_path, mark_done, warn_if_newer
from cimc.vectors import load_vectors, save_vectors


@dataclasses.dataclass
class Optim:
    lr: float = 0.01
    momentum: float = 0.9


@dataclasses.dataclass
class Toy:
    epochs: int = 150
    losses: tuple[str, ...] = ("imsat",)
    optim: Optim = dataclasses.field(default_factory=Optim)


def test_config_yaml_overrides_and_round_trip(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text("epochs: 3\nlosses: [imsat, supcon]\noptim:\n  lr: 1\n")
    config = load_config(Toy, path, ["optim.momentum=0.5", "epochs=4"])
    assert config == Toy(epochs=4, losses=("imsat", "supcon"), optim=Optim(lr=1.0, momentum=0.5))
    assert isinstance(config.optim.lr, float)
    save_config(config, tmp_path / "resolved.yaml")
    assert load_config(Toy, tmp_path / "resolved.yaml") == config


@dataclasses.dataclass
class ToyRun:
    RUN_ONLY_FIELDS: typing.ClassVar[frozenset[str]] = frozenset({"device"})

    lr: float = 0.01
    losses: tuple[str, ...] = ("imsat",)
    device: str = "auto"


class ToyRunLrAddedLater(ToyRun):
    BEFORE_FIELD_EXISTED: typing.ClassVar[dict] = {"lr": 0.0}  # runs saved before ``lr`` existed ran at 0


def test_changed_settings_reads_a_saved_config_and_skips_run_only_fields(tmp_path):
    save_config(ToyRun(lr=0.1, losses=("imsat", "mixup"), device="cpu"), tmp_path / "run.yaml")
    saved = yaml.safe_load((tmp_path / "run.yaml").read_text())
    assert changed_settings(saved, ToyRun(lr=0.1, losses=("imsat", "mixup"), device="cuda")) == {}  # run-only
    assert changed_settings(saved, ToyRun(lr=0.1)) == {"losses": (["imsat", "mixup"], ["imsat"])}
    # a field the class gained since (absent from the file) ran at its default; one it lost is ignored
    assert changed_settings({"lr": 0.1, "gone": 1}, ToyRun(lr=0.1)) == {}
    assert changed_settings({"lr": 0.1}, ToyRun(lr=0.1, losses=("vat",))) == {"losses": (["imsat"], ["vat"])}
    # a field added with a default other than what runs did before it existed: those runs are compared at that value
    assert changed_settings({"losses": ["imsat"]}, ToyRunLrAddedLater(lr=0.01)) == {"lr": (0.0, 0.01)}
    assert changed_settings({"losses": ["imsat"]}, ToyRunLrAddedLater(lr=0.0)) == {}
    assert changed_settings({"lr": 0.01, "losses": ["imsat"]}, ToyRunLrAddedLater(lr=0.01)) == {}  # saved: as saved
    # nested fields by dotted name, from the nested YAML of save_config
    save_config(Toy(), tmp_path / "toy.yaml")
    nested = yaml.safe_load((tmp_path / "toy.yaml").read_text())
    assert changed_settings(nested, Toy(optim=Optim(momentum=0.5))) == {"optim.momentum": (0.9, 0.5)}


def test_warn_if_newer_names_an_input_changed_after_the_outputs_were_done(tmp_path, caplog):
    import os

    vectors, out = tmp_path / "x.npy", tmp_path / "out"
    vectors.write_text("v1")
    mark_done(out)
    os.utime(out / ".done", (1_000, 1_000))
    os.utime(vectors, (2_000, 2_000))
    with caplog.at_level("WARNING", logger="cimc.utils"):
        warn_if_newer(vectors, out)
    assert f"{vectors} is newer than the finished {out}" in caplog.text
    caplog.clear()
    os.utime(vectors, (500, 500))
    with caplog.at_level("WARNING", logger="cimc.utils"):
        warn_if_newer(vectors, out)
    assert caplog.text == ""


def test_config_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['epoch'\]"):
        load_config(Toy, path)
    with pytest.raises(ConfigError, match="lrr"):
        load_config(Toy, None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Toy, tmp_path / "missing.yaml")


@dataclasses.dataclass
class Typed:
    epochs: int = 150
    lr: float = 0.01
    progress: bool = True
    device: str = "auto"
    betas: tuple[float, float] = (0.9, 0.999)
    losses: tuple[str, ...] = ("imsat",)
    threshold: float | None = None


@pytest.mark.parametrize(
    "override, field, expected",
    [
        ("lr=2e-3", "lr", 0.002),  # YAML 1.1 (PyYAML) reads 2e-3 as a string
        ("lr=1", "lr", 1.0),
        ("betas=[0, 1]", "betas", (0.0, 1.0)),
        ("losses=supcon", "losses", ("supcon",)),
        ("losses=[imsat, mixup]", "losses", ("imsat", "mixup")),
        ("threshold=null", "threshold", None),
        ("threshold=0.5", "threshold", 0.5),
        ("device=cuda:1", "device", "cuda:1"),
    ],
)
def test_config_override_is_converted_to_the_field_type(override, field, expected):
    value = getattr(load_config(Typed, None, [override]), field)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr=abc", r"Typed\.lr: expected float, got 'abc'"),
        ("lr=true", r"Typed\.lr: expected float"),
        ("epochs=1e4", r"Typed\.epochs: expected int, got '1e4'"),
        ("epochs=2.5", r"Typed\.epochs: expected int"),
        ("progress=1", r"Typed\.progress: expected bool"),
        ("device=", r"Typed\.device: expected str, got None \(an empty value"),
        ("betas=[1, 2, 3]", r"Typed\.betas: expected 2 values"),
        ("losses=[imsat, 3]", r"Typed\.losses\[1\]: expected str, got 3"),
        ("threshold=[1]", r"Typed\.threshold: expected float"),
    ],
)
def test_config_value_of_the_wrong_type_is_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Typed, None, [override])


def test_config_file_value_of_the_wrong_type_names_the_file(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text("optim:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"toy\.yaml\.optim\.lr: expected float, got 'fast'"):
        load_config(Toy, path)
    path.write_text("optim: 0.1\n")
    with pytest.raises(ConfigError, match=r"toy\.yaml\.optim: expected a mapping of Optim fields"):
        load_config(Toy, path)


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    out = tmp_path / "labels.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash")
    assert out.read_text() == "old"
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_path_gives_the_mode_a_plain_open_would(tmp_path, umask):
    """Outputs on a shared exp/ must be as readable as those of open(): 0666 less the umask, not mkstemp's 0600."""
    old = os.umask(umask)
    try:
        (tmp_path / "plain.txt").write_text("x")
        with atomic_path(tmp_path / "atomic.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("kaldi", [False, True])
def test_vectors_round_trip(tmp_path, kaldi):
    rng = np.random.default_rng(0)
    ids = [f"utt{i}" for i in range(5)]
    x = rng.standard_normal((5, 3)).astype(np.float32)
    save_vectors(tmp_path / "iv", ids, x, kaldi=kaldi)
    got_ids, got = load_vectors(tmp_path / "iv.npy")
    assert got_ids == ids and np.array_equal(got, x)
    if kaldi:
        for kaldi_file in ("iv.scp", "iv.ark"):
            kaldi_ids, kaldi_x = load_vectors(tmp_path / kaldi_file)
            assert kaldi_ids == ids and np.array_equal(kaldi_x, x)


def test_vectors_bad_shapes_are_named(tmp_path):
    with pytest.raises(ValueError, match="3 ids"):
        save_vectors(tmp_path / "x", ["a", "b", "c"], np.zeros((2, 4)))
    np.save(tmp_path / "y.npy", np.zeros((2, 4)))
    (tmp_path / "y.ids").write_text("a\n")
    with pytest.raises(ValueError, match="y.ids: 1 ids for 2 rows"):
        load_vectors(tmp_path / "y.npy")


def test_vectors_bad_kaldi_entries_are_named(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_vectors(tmp_path / "iv", ["a", "b", "c"], x, kaldi=True)
    lines = (tmp_path / "iv.scp").read_text().splitlines()
    cases = {  # scp text -> the error that names its line, utterance or file
        "\n".join([lines[0], "d missing.ark:12", lines[1]]): r"bad\.scp:2: cannot read utterance 'd' from 'missing\.ark:12'",
        "\n".join([lines[0], "e"]): r"bad\.scp:2: expected 'utterance rxspecifier', got 'e'",
        "\n".join([lines[0], lines[1], lines[0]]): r"bad\.scp: 1 duplicate utterance id\(s\): a$",
    }
    for text, message in cases.items():
        (tmp_path / "bad.scp").write_text(text + "\n")
        with pytest.raises(ValueError, match=message):
            load_vectors(tmp_path / "bad.scp")
    (tmp_path / "blank.scp").write_text("\n".join(lines) + "\n\n")  # blank lines are skipped
    assert load_vectors(tmp_path / "blank.scp")[0] == ["a", "b", "c"]

    import kaldiio

    with kaldiio.WriteHelper(f"ark:{tmp_path / 'mixed.ark'}") as writer:
        writer("a", x[0])
        writer("b", x[1, :3])
    with pytest.raises(ValueError, match=r"mixed\.ark: utterance 'b' has 3 values, 'a' has 4"):
        load_vectors(tmp_path / "mixed.ark")
    (tmp_path / "iv.ids").write_text("a\nb\na\n")
    with pytest.raises(ValueError, match=r"iv\.ids: 1 duplicate utterance id\(s\): a$"):
        load_vectors(tmp_path / "iv.npy")


@pytest.mark.parametrize("fmt", ["npy", "scp", "ark"])
def test_vectors_with_nan_or_inf_are_named_by_utterance(tmp_path, fmt):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    x[1, 2], x[2, 0] = np.nan, -np.inf
    save_vectors(tmp_path / "iv", ["a", "b", "c"], x, kaldi=True)
    with pytest.raises(ValueError, match=rf"iv\.{fmt}: the vector of utterance 'b' \(row 1\) holds NaN or inf; "
                                         r"2 of 3 vectors do"):
        load_vectors(tmp_path / f"iv.{fmt}")
    big = np.full((2, 4), np.finfo(np.float32).max, dtype=np.float32)  # finite, though their float32 sum is not
    np.save(tmp_path / "big.npy", big)
    assert np.array_equal(load_vectors(tmp_path / "big.npy")[1], big)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_rows_matches_the_elementwise_mask(dtype):
    from cimc.vectors import nonfinite_rows

    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 7)).astype(dtype)
    x[rng.integers(0, 50, 8), rng.integers(0, 7, 8)] = rng.choice([np.nan, np.inf, -np.inf], 8)
    x[3] = np.finfo(dtype).max  # finite values whose sum overflows in their own precision
    x[4, :2] = [np.inf, -np.inf]
    assert np.array_equal(nonfinite_rows(x), np.flatnonzero(~np.isfinite(x).all(axis=1)))


def test_vectors_file_that_is_not_a_real_matrix_is_named(tmp_path):
    np.save(tmp_path / "words.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"words\.npy: expected a matrix of real numbers, got dtype <U1"):
        load_vectors(tmp_path / "words.npy")
    (tmp_path / "text.npy").write_text("not numpy\n")
    with pytest.raises(ValueError, match=r"text\.npy: cannot read it as a \.npy matrix"):
        load_vectors(tmp_path / "text.npy")


@dataclasses.dataclass
class Checked:
    rate: float = 0.5

    def __post_init__(self):
        from cimc.config import require

        require(self, "rate", 0 <= self.rate <= 1, "in [0, 1]")


def test_config_own_checks_name_the_file_or_class(tmp_path):
    with pytest.raises(ConfigError, match=r"^Checked: rate must be in \[0, 1\], got 2\.0$"):
        load_config(Checked, None, ["rate=2"])
    (tmp_path / "c.yaml").write_text("rate: -1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: rate must be in \[0, 1\], got -1\.0$"):
        load_config(Checked, tmp_path / "c.yaml")


def test_resolve_device_says_when_cuda_is_missing(monkeypatch, caplog):
    import torch

    from cimc.utils import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"device 'cuda:1': torch .* sees no CUDA GPU"):
        resolve_device("cuda:1")
    assert resolve_device("cuda", cpu_fallback=True) == "cpu" and "CUDA is not available" in caplog.text


def test_trials_round_trip_and_errors(tmp_path):
    trials = [Trial("a", "b", True), Trial("a", "c", False)]
    write_trials(tmp_path / "trials.txt", trials)
    assert (tmp_path / "trials.txt").read_text() == "a b target\na c nontarget\n"
    assert read_trials(tmp_path / "trials.txt") == trials
    (tmp_path / "bad.txt").write_text("a b target\na c maybe\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        read_trials(tmp_path / "bad.txt")


def test_cosine_scores_against_naive():
    rng = np.random.default_rng(1)
    ids = ["a", "b", "c"]
    x = rng.standard_normal((3, 4))
    mean = x.mean(0)
    trials = [Trial("a", "b", True), Trial("c", "a", False)]
    got = cosine_scores(ids, x, trials, mean=mean)
    def cos(u, v):
        return float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))
    want = [cos(x[0] - mean, x[1] - mean), cos(x[2] - mean, x[0] - mean)]
    assert np.allclose(got, want)
    with pytest.raises(KeyError, match="zz"):
        cosine_scores(ids, x, [Trial("a", "zz", True)])


def test_parse_named_paths_keeps_order_and_names_bad_items():
    import click

    from cimc.cli_options import parse_named_paths

    got = parse_named_paths(["cimc=a/results.json", "k=means=b.json"], "--system")
    assert list(got.items()) == [("cimc", "a/results.json"), ("k", "means=b.json")]
    with pytest.raises(click.BadParameter, match="'b.rttm' is not NAME=RTTM"):
        parse_named_paths(["a=a.rttm", "b.rttm"], "--hyp", "RTTM")
