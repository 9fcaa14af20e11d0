"""bench/truth_start.py: a run from the true labels starts from them, a run from its own start does not."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs


@pytest.fixture(scope="module")
def truth_start(bench_module):
    return bench_module("truth_start")


def test_two_steps_from_the_truth_keep_its_unequal_sizes(truth_start):
    """Overlapping blobs of 50, 30 and 10: fitted to the truth, two training steps leave it in place (ACC 1.0, the
    sizes 50 / 30 / 10); the same two steps from the usual near-uniform start are far from it."""
    X, y = make_blobs([50, 30, 10], n_features=8, random_state=0, cluster_std=3.0)
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    short = (("min_steps", 2), ("epochs", 1))
    kept = truth_start.train(X, y, "imsat", 0, short, from_truth=True, fit_steps=200)
    assert kept["acc"] == 1.0 and kept["sizes"] == [50, 30, 10]
    own = truth_start.train(X, y, "imsat", 0, short, from_truth=False, fit_steps=200)
    assert own["acc"] < 0.95 and own["sizes"] != [50, 30, 10]
    assert np.isfinite(kept["loss"]) and np.isfinite(own["loss"])
