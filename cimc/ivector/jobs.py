"""Split statistics over ``--nj`` jobs: in this process, or as a job array through Kaldi's
``run.pl`` / ``slurm.pl`` / ``queue.pl`` (``$train_cmd JOB=1:N log/x.JOB.log command``).

Each job runs ``cimc ivector acc-job ... --job J`` and leaves its statistics in a file; the caller
merges the files by addition (Kaldi's ``*-acc-stats`` / ``*-sum-accs`` pattern).
"""
from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

logger = logging.getLogger(__name__)


def run_jobs(
    worker: Callable[[int], None], worker_args: Sequence[str], num_jobs: int, cmd: str | None, log_dir: Path, name: str
) -> None:
    """Run jobs 1..``num_jobs``.

    :param worker: ``worker(job)`` runs one job in this process (used when ``cmd`` is empty or
        ``num_jobs`` is 1).
    :param worker_args: arguments after ``cimc`` that run the same job as a command; ``JOB`` in them
        is replaced by the job number by the launcher.
    :param cmd: the launcher, e.g. ``utils/run.pl`` or ``utils/slurm.pl --mem 4G``.
    :param log_dir: where ``name.JOB.log`` files go.
    """
    if not cmd or num_jobs == 1:
        for job in range(1, num_jobs + 1):
            worker(job)
        return
    launcher = shlex.split(cmd)
    if not Path(launcher[0]).exists():
        raise FileNotFoundError(f"job launcher {launcher[0]} does not exist (cmd={cmd!r}; see cmd.sh)")
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [*launcher, f"JOB=1:{num_jobs}", str(log_dir / f"{name}.JOB.log"), sys.executable, "-m", "cimc.cli", *worker_args]
    logger.info("running %d jobs: %s", num_jobs, shlex.join(command))
    result = subprocess.run(command)
    if result.returncode != 0:
        raise RuntimeError(f"{name}: a job failed (exit {result.returncode}); see {log_dir}/{name}.*.log")
