"""`cimc sv train | extract | score | table | default-config`: stages 6-7 (ECAPA-TDNN on pseudo-labels)."""
from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import click

logger = logging.getLogger(__name__)

EXISTING = click.Path(exists=True, dir_okay=False)


@click.group("sv")
def sv() -> None:
    """Speaker verification: ECAPA-TDNN training on (pseudo-)labels, embeddings, scoring.

    \b
    Example (egs/mini_synth, stages 6-7):
      cimc sv train --config conf/ecapa.yaml --cuts exp/cluster/cimc/cuts.jsonl.gz --exp-dir exp/sv/cimc
      cimc sv extract --exp-dir exp/sv/cimc --cuts data/manifests/test_cuts.jsonl.gz --output exp/sv/cimc/emb_test
      cimc sv extract --exp-dir exp/sv/cimc --cuts data/manifests/train_cuts.jsonl.gz --output exp/sv/cimc/emb_train
      cimc sv score --config exp/sv/cimc/config.yaml --trials data/trials.txt --vectors exp/sv/cimc/emb_test \\
          --train-vectors exp/sv/cimc/emb_train --output-dir exp/sv/cimc/scores --name cimc
    """


@sv.command("train")
@click.option("--config", "config_path", type=EXISTING, required=True, help="SvConfig YAML (conf/ecapa.yaml).")
@click.option("--cuts", type=EXISTING, required=True, help="Lhotse cuts; supervision.speaker is the label.")
@click.option("--exp-dir", type=click.Path(file_okay=False), required=True, help="Output folder (checkpoints, final.pt, history.txt, training.png).")
@click.argument("overrides", nargs=-1)
def train_command(config_path: str, cuts: str, exp_dir: str, overrides: tuple[str, ...]) -> None:
    """Train ECAPA-TDNN; resumes from the newest epoch checkpoint; skips a finished EXP_DIR (.done).

    Both need the config EXP_DIR was trained with (EXP_DIR/config.yaml): another value of a field that
    changes the model is refused, by name (a resumed run may raise train.epochs). New extract / score
    settings for a finished EXP_DIR are written to its config.yaml, where extract and score read them.
    OVERRIDES are key=value, e.g. train.epochs=2 head.name=ocsoftmax. Under torchrun every rank runs it.
    """
    from cimc.config import check_saved_config, load_config, save_config
    from cimc.data.layout import read_cuts
    from cimc.sv.config import SvConfig
    from cimc.sv.train import train
    from cimc.utils import is_done, setup_logging, warn_if_newer

    config = load_config(SvConfig, config_path, overrides)
    if is_done(exp_dir):
        saved = Path(exp_dir) / "config.yaml"
        check_saved_config(saved, config, f"delete {exp_dir} to retrain, or give another --exp-dir")
        warn_if_newer(cuts, exp_dir)  # e.g. stage 4 reclustered after this model was trained
        logger.info("%s is finished (.done); delete it to retrain", exp_dir)
        # Only fields training does not use differ (say score.snorm): stage 7 reads them from here, so take them.
        if os.environ.get("RANK", "0") == "0" and load_config(SvConfig, saved) != config:
            save_config(config, saved)
            logger.info("%s: the new extract / score settings written (the model is unchanged)", saved)
        return
    setup_logging(log_file=Path(exp_dir) / "log" / "train.log")
    logger.info("command: %s", shlex.join(sys.argv))  # first line of the run's own log
    train(config, read_cuts(cuts), exp_dir)


@sv.command("extract")
@click.option("--exp-dir", type=click.Path(exists=True, file_okay=False), required=True, help="Trained experiment.")
@click.option("--cuts", type=EXISTING, required=True, help="Lhotse cuts to embed (whole utterances).")
@click.option("--output", required=True, help="Output prefix: writes PREFIX.npy and PREFIX.ids.")
@click.option("--max-utts", type=int, default=0, show_default=True, help="Embed a random subset of this size (0 = all).")
@click.option("--model", default="final.pt", show_default=True, help="Checkpoint in EXP_DIR, e.g. checkpoints/epoch_3.pt.")
@click.option("--device", default=None, help="Override extract.device of the experiment's config.")
def extract_command(exp_dir: str, cuts: str, output: str, max_utts: int, model: str, device: str | None) -> None:
    """Whole-utterance embeddings with the experiment's saved config and model."""
    from cimc.sv.extract import extract_to_file

    extract_to_file(exp_dir, cuts, output, max_utts, model, device)


@sv.command("score")
@click.option("--config", "config_path", type=EXISTING, default=None, help="SvConfig YAML (its score section); EXP/config.yaml.")
@click.option("--trials", type=EXISTING, required=True, help="Kaldi trials: enroll test target|nontarget.")
@click.option("--vectors", required=True, help="Test embeddings prefix (PREFIX.npy + PREFIX.ids).")
@click.option("--train-vectors", default=None, help="Training-set embeddings: mean subtraction and s-norm cohort.")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="scores.txt, results.*, det.png.")
@click.option("--name", default="system", show_default=True, help="System name in the table and plot.")
@click.argument("overrides", nargs=-1)
def score_command(config_path, trials, vectors, train_vectors, output_dir, name, overrides) -> None:
    """Cosine scoring (optionally AS-norm), EER and minDCF, DET curve; prints the results table.

    OVERRIDES are key=value, e.g. score.snorm=true score.cohort_size=200.
    """
    from cimc.config import load_config
    from cimc.metrics.verification import format_results_table
    from cimc.sv.config import SvConfig
    from cimc.sv.score import run_scoring

    config = load_config(SvConfig, config_path, overrides)
    results = run_scoring(trials, vectors, output_dir, config.score, train_vectors, name)
    click.echo(format_results_table({name: results}), nl=False)


@sv.command("table")
@click.option("--system", "systems", multiple=True, required=True, help="NAME=results file (.json or .txt); repeatable.")
@click.option("--output", default=None, help="Also write the table to this file.")
def table_command(systems: tuple[str, ...], output: str | None) -> None:
    """One EER / minDCF table side by side for several systems' results files."""
    from cimc.cli_options import parse_named_paths
    from cimc.metrics.verification import format_results_table
    from cimc.sv.score import compare_results
    from cimc.utils import write_text_atomic

    pairs = parse_named_paths(systems, "--system")
    table = format_results_table(compare_results(pairs))
    if output:
        write_text_atomic(output, table)
    click.echo(table, nl=False)


@sv.command("default-config")
def default_config_command() -> None:
    """Print the default SvConfig as YAML (a starting point for conf/ecapa.yaml)."""
    import yaml

    from cimc.config import to_dict
    from cimc.sv.config import SvConfig

    click.echo(yaml.safe_dump(to_dict(SvConfig()), sort_keys=False), nl=False)


COMMANDS = [sv]
