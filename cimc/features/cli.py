"""`cimc compute-feats` (Stage 1) and `cimc write-feats-config`."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("compute-feats")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML FeaturePipelineConfig (conf/mfcc.yaml, conf/fbank.yaml); defaults: 40-dim MFCC, Kaldi VAD.")
@click.option("--cuts", "cuts_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Lhotse cut manifest of Stage 0, e.g. data/manifests/train_cuts.jsonl.gz.")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="e.g. data/feats/mfcc")
@click.option("--name", required=True, help="Prefix of the outputs, e.g. train -> OUTPUT_DIR/train_cuts.jsonl.gz.")
@click.option("--nj", type=click.IntRange(min=1), default=1, show_default=True, help="Parallel extraction processes.")
@click.argument("overrides", nargs=-1)
def compute_feats(config_path: str | None, cuts_path: str, output_dir: str, name: str, nj: int,
                  overrides: tuple[str, ...]) -> None:
    """Extract MFCC/fbank (kaldi-native-fbank) and energy-VAD decisions for a cut set.

    Writes OUTPUT_DIR/NAME_cuts.jsonl.gz (cuts with features and a `vad` array), the lilcom archives
    NAME_feats/ and NAME_vad.lca, and the resolved NAME_config.yaml. OVERRIDES are key=value pairs,
    e.g. `mfcc.num_ceps=30 vad.energy_threshold=5.5`. Finished features (NAME_cuts.jsonl.gz exists) are kept
    when asked for with the same settings, and refused with others (each difference named): delete
    OUTPUT_DIR/NAME_* to recompute.

    Example: cimc compute-feats --config conf/mfcc.yaml --cuts data/manifests/train_cuts.jsonl.gz
    --output-dir data/feats/mfcc --name train --nj 8
    """
    from cimc.config import load_config
    from cimc.features.compute import compute_features
    from cimc.features.config import FeaturePipelineConfig

    config = load_config(FeaturePipelineConfig, config_path, overrides)
    compute_features(cuts_path, config, Path(output_dir), name, nj)


@click.command("write-feats-config")
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--feature-type", type=click.Choice(["mfcc", "fbank"]), default="mfcc", show_default=True)
def write_feats_config(output: str, feature_type: str) -> None:
    """Write the default FeaturePipelineConfig (every field, with its default) to OUTPUT as YAML."""
    from cimc.config import save_config
    from cimc.features.config import FeaturePipelineConfig

    save_config(FeaturePipelineConfig(feature_type=feature_type), output)


COMMANDS: list = [compute_feats, write_feats_config]
