"""`cimc cluster`, `cimc cluster-metrics`, `cimc cluster-table`, `cimc cluster-ablation` (stages 4-5)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from cimc.cluster.base import CLUSTERERS
import cimc.cluster  # noqa: F401,E402  (fills CLUSTERERS; heavy libraries load inside the methods)

EXISTING = click.Path(exists=True, dir_okay=False)


@click.command("cluster")
@click.option("--input", "input_path", required=True, type=EXISTING,
              help="Vectors: X.npy (N, D) with optional X.ids, or a Kaldi .scp/.ark.")
@click.option("--method", required=True, type=click.Choice(sorted(CLUSTERERS)), help="Clustering method.")
@click.option("--num-clusters", type=click.IntRange(min=1), default=None,
              help="C. Omit to let ahc (distance_threshold), spectral (eigengap) or birch estimate it.")
@click.option("--config", "config_path", type=EXISTING, default=None, help="YAML of the method's config.")
@click.option("--override", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override, repeatable.")
@click.option("--cuts", type=EXISTING, default=None,
              help="Lhotse cuts of the same utterances: also write DIR/cuts.jsonl.gz with pseudo-label speakers.")
@click.option("--ref", type=EXISTING, default=None,
              help="'utt label' file: per-epoch metrics in the log and training.png (CIMC, IMSAT); never trained on.")
@click.option("--exclude", type=EXISTING, default=None,
              help="Utterances to leave out (first column), e.g. exp/ivector/short_train.txt.")
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: labels.npy, labels.txt, [cuts.jsonl.gz], config.yaml, summary.json; CIMC "
                   "and IMSAT also training.png (the training curves) and checkpoint/ (resume).")
def cluster_command(input_path, method, num_clusters, config_path, overrides, cuts, ref, exclude, output_dir) -> None:
    """Cluster utterance vectors; write labels (and pseudo-labelled cuts).

    A finished OUTPUT (.done) is skipped when asked the same again; asked with another method, C, input,
    --exclude or config value it is refused, naming the difference (delete it to recluster).

    \b
    Example (stage 4):
      cimc cluster --input exp/ivector/ivectors_train.npy --method cimc --num-clusters 5000 \\
        --config conf/cimc.yaml --cuts data/manifests/train_cuts.jsonl.gz --output exp/cluster/cimc
    """
    from cimc.cluster.run import cluster_to_dir

    cluster_to_dir(input_path, method, num_clusters, output_dir, config_path, overrides, cuts, ref, exclude)


@click.command("cluster-metrics")
@click.option("--ref", required=True, type=EXISTING, help="Reference 'utt label' file (e.g. Kaldi utt2spk).")
@click.option("--hyp", required=True, type=EXISTING, help="Hypothesis 'utt label' file (labels.txt).")
@click.option("--features", type=EXISTING, default=None,
              help="Vectors of the utterances: adds silhouette (cosine), Calinski-Harabasz, Davies-Bouldin.")
@click.option("--silhouette-sample", type=click.IntRange(min=0), default=20000, show_default=True,
              help="Silhouette averaged over this many random points above that size (0: all points).")
@click.option("--name", default=None, help="Row name in the printed table (default: the hyp's folder name).")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="metrics.json to write.")
def cluster_metrics_command(ref, hyp, features, silhouette_sample, name, output) -> None:
    """Clustering metrics of HYP against REF, joined by utterance id; prints a table.

    \b
    Example (stage 5):
      cimc cluster-metrics --ref data/kaldi/train/utt2spk --hyp exp/cluster/cimc/labels.txt \\
        --features exp/ivector/ivectors_train.npy --output exp/cluster/cimc/metrics.json
    """
    from cimc.cluster.run import evaluate_label_files
    from cimc.metrics.clustering import metrics_json, metrics_table
    from cimc.utils import write_text_atomic

    metrics = evaluate_label_files(ref, hyp, features, silhouette_sample)
    write_text_atomic(output, metrics_json(metrics))
    click.echo(metrics_table({name or _row_name(hyp): metrics}), nl=False)


def _read_metrics(path: Path) -> dict:
    """A metrics.json of `cimc cluster-metrics`; anything else is a usage error naming the file."""
    from cimc.metrics.clustering import METRIC_NAMES

    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"{path} is not JSON: {e}", param_hint="RESULTS") from None
    if not isinstance(values, dict) or not any(m in values for m in METRIC_NAMES):
        raise click.BadParameter(f"{path} holds no clustering metrics (a metrics.json of cimc cluster-metrics)",
                                 param_hint="RESULTS")
    for m in METRIC_NAMES:
        if not (values.get(m) is None or isinstance(values[m], (int, float)) and not isinstance(values[m], bool)):
            raise click.BadParameter(f"{path}: {m} is {values[m]!r}, not a number", param_hint="RESULTS")
    return values


def _named_path(item: str) -> tuple[str, Path]:
    """(NAME, file) of ``NAME=FILE`` or ("", FILE): split at the first '=' that leaves an existing file, so that
    both a name and a path may hold '=' ("cimc (C=5000)=exp/c=1/metrics.json")."""
    if Path(item).is_file():
        return "", Path(item)
    for at in (i for i, ch in enumerate(item) if ch == "="):
        if Path(item[at + 1:]).is_file():
            return item[:at], Path(item[at + 1:])
    raise click.BadParameter(f"{item}: no such file, nor is the text after any '=' in it one", param_hint="RESULTS")


def _row_name(path: str | Path) -> str:
    """A table row's default name: the folder of ``path`` (exp/cluster/cimc/labels.txt -> cimc), even when relative."""
    return Path(path).resolve().parent.name


@click.command("cluster-table")
@click.argument("results", nargs=-1, required=True, metavar="[NAME=]METRICS_JSON...")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the table here.")
def cluster_table_command(results, output) -> None:
    """One Markdown table of several metrics.json files (rows named NAME, or the file's folder name).

    \b
    Example:  cimc cluster-table cimc=exp/cluster/cimc/metrics.json exp/cluster/kmeans/metrics.json
    """
    from cimc.metrics.clustering import metrics_table
    from cimc.utils import write_text_atomic

    rows = {}
    for item in results:
        name, path = _named_path(item)
        rows[name or _row_name(path)] = _read_metrics(path)
    table = metrics_table(rows)
    if output:
        write_text_atomic(output, table)
    click.echo(table, nl=False)


@click.command("cluster-ablation")
@click.argument("extra_configs", nargs=-1, type=EXISTING, metavar="[CONFIG.yaml...]")
@click.option("--input", "input_path", required=True, type=EXISTING, help="Vectors to cluster.")
@click.option("--ref", required=True, type=EXISTING, help="Reference 'utt label' file for the metrics.")
@click.option("--configs", multiple=True, type=EXISTING, help="Row configs (one row each, named by file stem).")
@click.option("--spec", type=EXISTING, default=None, help="Ablation YAML listing rows (see cimc.cluster.ablation).")
@click.option("--method", default=None, type=click.Choice(sorted(CLUSTERERS)),
              help="Method of the rows [default: the spec's, else cimc].")
@click.option("--num-clusters", default=None,
              help="Comma-separated C values of every row, e.g. 5000,10000 [default: the spec's, row by row].")
@click.option("--exclude", type=EXISTING, default=None,
              help="Utterances to leave out of every row (first column), e.g. exp/ivector/short_train.txt.")
@click.option("--no-feature-metrics", is_flag=True, help="Skip silhouette / CH / DB.")
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
def cluster_ablation_command(extra_configs, input_path, ref, configs, spec, method, num_clusters, exclude,
                             no_feature_metrics, output_dir) -> None:
    """Run loss combinations x C and write the Table I layout (OUT/table.md, OUT/table.csv); resumable.

    \b
    Examples:
      cimc cluster-ablation --input X.npy --ref utt2spk --configs imsat.yaml cimc.yaml --num-clusters 40,80 --output OUT
      cimc cluster-ablation --input X.npy --ref utt2spk --spec conf/ablation.yaml --output OUT
    """
    from cimc.cluster.ablation import ablation_markdown, load_spec, rows_from_configs, run_ablation

    rows = rows_from_configs(list(configs) + list(extra_configs))
    spec_c: list = []
    if spec:
        spec_values, spec_rows = load_spec(spec)
        rows = spec_rows + rows
        method = method or spec_values.method
        spec_c = spec_values.num_clusters
    if not rows:
        raise click.UsageError("give row configs (--configs a.yaml b.yaml) or --spec ablation.yaml")
    try:  # the spec's own C values are checked by load_spec, naming its file
        cs = [int(c) for c in num_clusters.split(",")] if num_clusters else list(spec_c)
    except ValueError:
        raise click.BadParameter(f"{num_clusters!r} is not a comma-separated list of integers",
                                 param_hint="--num-clusters") from None
    if num_clusters:  # the command line's C values are every row's
        rows = [dataclasses.replace(row, num_clusters=[]) for row in rows]
    if not cs and not all(row.num_clusters for row in rows):
        raise click.UsageError("give --num-clusters (or num_clusters in the spec)")
    results = run_ablation(input_path, ref, rows, cs, output_dir, method or "cimc", not no_feature_metrics, exclude)
    click.echo(ablation_markdown(results), nl=False)


@click.command("cluster-config")
@click.option("--method", required=True, type=click.Choice(sorted(CLUSTERERS)), help="Clustering method.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write the YAML here too.")
def cluster_config_command(method, output) -> None:
    """Print a method's default config as YAML (a starting point for conf/<method>.yaml)."""
    import yaml

    from cimc.cluster.base import config_class
    from cimc.config import save_config, to_dict

    cls = config_class(method)
    if cls is None:
        raise click.UsageError(f"method {method} takes no config")
    if output:
        save_config(cls(), output)
    click.echo(yaml.safe_dump(to_dict(cls()), sort_keys=False), nl=False)


COMMANDS = [cluster_command, cluster_metrics_command, cluster_table_command, cluster_ablation_command,
            cluster_config_command]
