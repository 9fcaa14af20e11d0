"""Readers of vectors, label files and YAML configs: a file they cannot read is named, with what was expected."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from cimc.cluster.labels import read_label_file, write_labels
from cimc.config import ConfigError, load_config
from cimc.vectors import load_vectors, save_vectors


def saved(tmp_path, n: int = 3, dim: int = 4):
    """``tmp_path/iv`` .npy/.ids/.ark/.scp of n vectors of dim values, utterances u0..u{n-1}."""
    ids = [f"u{i}" for i in range(n)]
    save_vectors(tmp_path / "iv", ids, np.arange(n * dim, dtype=np.float32).reshape(n, dim), kaldi=True)
    return ids


def test_empty_npy_is_named(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npy: the file is empty; expected a \.npy matrix"):
        load_vectors(tmp_path / "empty.npy")


def test_truncated_npy_is_named(tmp_path):
    saved(tmp_path)
    data = (tmp_path / "iv.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-5])
    with pytest.raises(ValueError, match=r"cut\.npy: cannot read it as a \.npy matrix"):
        load_vectors(tmp_path / "cut.npy")


def test_npz_archive_named_npy_is_named(tmp_path):
    np.savez(tmp_path / "arch.npz", x=np.zeros((2, 2)))
    (tmp_path / "arch.npz").rename(tmp_path / "arch.npy")
    with pytest.raises(ValueError, match=r"arch\.npy: .*\.npz archive"):
        load_vectors(tmp_path / "arch.npy")


def test_truncated_ark_names_the_file_and_utterance(tmp_path):
    saved(tmp_path)
    data = (tmp_path / "iv.ark").read_bytes()
    (tmp_path / "cut.ark").write_bytes(data[:-3])  # the last vector, u2, loses its last bytes
    with pytest.raises(ValueError, match=r"cut\.ark: cannot read utterance 'u2' \(entry 3\) as a Kaldi vector"):
        load_vectors(tmp_path / "cut.ark")


def test_text_that_is_not_an_ark_is_named(tmp_path):
    (tmp_path / "words.ark").write_text("hello world\n")
    with pytest.raises(ValueError, match=r"words\.ark: cannot read utterance 'hello' \(entry 1\) as a Kaldi vector"):
        load_vectors(tmp_path / "words.ark")


def test_text_ark_still_reads(tmp_path):
    (tmp_path / "t.ark").write_text("a [ 1 2 3 ]\nb [ 4 5 6 ]\n")
    ids, x = load_vectors(tmp_path / "t.ark")
    assert ids == ["a", "b"] and np.array_equal(x, [[1, 2, 3], [4, 5, 6]])


def test_binary_scp_and_ids_are_named(tmp_path):
    saved(tmp_path)
    (tmp_path / "bin.scp").write_bytes(b"\x93NUMPY\x00\xff")
    with pytest.raises(ValueError, match=r"bin\.scp: not a text file"):
        load_vectors(tmp_path / "bin.scp")
    (tmp_path / "iv.ids").write_bytes(b"\x93NUMPY\x00\xff")
    with pytest.raises(ValueError, match=r"iv\.ids: not a text file"):
        load_vectors(tmp_path / "iv.npy")


@pytest.mark.parametrize("name", ["xx.npz", "xx.txt"])
def test_unsupported_vectors_suffix_names_the_given_file_and_the_accepted_ones(tmp_path, name):
    np.save(tmp_path / "xx.npy", np.zeros((2, 2), dtype=np.float32))  # not what was asked for
    (tmp_path / name).write_bytes(b"anything")
    with pytest.raises(ValueError, match=rf"{re.escape(name)}: unsupported vectors file suffix "
                                         r"'\.\w+'; give PREFIX\.npy \(with PREFIX\.ids\), PREFIX\.ark or PREFIX\.scp"):
        load_vectors(tmp_path / name)


def test_a_prefix_or_ids_file_still_finds_the_npy(tmp_path):
    ids = saved(tmp_path)
    assert load_vectors(tmp_path / "iv")[0] == ids
    assert load_vectors(tmp_path / "iv.ids")[0] == ids


def test_float64_beyond_float32_is_said_to_overflow(tmp_path):
    x = np.zeros((3, 2))
    x[1, 0] = 1e39
    np.save(tmp_path / "big.npy", x)
    (tmp_path / "big.ids").write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match=r"big\.npy: the vector of utterance 'b' \(row 1\) overflows float32 "
                                         r"\(1e\+39; float32 holds magnitudes up to 3\.4e\+38\)"):
        load_vectors(tmp_path / "big.npy")
    import kaldiio

    with kaldiio.WriteHelper(f"ark:{tmp_path / 'big.ark'}") as writer:
        for utt, row in zip("abc", x):
            writer(utt, row)  # float64: a Kaldi double vector
    with pytest.raises(ValueError, match=r"big\.ark: the vector of utterance 'b' \(row 1\) overflows float32"):
        load_vectors(tmp_path / "big.ark")
    x[2, 1] = np.nan  # a NaN elsewhere does not hide the overflow, nor is the overflow called NaN
    np.save(tmp_path / "big.npy", x)
    with pytest.raises(ValueError, match=r"row 1\) overflows float32"):
        load_vectors(tmp_path / "big.npy")
    x[1, 0] = np.inf
    np.save(tmp_path / "big.npy", x)
    with pytest.raises(ValueError, match=r"utterance 'b' \(row 1\) holds NaN or inf; 2 of 3 vectors do"):
        load_vectors(tmp_path / "big.npy")


@pytest.mark.filterwarnings("ignore:loadtxt")  # kaldiio parsing an empty text vector
def test_vectors_of_dimension_zero_are_named(tmp_path):
    np.save(tmp_path / "d0.npy", np.zeros((4, 0), dtype=np.float32))
    with pytest.raises(ValueError, match=r"d0\.npy: the vectors have dimension 0 \(shape \(4, 0\)\)"):
        load_vectors(tmp_path / "d0.npy")
    (tmp_path / "d0.ark").write_text("a [ ]\nb [ ]\n")
    with pytest.raises(ValueError, match=r"d0\.ark: the vectors have dimension 0"):
        load_vectors(tmp_path / "d0.ark")
    np.save(tmp_path / "n0.npy", np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"n0\.npy: no vectors"):
        load_vectors(tmp_path / "n0.npy")


def test_binary_label_file_is_named(tmp_path):
    write_labels(tmp_path, ["a", "b"], np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels\.npy: not a text file of 'utterance label' lines.*"
                                         r"give the labels\.txt beside it"):
        read_label_file(tmp_path / "labels.npy")
    (tmp_path / "utt2spk").write_bytes(b"a \xff\xfe\n")
    with pytest.raises(ValueError, match=r"utt2spk: not a text file of 'utterance label' lines"):
        read_label_file(tmp_path / "utt2spk")
    assert read_label_file(tmp_path / "labels.txt") == {"a": "0", "b": "1"}


@dataclasses.dataclass
class Small:
    epochs: list[int] = dataclasses.field(default_factory=list)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: [2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:2:1: invalid YAML \(while parsing a flow sequence\): "
                                          r"expected ',' or '\]', but got '<stream end>'"):
        load_config(Small, tmp_path / "bad.yaml")


def test_binary_config_file_is_named(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\x93NUMPY\x00\xff")
    with pytest.raises(ConfigError, match=r"bin\.yaml: not a text file"):
        load_config(Small, tmp_path / "bin.yaml")


def test_yaml_syntax_error_in_an_override_is_named():
    with pytest.raises(ConfigError, match=r"override 'epochs=\[2': invalid YAML"):
        load_config(Small, None, ["epochs=[2"])
