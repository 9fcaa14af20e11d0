"""`cimc ivector ...`: stages 2-3 (UBM, T-matrix, i-vectors, baseline scoring)."""
from __future__ import annotations

from pathlib import Path

import click

CUTS = click.Path(exists=True, dir_okay=False)
CONFIG = click.Path(exists=True, dir_okay=False)


def _config(config_path, overrides):
    from cimc.config import load_config
    from cimc.ivector.config import IvectorConfig

    return load_config(IvectorConfig, config_path, overrides)


class _InOrder(click.Group):
    """Lists subcommands in pipeline order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group("ivector", cls=_InOrder)
def ivector() -> None:
    """i-vector system: train-ubm -> train-extractor -> extract -> score (Kaldi egs/voxceleb/v1 in PyTorch)."""


def _jobs(f):
    f = click.option("--nj", type=click.IntRange(min=1), default=1, show_default=True, help="Jobs that share the statistics.")(f)
    return click.option("--cmd", default="", help="Job launcher, e.g. 'utils/run.pl' ($train_cmd); empty: run jobs in this process.")(f)


@ivector.command("train-ubm")
@click.option("--config", "config_path", type=CONFIG, default=None, help="conf/ivector.yaml")
@click.option("--cuts", "cuts_path", type=CUTS, required=True, help="Training cuts with features + VAD (stage 1).")
@click.option("--dir", "exp_dir", type=click.Path(file_okay=False), required=True, help="e.g. exp/ivector")
@_jobs
@click.argument("overrides", nargs=-1)
def train_ubm_cmd(config_path, cuts_path, exp_dir, nj, cmd, overrides) -> None:
    """UBM: k-means + diagonal EM (+ optional full-covariance EM) -> DIR/ubm/final.pt.

    Resumes from the last finished iteration and skips a finished DIR/ubm (.done), both only with the
    settings it was trained with (DIR/ubm/config.yaml): another is refused, naming the field.

    Example: cimc ivector train-ubm --config conf/ivector.yaml --cuts data/feats/mfcc/train_cuts.jsonl.gz
    --dir exp/ivector --nj 8 --cmd utils/run.pl ubm.num_components=512
    """
    from cimc.ivector.pipeline import train_ubm

    train_ubm(cuts_path, _config(config_path, overrides), exp_dir, nj, cmd or None)


@ivector.command("train-extractor")
@click.option("--config", "config_path", type=CONFIG, default=None, help="conf/ivector.yaml")
@click.option("--cuts", "cuts_path", type=CUTS, required=True, help="Training cuts with features + VAD (stage 1).")
@click.option("--dir", "exp_dir", type=click.Path(exists=True, file_okay=False), required=True, help="Holds ubm/final.pt.")
@_jobs
@click.argument("overrides", nargs=-1)
def train_extractor_cmd(config_path, cuts_path, exp_dir, nj, cmd, overrides) -> None:
    """Total-variability matrix (EM, minimum divergence, prior offset) -> DIR/extractor/final.pt.

    Resumes and skips (.done) like train-ubm, only with the settings DIR/extractor was trained with.
    """
    from cimc.ivector.pipeline import train_extractor

    train_extractor(cuts_path, _config(config_path, overrides), exp_dir, nj, cmd or None)


@ivector.command("extract")
@click.option("--cuts", "cuts_path", type=CUTS, required=True, help="Cuts with features + VAD.")
@click.option("--dir", "exp_dir", type=click.Path(exists=True, file_okay=False), required=True, help="Holds ubm/ and extractor/.")
@click.option("--name", required=True, help="Output prefix: DIR/ivectors_NAME.npy/.ids/.ark/.scp, DIR/ivectors_NAME_cuts.jsonl.gz.")
@click.option("--kaldi/--no-kaldi", default=True, show_default=True, help="Also write Kaldi ark/scp.")
@click.option("--attach/--no-attach", default=True, show_default=True, help="Also write the cuts with custom['ivector'].")
@_jobs
def extract_cmd(cuts_path, exp_dir, name, kaldi, attach, nj, cmd) -> None:
    """Posterior-mean i-vectors (batched; GPU when the extractor config's device allows).

    Settings come from DIR/extractor/config.yaml, the snapshot of training.
    """
    from cimc.ivector.extract import extract_ivectors

    extract_ivectors(cuts_path, exp_dir, name, nj, cmd or None, kaldi=kaldi, attach=attach)


@ivector.command("score")
@click.option("--config", "config_path", type=CONFIG, default=None, help="conf/ivector.yaml (its backend section).")
@click.option("--train", "train_vectors", type=click.Path(exists=True, dir_okay=False), required=True, help="ivectors_train.npy")
@click.option("--test", "test_vectors", type=click.Path(exists=True, dir_okay=False), required=True, help="ivectors_test.npy")
@click.option("--trials", "trials_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--train-cuts", type=CUTS, required=True, help="Cuts giving the training speakers for LDA/PLDA.")
@click.option("--exclude", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Training utterances to leave out (first column), e.g. DIR/short_train.txt.")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="results.txt, scores_*.txt, det.png")
@click.argument("overrides", nargs=-1)
def score_cmd(config_path, train_vectors, test_vectors, trials_path, train_cuts, exclude, output_dir, overrides) -> None:
    """Cosine and LDA + PLDA scoring of the trials; prints and writes the EER / minDCF table."""
    from cimc.ivector.score import score_ivectors

    skip = [line.split()[0] for line in Path(exclude).read_text().splitlines() if line.strip()] if exclude else []
    score_ivectors(train_vectors, test_vectors, trials_path, train_cuts, _config(config_path, overrides).backend, output_dir, skip)
    click.echo((Path(output_dir) / "results.txt").read_text())


@ivector.command("acc-job", hidden=True)
@click.option("--kind", type=click.Choice(["ubm", "full-ubm", "extractor", "extract"]), required=True)
@click.option("--dir", "model_dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--cuts", "cuts_path", type=CUTS, required=True)
@click.option("--iter", "iteration", type=int, required=True)
@click.option("--name", default="", help="extract only: output prefix")
@click.option("--job", type=click.IntRange(min=1), required=True)
@click.option("--nj", type=click.IntRange(min=1), required=True)
def acc_job_cmd(kind, model_dir, cuts_path, iteration, name, job, nj) -> None:
    """One job of an EM iteration or of extraction (launched by run.pl & co.; not for direct use)."""
    from cimc.ivector import extract, pipeline

    model_dir, cuts_path = Path(model_dir), Path(cuts_path)
    if kind in ("ubm", "full-ubm"):
        pipeline.ubm_job(model_dir, cuts_path, iteration, job, nj, full=kind == "full-ubm")
    elif kind == "extractor":
        pipeline.extractor_job(model_dir, cuts_path, iteration, job, nj)
    else:
        extract.extract_job(model_dir, cuts_path, name, job, nj)


@ivector.command("write-default-config")
@click.argument("output", type=click.Path(dir_okay=False))
def write_default_config(output) -> None:
    """Write the default i-vector config (every field, Kaldi v1 sizes) to OUTPUT as YAML."""
    from cimc.config import save_config
    from cimc.ivector.config import IvectorConfig

    save_config(IvectorConfig(), output)


COMMANDS: list = [ivector]
