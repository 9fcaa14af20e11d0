"""bench/seed_selection.py: the expected best-of-k by loss, against enumerating every k-subset."""
from __future__ import annotations

import itertools

import numpy as np
import pytest


@pytest.fixture(scope="module")
def seed_selection(bench_module):
    return bench_module("seed_selection")


def test_best_of_k_matches_enumerating_every_subset(seed_selection):
    rng = np.random.default_rng(0)
    losses, acc = rng.normal(size=7), rng.uniform(size=7)
    for k in range(1, 8):
        naive = np.mean([acc[min(subset, key=lambda i: losses[i])] for subset in itertools.combinations(range(7), k)])
        assert seed_selection.best_of_k(losses, acc, k) == pytest.approx(naive, abs=1e-12)
    assert seed_selection.best_of_k(losses, acc, 1) == pytest.approx(acc.mean())
    assert seed_selection.best_of_k(losses, acc, 7) == acc[np.argmin(losses)]
    with pytest.raises(ValueError, match="k=8"):
        seed_selection.best_of_k(losses, acc, 8)


def test_summary_by_hand(seed_selection):
    # losses 3, 1, 2 with ACC 0.5, 0.9, 0.7: a lower loss always goes with a higher ACC (rho -1);
    # best of 2: subsets {0,1} -> 0.9, {0,2} -> 0.7, {1,2} -> 0.9, mean 0.833
    records = [{"data": "d", "variant": "m", "seed": s, "acc": a, "nmi": a, "final_loss": l}
               for s, (l, a) in enumerate([(3.0, 0.5), (1.0, 0.9), (2.0, 0.7)])]
    row = seed_selection.summary(records, (1, 2, 3, 4)).splitlines()[2]
    assert row == "| d | m | 3 | -1.00 | -1.00 | 0.700 / 0.700 | 0.833 / 0.833 | 0.900 / 0.900 |  |"
