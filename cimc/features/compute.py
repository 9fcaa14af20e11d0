"""Stage 1 (``cimc compute-feats``): features and energy-VAD decisions for a cut set, on disk.

Cost: feature extraction is the bulk (kaldi-native-fbank runs ~0.008 x real time per core; the
2,300 h of VoxCeleb2-dev take about 17 core-hours), spread over ``nj`` processes by Lhotse. The VAD
pass re-reads the stored features (as Kaldi's ``compute_vad_decision.sh`` reads feats.scp) and is cheap.

Layout under ``output_dir`` for ``name`` (e.g. ``train``)::

    {name}_cuts.jsonl.gz     cuts with features + custom TemporalArray "vad" (1.0 voiced / 0.0 not)
    {name}_feats/feats-J.lca lilcom-compressed features, one archive per job
    {name}_vad.lca           VAD decisions
    {name}_config.yaml       the resolved FeaturePipelineConfig
    {name}_failed.txt        cuts whose audio could not be read (only if any)

``{name}_cuts.jsonl.gz`` is written last, atomically: once it exists the run is finished, and a rerun with the
same settings reads it back instead of recomputing; one with other settings is refused, naming them.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cimc.config import ConfigError, save_config, saved_config_changes
from cimc.data.layout import read_cuts
from cimc.features.config import FeaturePipelineConfig
from cimc.features.frames import VAD_FIELD
from cimc.features.vad import compute_vad, vad_log_energy
from cimc.utils import atomic_path, name_some, warn_if_newer, write_text_atomic

logger = logging.getLogger(__name__)


def _report_failed(input_ids: list[str], output_ids: set[str], failed_path: Path, name: str) -> None:
    """Lhotse drops cuts whose audio fails to load; name and count them instead of losing them silently."""
    failed = [cut_id for cut_id in input_ids if cut_id not in output_ids]
    if failed:
        write_text_atomic(failed_path, "".join(f"{cut_id}\n" for cut_id in failed))
        logger.warning(
            "%s: %d of %d cuts had unreadable audio and have no features (listed in %s): %s",
            name, len(failed), len(input_ids), failed_path, name_some(failed),
        )
    elif failed_path.exists():
        failed_path.unlink()


def _finished(cuts_path: Path, config: FeaturePipelineConfig, output_dir: Path, name: str) -> bool:
    """Whether ``name``'s features under ``output_dir`` are finished and were computed with ``config``.

    Raises :class:`ConfigError` naming each setting that differs (a rerun must not return features of another
    config as if they were these); the extractor not in use (``fbank`` when ``feature_type`` is mfcc) may change.
    """
    out_path = output_dir / f"{name}_cuts.jsonl.gz"
    if not out_path.is_file():
        return False
    unused = "fbank" if config.feature_type == "mfcc" else "mfcc"
    changes = saved_config_changes(output_dir / f"{name}_config.yaml", config, may_change=(unused,))
    if changes:
        raise ConfigError(f"{out_path} holds features computed with another config than this run asks for "
                          f"({'; '.join(changes)}, against {output_dir / f'{name}_config.yaml'}); delete "
                          f"{output_dir}/{name}_* to recompute them, or give another --output-dir or --name")
    warn_if_newer(cuts_path, out_path, finished=out_path, redo=f"{output_dir}/{name}_*")
    return True


def attach_vad(cuts, config: FeaturePipelineConfig, vad_path: Path, name: str = "cuts"):
    """Compute the VAD of every cut from its stored features; return the cuts with a ``vad`` array.

    :param cuts: a CutSet whose cuts have features.
    :param vad_path: the lilcom archive to write (``.lca``).
    :return: (CutSet, number of voiced frames, number of frames).
    """
    from lhotse import CutSet, LilcomChunkyWriter

    out, voiced_total, frames_total = [], 0, 0
    with LilcomChunkyWriter(vad_path, tick_power=config.lilcom_tick_power) as writer:
        for cut in tqdm(cuts, desc=f"VAD {name}", total=len(cuts)):
            features = cut.load_features()
            voiced = compute_vad(vad_log_energy(features, config.extractor_config), config.vad)
            if not voiced.any():
                logger.warning("cut %s: no voiced frame among %d (VAD thresholds too high?)", cut.id, len(voiced))
            voiced_total += int(voiced.sum())
            frames_total += len(voiced)
            array = writer.store_array(
                cut.id, voiced.astype(np.float32), frame_shift=cut.features.frame_shift, temporal_dim=0,
                start=cut.features.start,
            )
            out.append(cut.with_custom(VAD_FIELD, array))
    return CutSet.from_cuts(out), voiced_total, frames_total


def compute_features(
    cuts_path: str | Path, config: FeaturePipelineConfig, output_dir: str | Path, name: str, num_jobs: int = 1
):
    """Extract features with VAD for the cuts in ``cuts_path``; write them under ``output_dir``.

    :param cuts_path: a Lhotse cut manifest (``{part}_cuts.jsonl.gz`` of Stage 0).
    :param config: extractor + VAD settings.
    :param output_dir: folder for the outputs listed in this module's docstring.
    :param name: prefix of the outputs, e.g. ``train``.
    :param num_jobs: parallel processes for extraction.
    :return: the CutSet that was written to ``{name}_cuts.jsonl.gz`` (opened lazily when it was already there).
    """
    import torch
    from lhotse import CutSet, LilcomChunkyWriter

    from cimc.features.extractor import make_extractor

    cuts_path, output_dir = Path(cuts_path), Path(output_dir)
    out_path = output_dir / f"{name}_cuts.jsonl.gz"
    if _finished(cuts_path, config, output_dir, name):
        logger.info("%s: features already computed (%s); delete %s/%s_* to recompute", name, out_path, output_dir, name)
        return CutSet.from_jsonl_lazy(out_path)  # not read into memory: 1.09M cuts on a VoxCeleb2 rerun
    cuts = CutSet.from_cuts(read_cuts(cuts_path, what="cuts manifest (from Stage 0)"))
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, output_dir / f"{name}_config.yaml")
    storage = output_dir / f"{name}_feats"
    if storage.exists():  # leftovers of an interrupted run: start clean
        shutil.rmtree(storage)
    storage.mkdir()
    num_jobs = min(num_jobs, len(cuts))
    extractor = make_extractor(config.extractor_config)
    logger.info("%s: %s features for %d cuts with %d job(s) -> %s", name, extractor.name, len(cuts), num_jobs, storage)
    storage_path = storage / "feats-0" if num_jobs == 1 else storage
    threads = torch.get_num_threads()
    if num_jobs > 1:
        torch.set_num_threads(1)  # Lhotse warns that threads x processes can hang
    try:
        with_feats = cuts.compute_and_store_features(
            extractor, storage_path=storage_path, num_jobs=num_jobs, storage_type=LilcomChunkyWriter
        )
    finally:
        torch.set_num_threads(threads)  # an in-process caller's later torch work keeps its threads
    input_ids = list(cuts.ids)
    with_feats = with_feats.to_eager()
    done_ids = set(with_feats.ids)
    _report_failed(input_ids, done_ids, output_dir / f"{name}_failed.txt", name)
    if not done_ids:
        raise ValueError(f"{name}: no cut of {cuts_path} could be read; see {output_dir / f'{name}_failed.txt'}")
    # Parallel jobs return their shards one after another: restore the manifest's order.
    with_feats = with_feats.sort_like([i for i in input_ids if i in done_ids])
    with_vad, voiced, frames = attach_vad(with_feats, config, output_dir / f"{name}_vad.lca", name)
    with atomic_path(out_path) as tmp:
        with_vad.to_file(tmp)
    logger.info(
        "%s: %d cuts, %d frames (%.2f h), %.1f%% voiced -> %s",
        name, len(with_vad), frames, frames * extractor.frame_shift / 3600, 100.0 * voiced / max(frames, 1), out_path,
    )
    return with_vad
