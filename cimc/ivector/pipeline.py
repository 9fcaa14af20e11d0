"""Stages 2-3 as library calls: train the UBM, train the T-matrix, extract i-vectors.

Layout under ``exp_dir`` (``$exp/ivector``)::

    ubm/        0.pt .. N.pt (diagonal), full0.pt .. fullM.pt (optional full-covariance refinement),
                final.pt, config.yaml, objective.{tsv,png}, acc/, log/, .done
    extractor/  0.pt .. N.pt, final.pt, config.yaml, objective.{tsv,png}, train_cuts.jsonl.gz, acc/, log/, .done

``objective.tsv`` holds each EM iteration's objective (``series iter value``), kept across resumes, and
``objective.png`` draws it when training ends: EM should rise every iteration and then level off.
    ivectors_NAME.{npy,ids,ark,scp}, ivectors_NAME_cuts.jsonl.gz, short_NAME.txt

Every EM iteration splits the cuts over ``nj`` jobs (in process, or through ``run.pl`` & co.),
merges their statistics and writes the next model; a rerun resumes after the last written model.
Cost (Kaldi v1 sizes): one pass scores every voiced frame against 2048 Gaussians (~3 products of
(T, 72) x (72, 2048)) and, for the T-matrix, solves one 400 x 400 system per utterance.
"""
from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from cimc.config import check_saved_config, load_config, save_config
from cimc.data.layout import read_cuts
from cimc.ivector import extractor as ext
from cimc.ivector import full_ubm
from cimc.ivector import ubm as ubm_lib
from cimc.ivector.config import IvectorConfig
from cimc.ivector.frontend import iter_utterances, report_short, split_for_job, Utterance
from cimc.ivector.jobs import run_jobs
from cimc.utils import is_done, mark_done, resolve_device, warn_if_newer, write_text_atomic

logger = logging.getLogger(__name__)



def _batches(utterances: Iterator[Utterance], size: int) -> Iterator[list[Utterance]]:
    batch: list[Utterance] = []
    for utt in utterances:
        batch.append(utt)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _merge(paths: Sequence[Path], load) -> object:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"job statistics missing (did a job fail? see the log folder): {', '.join(missing)}")
    total = load(paths[0])
    for path in paths[1:]:
        total = total + load(path)
    return total


def _latest(model_dir: Path, num_iters: int, prefix: str = "") -> int:
    """Index of the newest ``PREFIXi.pt`` in ``model_dir`` (-1 if none), to resume training."""
    return max((i for i in range(num_iters + 1) if (model_dir / f"{prefix}{i}.pt").is_file()), default=-1)


# ---------------------------------------------------------------------------------------------- UBM


def _ubm_frames(cuts: Sequence, config: IvectorConfig, max_frames: int, desc: str) -> tuple[np.ndarray, dict[str, int]]:
    """Every ``subsample``-th voiced frame of ``cuts`` (at most ``max_frames``), and the short utterances."""
    parts, short, total = [], {}, 0
    for utt in iter_utterances(cuts, config.frontend, desc=desc):
        if len(utt.frames) < config.frontend.min_frames:
            short[utt.id] = len(utt.frames)
            continue
        kept = utt.frames[:: config.ubm.subsample]
        parts.append(kept[: max_frames - total])
        total += len(parts[-1])
        if total >= max_frames:
            break
    dim = (config.frontend.num_ceps or 0) * (config.frontend.delta_order + 1)
    return (np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)), short


def ubm_job(ubm_dir: Path, cuts_path: Path, iteration: int, job: int, num_jobs: int, full: bool = False) -> None:
    """One job of one UBM EM iteration: statistics of its share of the cuts -> ``acc/[full]ubm.ITER.JOB.pt``.

    Frames are streamed in blocks of ``ubm.chunk_frames``, so memory does not grow with the data.
    """
    config = load_config(IvectorConfig, ubm_dir / "config.yaml")
    device = resolve_device(config.ubm.device)
    lib = full_ubm if full else ubm_lib
    gmm = full_ubm.load_ubm(ubm_dir / f"{'full' if full else ''}{iteration}.pt").to(device)
    stats = (full_ubm.FullUbmStats if full else ubm_lib.UbmStats).zeros(gmm.num_components, gmm.dim)
    cuts = split_for_job(read_cuts(cuts_path), job, num_jobs)
    block: list[np.ndarray] = []

    def flush() -> None:
        if block:
            # Full covariances score (N, D + D(D+1)/2) quadratic features: smaller chunks.
            chunk = min(config.ubm.chunk_frames, 10_000) if full else config.ubm.chunk_frames
            lib.accumulate(gmm, torch.as_tensor(np.concatenate(block), device=device), stats, chunk)
            block.clear()

    for utt in iter_utterances(cuts, config.frontend, desc=f"UBM iter {iteration} job {job}"):
        if len(utt.frames) >= config.frontend.min_frames:
            block.append(utt.frames[:: config.ubm.subsample])
            if sum(map(len, block)) >= config.ubm.chunk_frames:
                flush()
    flush()
    stats.save(ubm_dir / "acc" / f"{'full' if full else ''}ubm.{iteration}.{job}.pt")


def train_ubm(cuts_path: str | Path, config: IvectorConfig, exp_dir: str | Path, num_jobs: int = 1, cmd: str | None = None):
    """Diagonal UBM: k-means start on a frame subsample, then ``ubm.num_iters`` EM iterations, then
    ``ubm.full_cov_iters`` full-covariance EM iterations (Kaldi's train_full_ubm.sh) if asked for.

    :return: the final model, also saved as ``exp_dir/ubm/final.pt``.
    """
    ubm_dir, cuts_path = Path(exp_dir) / "ubm", Path(cuts_path)
    # A UBM trained, or half-trained, with other front-end or UBM settings is refused by field, not reused.
    check_saved_config(ubm_dir / "config.yaml", config, f"delete {ubm_dir} to retrain it",
                       may_change=("extractor", "backend"))
    if is_done(ubm_dir):
        warn_if_newer(cuts_path, ubm_dir)  # features recomputed since (stage 1)
        logger.info("%s is done; delete its .done to retrain", ubm_dir)
        return full_ubm.load_ubm(ubm_dir / "final.pt")
    save_config(config, ubm_dir / "config.yaml")
    cfg = config.ubm
    start = _latest(ubm_dir, cfg.num_iters)
    if start < 0:
        cuts = read_cuts(cuts_path)
        order = np.random.default_rng(cfg.seed).permutation(len(cuts))
        frames, short = _ubm_frames([cuts[i] for i in order], config, cfg.max_frames, "UBM init frames")
        report_short(short, config.frontend.min_frames, str(cuts_path))
        logger.info("UBM init: k-means of %d frames (dim %d) into %d Gaussians", len(frames), frames.shape[1], cfg.num_components)
        device = resolve_device(cfg.device)
        gmm = ubm_lib.kmeans_init(torch.as_tensor(frames, device=device), cfg.num_components, cfg.kmeans_iters, cfg.seed, cfg.chunk_frames)
        gmm.save(ubm_dir / "0.pt")
        start = 0
    _ubm_em(ubm_dir, cuts_path, start, cfg.num_iters, num_jobs, cmd, full=False)
    final = ubm_dir / f"{cfg.num_iters}.pt"
    if cfg.full_cov_iters > 0:
        if _latest(ubm_dir, cfg.full_cov_iters, "full") < 0:
            full_ubm.FullGmm.from_diag(full_ubm.load_ubm(final)).save(ubm_dir / "full0.pt")
        _ubm_em(ubm_dir, cuts_path, _latest(ubm_dir, cfg.full_cov_iters, "full"), cfg.full_cov_iters, num_jobs, cmd, full=True)
        final = ubm_dir / f"full{cfg.full_cov_iters}.pt"
    shutil.copyfile(final, ubm_dir / "final.pt")
    plot_objective(ubm_dir)
    mark_done(ubm_dir)
    return full_ubm.load_ubm(ubm_dir / "final.pt")


def read_objective(model_dir: Path) -> dict[str, dict[int, float]]:
    """``{series: {iteration: value}}`` from ``model_dir/objective.tsv`` (empty when there is none)."""
    series: dict[str, dict[int, float]] = {}
    path = model_dir / "objective.tsv"
    if path.is_file():
        for line in path.read_text().splitlines()[1:]:
            name, it, value = line.split("\t")
            series.setdefault(name, {})[int(it)] = float(value)
    return series


def record_objective(model_dir: Path, name: str, it: int, value: float) -> None:
    """Set iteration ``it`` of series ``name`` in ``model_dir/objective.tsv`` (rewritten atomically; a rerun of
    an interrupted iteration replaces its value)."""
    series = read_objective(model_dir)
    series.setdefault(name, {})[it] = float(value)
    rows = [f"{n}\t{i}\t{v!r}" for n, values in series.items() for i, v in sorted(values.items())]
    write_text_atomic(model_dir / "objective.tsv", "series\titer\tvalue\n" + "".join(r + "\n" for r in rows))


def plot_objective(model_dir: Path) -> None:
    """``model_dir/objective.png``: one panel per series of ``objective.tsv``, value against EM iteration."""
    from matplotlib.ticker import MaxNLocator

    from cimc.plotting import pyplot, save_png

    series = read_objective(model_dir)
    if not series:
        return
    fig, axes = pyplot().subplots(1, len(series), figsize=(5 * len(series), 3.5), squeeze=False)
    for ax, (name, values) in zip(axes[0], series.items()):
        iters = sorted(values)
        ax.plot(iters, [values[i] for i in iters], marker="o")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("EM iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, model_dir / "objective.png")


def _ubm_em(ubm_dir: Path, cuts_path: Path, start: int, num_iters: int, num_jobs: int, cmd: str | None, full: bool) -> None:
    """EM iterations ``start`` .. ``num_iters - 1`` of the diagonal (or full) UBM, split over jobs."""
    config = load_config(IvectorConfig, ubm_dir / "config.yaml")
    prefix, kind = ("full", "full-ubm") if full else ("", "ubm")
    previous = -math.inf
    for it in range(start, num_iters):
        run_jobs(
            lambda job: ubm_job(ubm_dir, cuts_path, it, job, num_jobs, full),
            ["ivector", "acc-job", "--kind", kind, "--dir", str(ubm_dir), "--cuts", str(cuts_path), "--iter", str(it),
             "--job", "JOB", "--nj", str(num_jobs)],
            num_jobs, cmd, ubm_dir / "log", f"acc.{prefix}{it}",
        )
        accs = [ubm_dir / "acc" / f"{prefix}ubm.{it}.{j}.pt" for j in range(1, num_jobs + 1)]
        stats = _merge(accs, full_ubm.FullUbmStats.load if full else ubm_lib.UbmStats.load)
        per_frame = stats.log_likelihood / max(stats.num_frames, 1)
        logger.info("%s UBM iter %d: log-likelihood %.4f per frame over %d frames", "full" if full else "diagonal", it, per_frame, stats.num_frames)
        record_objective(ubm_dir, f"{'full' if full else 'diagonal'} UBM: log-likelihood per frame", it, per_frame)
        if per_frame < previous - 1e-6:  # EM cannot do this unless flooring or re-seeding stepped in
            logger.warning("UBM log-likelihood fell from %.4f to %.4f (variance/weight floors at work?)", previous, per_frame)
        previous = per_frame
        if full:
            model = full_ubm.estimate(stats, config.ubm.var_floor)
        else:
            model = ubm_lib.estimate(stats, config.ubm.var_floor, config.ubm.weight_floor)
        model.save(ubm_dir / f"{prefix}{it + 1}.pt")
        for path in accs:
            path.unlink()


# ------------------------------------------------------------------------------- statistics batches


def stats_batches(cuts: Sequence, config: IvectorConfig, gmm, device: str, desc: str):
    """Yield (ids, N (B, C), F (B, C, D), {short id: frames}) per batch of ``extractor.batch_size`` cuts.

    Utterances with fewer than ``frontend.min_frames`` voiced frames get zero statistics.
    """
    cfg = config.extractor
    for batch in _batches(iter_utterances(cuts, config.frontend, desc=desc), cfg.batch_size):
        short = {u.id: len(u.frames) for u in batch if len(u.frames) < config.frontend.min_frames}
        frames = [u.frames if len(u.frames) >= config.frontend.min_frames else u.frames[:0] for u in batch]
        counts, first = ext.baum_welch_stats(gmm, frames, cfg.num_gselect, cfg.min_post, cfg.posterior_scale, device)
        yield [u.id for u in batch], counts, first, short


# ------------------------------------------------------------------------------------------ T-matrix


def extractor_job(model_dir: Path, cuts_path: Path, iteration: int, job: int, num_jobs: int) -> None:
    """One job of one T-matrix EM iteration -> ``acc/extractor.ITER.JOB.pt``."""
    config = load_config(IvectorConfig, model_dir / "config.yaml")
    device = resolve_device(config.extractor.device)
    gmm = full_ubm.load_ubm(model_dir.parent / "ubm" / "final.pt").to(device)
    model = ext.IvectorExtractor.load(model_dir / f"{iteration}.pt").to(device)
    stats = ext.ExtractorStats.zeros(model.num_components, model.feat_dim, model.ivector_dim)
    cuts = split_for_job(read_cuts(cuts_path), job, num_jobs)
    for _, counts, first, short in stats_batches(cuts, config, gmm, device, f"T-matrix iter {iteration} job {job}"):
        keep = counts.sum(1) > 0  # short utterances carry no information about T
        if keep.any():
            ext.accumulate(model, counts[keep], first[keep], stats)
    stats.save(model_dir / "acc" / f"extractor.{iteration}.{job}.pt")


def _training_subset(cuts_path: Path, max_utterances: int, out: Path) -> Path:
    """The ``max_utterances`` longest cuts (Kaldi v1 trains T on the 100k longest), written to ``out``."""
    if max_utterances <= 0:
        return cuts_path
    from lhotse import CutSet

    cuts = read_cuts(cuts_path)
    if len(cuts) <= max_utterances:
        return cuts_path
    longest = sorted(cuts, key=lambda c: -c.duration)[:max_utterances]
    CutSet.from_cuts(longest).to_file(out)
    logger.info("T-matrix trained on the %d longest of %d utterances (%s)", max_utterances, len(cuts), out)
    return out


def train_extractor(cuts_path: str | Path, config: IvectorConfig, exp_dir: str | Path, num_jobs: int = 1, cmd: str | None = None) -> ext.IvectorExtractor:
    """Total-variability matrix by ``extractor.num_iters`` EM iterations from Kaldi's random start.

    Needs ``exp_dir/ubm/final.pt``. :return: the final model (``exp_dir/extractor/final.pt``).
    """
    model_dir = Path(exp_dir) / "extractor"
    check_saved_config(model_dir / "config.yaml", config, f"delete {model_dir} to retrain it", may_change=("backend",))
    if is_done(model_dir):
        for source in (cuts_path, Path(exp_dir) / "ubm" / "final.pt"):  # recomputed features, a retrained UBM
            warn_if_newer(source, model_dir)
        logger.info("%s is done; delete its .done to retrain", model_dir)
        return ext.IvectorExtractor.load(model_dir / "final.pt")
    cfg = config.extractor
    gmm = full_ubm.load_ubm(Path(exp_dir) / "ubm" / "final.pt")
    save_config(config, model_dir / "config.yaml")
    train_cuts = _training_subset(Path(cuts_path), cfg.max_utterances, model_dir / "train_cuts.jsonl.gz")
    start = _latest(model_dir, cfg.num_iters)
    if start < 0:
        ext.IvectorExtractor.initialize(gmm, cfg.ivector_dim, cfg.prior_offset, cfg.seed).save(model_dir / "0.pt")
        start = 0
    for it in range(start, cfg.num_iters):
        run_jobs(
            lambda job: extractor_job(model_dir, train_cuts, it, job, num_jobs),
            ["ivector", "acc-job", "--kind", "extractor", "--dir", str(model_dir), "--cuts", str(train_cuts),
             "--iter", str(it), "--job", "JOB", "--nj", str(num_jobs)],
            num_jobs, cmd, model_dir / "log", f"acc.{it}",
        )
        accs = [model_dir / "acc" / f"extractor.{it}.{j}.pt" for j in range(1, num_jobs + 1)]
        stats = _merge(accs, ext.ExtractorStats.load)
        if stats.num_utterances == 0:
            raise ValueError(f"{train_cuts}: no utterance has {config.frontend.min_frames} voiced frames; cannot train T")
        model = ext.IvectorExtractor.load(model_dir / f"{it}.pt")
        log_likelihood, auxiliary = ext.ivector_log_likelihood_per_utt(stats), ext.auxiliary(model.projection, stats)
        logger.info("T-matrix iter %d: log-likelihood %.3f per utterance over %d utterances, auxiliary %.4g", it,
                    log_likelihood, stats.num_utterances, auxiliary)
        record_objective(model_dir, "T-matrix: i-vector log-likelihood per utterance", it, log_likelihood)
        record_objective(model_dir, "T-matrix: EM auxiliary function", it, auxiliary)
        ext.estimate(model, stats, cfg.min_divergence).save(model_dir / f"{it + 1}.pt")
        for path in accs:
            path.unlink()
    shutil.copyfile(model_dir / f"{cfg.num_iters}.pt", model_dir / "final.pt")
    plot_objective(model_dir)
    mark_done(model_dir)
    return ext.IvectorExtractor.load(model_dir / "final.pt")
