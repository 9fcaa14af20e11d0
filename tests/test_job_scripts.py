"""utils/run.pl, utils/slurm.pl, utils/queue.pl (Kaldi job arrays) and utils/parse_options.sh.

The cluster launchers are run against stand-in ``sbatch`` / ``qsub`` executables placed first on PATH:
they record their arguments and run the job script once per array index with the scheduler's task
variable set, as the real schedulers would on a compute node.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[1] / "utils"
LAUNCHERS = ["run.pl", "slurm.pl", "queue.pl"]

FAKE_SBATCH = r"""#!/usr/bin/env bash
# Stand-in for Slurm's sbatch --wait: run each array task locally, then exit non-zero if one failed.
printf '%s\n' "$@" > "$FAKE_DIR/sbatch.args"
for a in "$@"; do case $a in --array=*) array=${a#--array=} ;; esac; done
script=${!#}; range=${array%%\%*}; rc=0
for ((i=${range%-*}; i<=${range#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i bash "$script" || rc=1; done
echo "Submitted batch job 42"; exit $rc
"""

FAKE_QSUB = r"""#!/usr/bin/env bash
# Stand-in for SGE's qsub -sync y.
printf '%s\n' "$@" > "$FAKE_DIR/qsub.args"
prev=; for a in "$@"; do [ "$prev" = -t ] && range=$a; prev=$a; done
script=${!#}; rc=0
for ((i=${range%:*}; i<=${range#*:}; i++)); do SGE_TASK_ID=$i bash "$script" || rc=1; done
exit $rc
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name, text in [("sbatch", FAKE_SBATCH), ("qsub", FAKE_QSUB)]:
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    return {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "FAKE_DIR": str(fake), "JOB_STATUS_WAIT": "0"}


def launch(launcher: str, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(UTILS / launcher), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_job_array_substitutes_and_logs(launcher, tmp_path, env):
    result = launch(launcher, ["JOB=1:3", "log/x.JOB.log", "echo", "task", "JOB", r"|", "tr", "a-z", "A-Z"],
                    tmp_path, env)
    assert result.returncode == 0, result.stderr
    for task in (1, 2, 3):
        lines = (tmp_path / f"log/x.{task}.log").read_text().splitlines()
        assert lines[0] == f"# echo task {task} | tr a-z A-Z"
        assert lines[1].startswith("# Started at")
        assert f"TASK {task}" in lines  # the pipe ran as a pipe, JOB was replaced in the command
        assert lines[-1].startswith("# Ended (code 0)")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_job_array_failure_names_failed_logs(launcher, tmp_path, env):
    result = launch(launcher, ["JOB=1:3", "log/y.JOB.log", "bash", "-c", "echo out JOB; exit $((JOB % 2 * 7))"],
                    tmp_path, env)
    assert result.returncode == 1
    assert "log/y.1.log" in result.stderr and "log/y.3.log" in result.stderr
    assert "log/y.2.log" not in result.stderr
    assert "2 / 3 failed" in result.stderr
    assert (tmp_path / "log/y.1.log").read_text().splitlines()[-1].startswith("# Ended (code 7)")
    assert "out 2" in (tmp_path / "log/y.2.log").read_text()


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_single_job_keeps_quoted_arguments(launcher, tmp_path, env):
    result = launch(launcher, ["log/z.log", "printf", r"%s\n", "a b", "it's"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "log/z.log").read_text()
    assert "a b\nit's\n" in text


def test_run_pl_bounds_parallel_jobs(tmp_path, env):
    # Each task records how many tasks are running when it starts; with 6 tasks of 0.3 s and a bound
    # of 2, at most 2 (and, since they are started together, exactly 2) run at once.
    (tmp_path / "running").mkdir()
    task = "touch running/JOB; ls running | wc -l > count.JOB; sleep 0.3; rm running/JOB"
    result = launch("run.pl", ["--max-jobs-run", "2", "JOB=1:6", "log/p.JOB.log", "bash", "-c", task],
                    tmp_path, env)
    assert result.returncode == 0, result.stderr
    counts = [int((tmp_path / f"count.{i}").read_text()) for i in range(1, 7)]
    assert max(counts) == 2


def test_slurm_and_sge_options_reach_the_scheduler(tmp_path, env):
    conf = tmp_path / "sched.conf"
    conf.write_text("# site options\n--partition=cpu\n")
    args = ["--mem", "4G", "--gpu", "1", "--num-threads", "3", "--max-jobs-run", "2", "--config", str(conf),
            "JOB=2:4", "log/s.JOB.log", "true"]
    assert launch("slurm.pl", args, tmp_path, env).returncode == 0
    sbatch = (Path(env["FAKE_DIR"]) / "sbatch.args").read_text().splitlines()
    for option in ["--wait", "--array=2-4%2", "--mem=4G", "--gres=gpu:1", "--cpus-per-task=3", "--partition=cpu"]:
        assert option in sbatch
    assert sbatch[-1].endswith("log/q/s.sh")

    conf.write_text("-q all.q\n")
    assert launch("queue.pl", args, tmp_path, env).returncode == 0
    qsub = (Path(env["FAKE_DIR"]) / "qsub.args").read_text().splitlines()
    joined = " ".join(qsub)
    for option in ["-sync y", "-t 2:4", "-tc 2", "-l mem_free=4G,ram_free=4G", "-l gpu=1", "-pe smp 3", "-q all.q"]:
        assert option in joined
    assert all((tmp_path / f"log/s.{i}.log").exists() for i in (2, 3, 4))


def test_cluster_task_that_never_ran_is_a_failure(tmp_path, env):
    # A scheduler that runs only the first task (e.g. the others were killed) leaves no exit status
    # for the rest; they must count as failed, not pass silently.
    fake = Path(env["FAKE_DIR"]) / "sbatch"
    fake.write_text(FAKE_SBATCH.replace("i<=${range#*-}", "i<=${range%-*}"))
    result = launch("slurm.pl", ["JOB=1:2", "log/k.JOB.log", "true"], tmp_path, env)
    assert result.returncode == 1
    assert "task 2 failed (no exit status" in result.stderr and "log/k.2.log" in result.stderr


def test_submission_failure_is_reported(tmp_path, env):
    (Path(env["FAKE_DIR"]) / "qsub").write_text("#!/bin/sh\necho 'qsub: unknown queue' >&2\nexit 2\n")
    result = launch("queue.pl", ["JOB=1:2", "log/f.JOB.log", "true"], tmp_path, env)
    assert result.returncode == 1
    assert "qsub failed (exit code 2)" in result.stderr
    assert "unknown queue" in (tmp_path / "log/q/f.submit.log").read_text()


@pytest.mark.parametrize("args, message", [
    (["--bogus", "1", "log/a.log", "true"], "unknown option --bogus"),
    (["JOB=3:1", "log/a.JOB.log", "true"], "empty job range"),
    (["JOB=1:2", "log/a.log", "true"], "must contain JOB"),
    (["--max-jobs-run", "0", "log/a.log", "true"], "positive integer"),
    (["log/a.log"], "need a log file and a command"),
])
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_bad_arguments_are_named(launcher, args, message, tmp_path, env):
    result = launch(launcher, args, tmp_path, env)
    assert result.returncode == 1
    assert message in result.stderr


PARSE_SCRIPT = """#!/usr/bin/env bash
# A test recipe.
set -euo pipefail
stage=0
stop_stage=7
nj=4
config_value=none
. {utils}/parse_options.sh
echo "$stage $stop_stage $nj $config_value $*"
"""


def run_parse(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "recipe.sh"
    script.write_text(PARSE_SCRIPT.format(utils=UTILS))
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=30)


def test_parse_options_sets_existing_variables(tmp_path):
    assert run_parse(tmp_path, "--stage", "3", "--stop-stage", "5").stdout == "3 5 4 none \n"
    assert run_parse(tmp_path, "--nj=8", "rest", "--x").stdout == "0 7 8 none rest --x\n"
    conf = tmp_path / "opts.conf"
    conf.write_text("# comment\nnj=2\nconfig_value=\"a b\"  # trailing\n")
    assert run_parse(tmp_path, "--config", str(conf), "--stage", "1").stdout == "1 7 2 a b \n"


def test_parse_options_errors(tmp_path):
    result = run_parse(tmp_path, "--stgae", "3")
    assert result.returncode != 0 and "unknown option --stgae" in result.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("nj=2\n$(touch pwned)\n")
    result = run_parse(tmp_path, "--config", str(bad))
    assert result.returncode != 0 and "bad.conf:2" in result.stderr
    assert not (Path.cwd() / "pwned").exists()
    assert run_parse(tmp_path, "--config", str(tmp_path / "none.conf")).returncode != 0
    assert "A test recipe." in run_parse(tmp_path, "--help").stdout


def test_parse_options_help_lists_the_options_from_any_folder(tmp_path):
    # as egs/*/run.sh: the recipe cd's into its own folder before sourcing parse_options.sh, and is started by
    # a relative path from elsewhere (the Quickstart's `egs/mini_synth/run.sh`)
    recipe = tmp_path / "egs" / "demo"
    recipe.mkdir(parents=True)
    (recipe / "run.sh").write_text("#!/usr/bin/env bash\n# A demo recipe.\nset -euo pipefail\n"
                                   "cd \"$(dirname \"$0\")\"\nnum_clusters=40   # C for stage 4\n"
                                   f"voxceleb1=  # corpus folder\n. {UTILS}/parse_options.sh\nlate=1\n")
    result = subprocess.run(["bash", "egs/demo/run.sh", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "A demo recipe."
    assert lines[-2:] == [f"  --{'num-clusters':<20} 40  # C for stage 4", f"  --{'voxceleb1':<20} \"\"  # corpus folder"]


def test_require_no_spaces_names_the_option(tmp_path):
    # the recipes pass paths unquoted (as Kaldi's), so a path with a space must stop before stage 0, by name
    script = tmp_path / "recipe.sh"
    script.write_text(f"set -euo pipefail\ndata=data\nsv_exp=\n. {UTILS}/log.sh\n. {UTILS}/parse_options.sh\n"
                      "require_no_spaces sv_exp data\necho ok\n")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=30)

    assert run("--data", "/tmp/my_data").stdout == "ok\n"
    for value in ("/tmp/my data", "a\tb"):
        result = run("--sv-exp", value)
        assert result.returncode == 1 and result.stdout == ""
        assert f"recipe.sh: --sv-exp '{value}' holds whitespace" in result.stderr


def test_recipes_check_their_path_options():
    for recipe in sorted((UTILS.parent / "egs").glob("*/run.sh")):
        text = recipe.read_text()
        checked = set(text.split("\nrequire_no_spaces ", 1)[1].split("\n", 1)[0].split())
        assert {"conf", "data", "exp"} <= checked, recipe
        assert text.index("require_no_spaces") > text.index(". utils/parse_options.sh"), recipe
