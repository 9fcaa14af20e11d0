"""Stage 3a: i-vectors for a cut set with the trained UBM and T-matrix, split over ``nj`` jobs.

Outputs in ``exp_dir`` (``$exp/ivector``): ``ivectors_NAME.npy/.ids`` (cimc.vectors), optionally
``.ark/.scp`` (kaldiio), ``ivectors_NAME_cuts.jsonl.gz`` (each cut carries its i-vector in
``custom["ivector"]``) and ``short_NAME.txt`` listing utterances with too few voiced frames (their
i-vector is the prior mean, zero).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cimc.config import load_config
from cimc.data.layout import iter_cuts, read_cuts
from cimc.ivector import extractor as ext
from cimc.ivector.full_ubm import load_ubm
from cimc.ivector.config import IvectorConfig
from cimc.ivector.frontend import report_short, split_for_job
from cimc.ivector.jobs import run_jobs
from cimc.ivector.pipeline import stats_batches
from cimc.utils import name_some, resolve_device, write_text_atomic
from cimc.vectors import load_vectors, nonfinite_rows, save_vectors

logger = logging.getLogger(__name__)


def extract_job(exp_dir: Path, cuts_path: Path, name: str, job: int, num_jobs: int) -> None:
    """i-vectors of one job's share of the cuts -> ``parts/NAME_jobJOB.npy/.ids`` and ``.short`` (``utt frames``)."""
    model_dir = exp_dir / "extractor"
    config = load_config(IvectorConfig, model_dir / "config.yaml")
    device = resolve_device(config.extractor.device)
    gmm = load_ubm(exp_dir / "ubm" / "final.pt").to(device)
    model = ext.IvectorExtractor.load(model_dir / "final.pt").to(device)
    ids, vectors, short = [], [], {}
    cuts = split_for_job(read_cuts(cuts_path), job, num_jobs)
    for batch_ids, counts, first, batch_short in stats_batches(cuts, config, gmm, device, f"i-vectors {name} job {job}"):
        ids += batch_ids
        vectors.append(model.extract(counts, first).cpu().numpy())
        short.update(batch_short)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, model.ivector_dim), np.float32)
    bad = nonfinite_rows(matrix)
    if bad.size:  # here, in the job's log, rather than when the parts are read back
        raise FloatingPointError(f"{bad.size} non-finite i-vector(s): {name_some(ids[i] for i in bad)}; "
                                 f"check their features")
    prefix = _part_prefix(exp_dir, name, job)
    save_vectors(prefix, ids, matrix)
    write_text_atomic(f"{prefix}.short", "".join(f"{u} {n}\n" for u, n in short.items()))


def _part_prefix(exp_dir: Path, name: str, job: int) -> Path:
    return exp_dir / "parts" / f"{name}_job{job}"


def attach_ivectors(cuts_path: Path, ids: list[str], vectors: np.ndarray, out: Path) -> None:
    """Write the cuts of ``cuts_path`` with ``custom["ivector"]`` = their i-vector (list of floats)."""
    from lhotse import CutSet

    row = {u: i for i, u in enumerate(ids)}
    attached = [c.with_custom("ivector", [float(v) for v in vectors[row[c.id]]])
                for c in iter_cuts(cuts_path) if c.id in row]
    CutSet.from_cuts(attached).to_file(out)


def extract_ivectors(
    cuts_path: str | Path, exp_dir: str | Path, name: str, num_jobs: int = 1, cmd: str | None = None,
    kaldi: bool = True, attach: bool = True,
) -> tuple[list[str], np.ndarray]:
    """i-vectors (N, R) of every cut in ``cuts_path`` (row order = manifest order), written to ``exp_dir``.

    Needs ``exp_dir/ubm/final.pt`` and ``exp_dir/extractor/final.pt``.

    :param name: output prefix, e.g. ``train`` -> ``ivectors_train.npy``.
    :param kaldi: also write ``ivectors_NAME.ark/.scp``.
    :param attach: also write ``ivectors_NAME_cuts.jsonl.gz``.
    """
    exp_dir, cuts_path = Path(exp_dir), Path(cuts_path)
    run_jobs(
        lambda job: extract_job(exp_dir, cuts_path, name, job, num_jobs),
        ["ivector", "acc-job", "--kind", "extract", "--dir", str(exp_dir), "--cuts", str(cuts_path), "--name", name,
         "--iter", "0", "--job", "JOB", "--nj", str(num_jobs)],
        num_jobs, cmd, exp_dir / "log", f"extract_{name}",
    )
    ids, parts, short = [], [], {}
    for job in range(1, num_jobs + 1):
        prefix = _part_prefix(exp_dir, name, job)
        part_ids, part = load_vectors(f"{prefix}.npy")
        ids += part_ids
        parts.append(part)
        short.update((u, int(n)) for u, n in (line.split() for line in Path(f"{prefix}.short").read_text().splitlines()))
    vectors = np.concatenate(parts)  # finite: each job checked its own, and load_vectors again
    save_vectors(exp_dir / f"ivectors_{name}", ids, vectors, kaldi=kaldi)
    write_text_atomic(exp_dir / f"short_{name}.txt", "".join(f"{u} {n}\n" for u, n in short.items()))
    min_frames = load_config(IvectorConfig, exp_dir / "extractor" / "config.yaml").frontend.min_frames
    report_short(short, min_frames, f"{cuts_path} (list: {exp_dir / f'short_{name}.txt'})")
    if attach:
        attach_ivectors(cuts_path, ids, vectors, exp_dir / f"ivectors_{name}_cuts.jsonl.gz")
    for job in range(1, num_jobs + 1):
        for suffix in (".npy", ".ids", ".short"):
            Path(f"{_part_prefix(exp_dir, name, job)}{suffix}").unlink(missing_ok=True)
    logger.info("%d i-vectors of dimension %d -> %s", len(ids), vectors.shape[1], exp_dir / f"ivectors_{name}.npy")
    return ids, vectors
