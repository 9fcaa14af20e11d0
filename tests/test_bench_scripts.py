"""The speed benchmarks run end to end at tiny sizes, and what they print agrees with scikit-learn.

Each bench script times ours against scikit-learn on the same data and prints both results; on all points the
two must agree (the benchmark's own correctness check), and a crash at a small size (a subsample larger than
N, say) would otherwise surface only when someone runs it by hand.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(BENCH.parent)}
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows of ``text`` by their first cell: {name: [the other cells]}."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_metrics_speed_values_equal_sklearn_and_a_sample_larger_than_n_is_clamped():
    # --sklearn-ami-sample default 100,000 > N: it used to crash in rng.choice
    rows = table_rows(run_bench("metrics_speed.py", "--num-items", "3000", "--num-speakers", "30",
                                "--num-clusters", "25", "--dim", "12"))
    assert "ami (3,000 items)" in rows and "silhouette (3,000 points)" in rows
    compared = 0
    for name, cells in rows.items():
        ours, ref = cells[3], cells[4]
        if ours and ref and name != "metric":
            assert float(ours) == pytest.approx(float(ref), rel=1e-6, abs=1e-9), name
            compared += 1
    assert compared == 8  # nmi, homogeneity, completeness, fmi, ami, silhouette, calinski_harabasz, davies_bouldin


def test_kmeans_speed_counts_iterations_and_reaches_sklearns_inertia():
    rows = table_rows(run_bench("kmeans_speed.py", "--num-items", "3000", "--dim", "10", "--num-clusters", "20",
                                "--iters", "100", "--sklearn-items", "0", "--device", "cpu"))
    ours = rows["ours (torch, cpu)"]
    ref = next(cells for name, cells in rows.items() if name.startswith("scikit-learn"))
    assert int(ours[1]) == int(ref[1]) < 100  # both converge before --iters, after the same number of iterations
    assert float(ours[3]) == pytest.approx(float(ref[3]), rel=1e-3)


def test_kmeans_speed_tf32_row_on_a_cpu_repeats_the_float32_partition():
    """--tf32 turns on a CUDA-only switch: on a CPU the second run must give the same labels, and the row's two
    float64 inertias (each partition to its own means) must then be equal and match the float32 row's."""
    text = run_bench("kmeans_speed.py", "--num-items", "3000", "--dim", "10", "--num-clusters", "20", "--iters",
                     "100", "--sklearn-items", "0", "--device", "cpu", "--tf32")
    rows = table_rows(text)
    tf32 = next(name for name in rows if name.startswith("ours, TF32"))
    assert "labels differing: 0.00%" in tf32
    tf32_inertia = float(tf32.split("TF32 ")[2].split(",")[0])
    float32_inertia = float(tf32.split("float32 ")[1].split(")")[0])
    assert tf32_inertia == float32_inertia
    # converged, so the final centres are the means of the final labels: the float32 row's inertia, to its rounding
    assert tf32_inertia == pytest.approx(float(rows["ours (torch, cpu)"][3]), abs=1e-4)


def test_gmm_speed_reaches_sklearns_log_likelihood():
    rows = table_rows(run_bench("gmm_speed.py", "--num-items", "2000", "--dim", "8", "--num-clusters", "10",
                                "--iters", "3", "--sklearn-items", "0", "--device", "cpu"))
    assert float(rows["ours (torch, cpu)"][2]) == pytest.approx(float(rows["scikit-learn"][2]), abs=1e-3)


def test_ahc_speed_builds_sklearns_knn_edges():
    rows = table_rows(run_bench("ahc_speed.py", "--num-items", "2000", "--num-clusters", "20", "--dim", "20",
                                "--device", "cpu"))
    assert rows["2,000"][3].startswith("yes")


def test_gpu_cluster_script_runs_only_the_asked_whole_runs(tmp_path):
    """bench/gpu_cluster.sh at SIZE=tiny: DEFAULTS=0 leaves out the defaults' run (a device call then holds only
    the new runs), and DEFAULTS=0 with nothing in ALSO_SET stops before any work."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "SIZE": "tiny", "OUT": str(tmp_path),
           "DEFAULTS": "0", "ALSO_SET": "seed=1; lam=0.4 seed=1"}
    done = subprocess.run(["bash", str(BENCH / "gpu_cluster.sh")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = table_rows(done.stdout.split("whole runs")[-1])
    assert set(runs) == {"run", "seed=1", "lam=0.4 seed=1"}
    recorded = [json.loads(line)["set"] for line in (tmp_path / "full_runs.jsonl").read_text().splitlines()]
    assert recorded == ["seed=1", "lam=0.4 seed=1"]
    refused = subprocess.run(["bash", str(BENCH / "gpu_cluster.sh")], capture_output=True, text=True,
                             env={**env, "ALSO_SET": " ; "}, timeout=60)
    assert refused.returncode == 1 and "runs nothing" in refused.stderr
    assert (tmp_path / "full_runs.jsonl").read_text().count("\n") == 2  # refused before clearing the last runs


def test_gpu_ivector_script_at_tiny_size_agrees_with_the_numpy_baseline():
    """bench/gpu_ivector.sh with IVECTOR_BENCH_TINY=1: both UBM kinds run, the batched torch i-vectors match
    the per-utterance numpy extraction the script compares them with, and the TF32 comparison runs."""
    env = {**os.environ, "PYTHON": sys.executable, "IVECTOR_BENCH_TINY": "1"}
    done = subprocess.run(["bash", str(BENCH / "gpu_ivector.sh")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = table_rows(done.stdout)
    assert {"cimc batched torch", "numpy per utterance", "cimc batched torch (full-cov UBM) TF32"} <= set(rows)
    difference = float(done.stdout.split("max |difference| / max |i-vector|:")[1].split()[0])
    assert difference < 1e-3
    # TF32 is a CUDA switch: on a CPU the float32 rerun it compares with gives the same i-vectors
    assert "cosine >= 1.000000, max |difference| / max |i-vector| 0.00e+00" in done.stdout


def test_gpu_sv_script_names_the_missing_packages_and_the_wheel_script(tmp_path):
    """bench/gpu_sv.sh on a Python without soundfile / lhotse (the GPU machine's image) and no .whl/ stops
    before any work and says how to bring them."""
    (tmp_path / "bench").mkdir()
    script = tmp_path / "bench" / "gpu_sv.sh"
    for name in ("gpu_sv.sh", "python_env.sh"):  # a checkout without .whl/: the script and what it sources
        (tmp_path / "bench" / name).write_text((BENCH / name).read_text())
    bare_python = tmp_path / "python"  # fails the import check as the image's python3 does
    bare_python.write_text('#!/bin/sh\n[ "$1" = -c ] && case "$2" in *soundfile*) exit 1;; esac\nexit 0\n')
    bare_python.chmod(0o755)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": str(bare_python), "SV_BENCH_SIZE": "tiny"})
    assert done.returncode == 1
    assert "soundfile" in done.stderr and "bench/device_wheels.sh" in done.stderr
    assert "==" not in done.stdout  # no benchmark started
