"""`cimc diar ...`: speaker diarization recipes (egs/mini_diar, egs/voxconverse) reusing the clustering stage."""
from __future__ import annotations

import logging

import click

logger = logging.getLogger(__name__)

EXISTING = click.Path(exists=True, dir_okay=False)
CONFIG = click.option("--config", "config_path", type=EXISTING, default=None,
                      help="DiarizationConfig YAML (conf/diar.yaml); defaults when omitted.")


def _config(config_path, overrides):
    from cimc.config import load_config
    from cimc.diar.pipeline import DiarizationConfig

    return load_config(DiarizationConfig, config_path, overrides)


class _InPipelineOrder(click.Group):
    """Lists subcommands in the order the recipes run them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group("diar", cls=_InPipelineOrder)
def diar() -> None:
    """Speaker diarization: speech activity, sub-segments, per-recording clustering, DER/JER.

    \b
    Example (egs/mini_diar):
      cimc diar make-conversations --cuts data/synth/manifests/test_cuts.jsonl.gz --output-dir data/conv
      cimc compute-feats --config conf/mfcc.yaml --cuts data/conv/cuts.jsonl.gz --output-dir data/feats --name conv
      cimc diar speech-activity --cuts data/feats/conv_cuts.jsonl.gz --config conf/diar.yaml --output exp/speech/segments
      cimc diar subsegment --cuts data/feats/conv_cuts.jsonl.gz --segments exp/speech/segments --output exp/subseg/cuts.jsonl.gz
      cimc sv extract --exp-dir exp/sv --cuts exp/subseg/cuts.jsonl.gz --output exp/subseg/embeddings
      cimc diar cluster --embeddings exp/subseg/embeddings --method ahc --config conf/diar.yaml --output-dir exp/diar/ahc
      cimc diar score --ref data/conv/ref.rttm --hyp ahc=exp/diar/ahc/rttm --output-dir exp/diar/results
    """


@diar.command("make-conversations")
@click.option("--cuts", type=EXISTING, required=True, help="Single-speaker utterance cuts (supervision.speaker set).")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True,
              help="Writes wav/, ref.rttm, {recordings,supervisions,cuts}.jsonl.gz, summary.txt.")
@click.option("--config", "config_path", type=EXISTING, default=None, help="ConversationConfig YAML.")
@click.argument("overrides", nargs=-1)
def make_conversations_command(cuts, output_dir, config_path, overrides) -> None:
    """Build synthetic multi-speaker conversations with exact references. OVERRIDES: key=value."""
    from cimc.config import load_config, save_config
    from cimc.data.layout import read_cuts
    from cimc.diar.conversations import ConversationConfig, build_conversations, summary_table

    config = load_config(ConversationConfig, config_path, overrides)
    conversations = build_conversations(read_cuts(cuts), output_dir, config)
    save_config(config, f"{output_dir}/config.yaml")
    click.echo(summary_table(conversations, config.sampling_rate), nl=False)


@diar.command("prepare-voxconverse")
@click.option("--corpus-dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="VoxConverse copy: dev/*.wav + dev/*.rttm, test/*.wav + test/*.rttm.")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True,
              help="Writes {part}_{recordings,supervisions,cuts}.jsonl.gz and {part}_ref.rttm.")
def prepare_voxconverse_command(corpus_dir, output_dir) -> None:
    """Manifests and reference RTTMs of VoxConverse's dev and test parts (lhotse.recipes.prepare_voxconverse)."""
    from cimc.diar.voxconverse import prepare_voxconverse

    for part, count in prepare_voxconverse(corpus_dir, output_dir).items():
        click.echo(f"{part}: {count} recordings")


@diar.command("speech-activity")
@click.option("--cuts", type=EXISTING, required=True,
              help="Recording cuts (with stored VAD for speech.source=vad, supervisions for reference).")
@CONFIG
@click.option("--output", required=True, help="Kaldi segments file of the speech regions.")
@click.argument("overrides", nargs=-1)
def speech_activity_command(cuts, config_path, output, overrides) -> None:
    """Speech regions per recording: energy VAD of stage 1, or the reference (speech.source=reference)."""
    from cimc.diar.stages import write_speech_segments

    write_speech_segments(cuts, _config(config_path, overrides), output)


@diar.command("subsegment")
@click.option("--cuts", type=EXISTING, required=True, help="Recording cuts (the same as for speech-activity).")
@click.option("--segments", type=EXISTING, required=True, help="Speech segments from speech-activity.")
@CONFIG
@click.option("--output", required=True, help="Cuts manifest of the sub-segments (ids <rec>-<start ms>-<end ms>).")
@click.argument("overrides", nargs=-1)
def subsegment_command(cuts, segments, config_path, output, overrides) -> None:
    """Uniform sub-segments (subsegment.window s every subsegment.shift s) to embed one by one."""
    from cimc.diar.stages import write_subsegment_cuts

    write_subsegment_cuts(cuts, segments, _config(config_path, overrides), output)


@diar.command("tune")
@click.option("--embeddings", required=True, help="Development sub-segment embeddings PREFIX(.npy/.ids).")
@click.option("--ref-rttm", type=EXISTING, required=True, help="Development reference RTTM.")
@click.option("--method", required=True, help="Clustering method, e.g. ahc.")
@click.option("--param", "field", default="distance_threshold", show_default=True, help="Numeric field of the method's config.")
@click.option("--values", required=True, help="Comma-separated values to try, e.g. 0.6,0.8,1.0.")
@CONFIG
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="Writes tuning.txt, best_override.txt.")
@click.argument("overrides", nargs=-1)
def tune_command(embeddings, ref_rttm, method, field, values, config_path, output_dir, overrides) -> None:
    """Pick the value of one clustering parameter with the lowest DER on a development set; print the override."""
    from cimc.diar.stages import run_tuning

    try:
        grid = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{values!r} is not a comma-separated list of numbers", param_hint="--values") from None
    click.echo(run_tuning(embeddings, ref_rttm, method, field, grid, _config(config_path, overrides), output_dir))


@diar.command("cluster")
@click.option("--embeddings", required=True, help="Sub-segment embeddings PREFIX(.npy/.ids) from `cimc sv extract`.")
@click.option("--method", required=True, help="Clustering method of the cimc.cluster registry (ahc, spectral, cimc...).")
@CONFIG
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="Writes labels.txt, rttm, config.yaml.")
@click.option("--ref-rttm", type=EXISTING, default=None, help="Reference, for clustering.num_speakers=oracle.")
@click.argument("overrides", nargs=-1)
def cluster_command(embeddings, method, config_path, output_dir, ref_rttm, overrides) -> None:
    """Cluster each recording's sub-segments; merge same-label neighbours into turns; write RTTM."""
    from cimc.diar.stages import run_clustering

    click.echo(run_clustering(embeddings, method, _config(config_path, overrides), output_dir, ref_rttm))


@diar.command("score")
@click.option("--ref", "ref_rttm", type=EXISTING, required=True, help="Reference RTTM.")
@click.option("--hyp", "hyps", multiple=True, required=True, help="NAME=RTTM of a system; repeatable.")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True,
              help="Writes results.txt, results.json, timeline_<NAME>.png.")
@click.option("--collar", type=float, default=0.25, show_default=True, help="Seconds forgiven each side of a boundary.")
@click.option("--plot-recording", default=None, help="Recording for the timeline PNG (default: the first).")
def score_command(ref_rttm, hyps, output_dir, collar, plot_recording) -> None:
    """DER (missed, false alarm, confusion) and JER, with and without overlap; prints the table."""
    from cimc.cli_options import parse_named_paths
    from cimc.diar.stages import run_scoring

    systems = parse_named_paths(hyps, "--hyp", "RTTM")
    click.echo(run_scoring(ref_rttm, systems, output_dir, collar, plot_recording), nl=False)


@diar.command("default-config")
@click.option("--kind", type=click.Choice(["diarization", "conversations"]), default="diarization", show_default=True)
def default_config_command(kind) -> None:
    """Print the default config as YAML (a starting point for conf/diar.yaml or conf/conversations.yaml)."""
    import yaml

    from cimc.config import to_dict
    from cimc.diar.conversations import ConversationConfig
    from cimc.diar.pipeline import DiarizationConfig

    config = DiarizationConfig() if kind == "diarization" else ConversationConfig()
    click.echo(yaml.safe_dump(to_dict(config), sort_keys=False), nl=False)


COMMANDS = [diar]
