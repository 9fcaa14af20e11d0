"""Read and write per-utterance vectors (i-vectors, embeddings): .npy + id list, or Kaldi ark/scp.

One format convention for every stage: ``PREFIX.npy`` holds an (N, D) float32 matrix and
``PREFIX.ids`` the N utterance ids, one a line, in row order. The same vectors can also be written
as ``PREFIX.ark``/``PREFIX.scp`` with kaldiio for Kaldi tools.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from cimc.utils import atomic_path, check_unique, write_text_atomic


def _strip(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in {".npy", ".ids", ".ark", ".scp"} else path


def save_vectors(prefix: str | Path, ids: Sequence[str], vectors: np.ndarray, kaldi: bool = False) -> None:
    """Write ``vectors`` (N, D) and ``ids`` (N) as ``prefix.npy`` + ``prefix.ids`` (and ark/scp if ``kaldi``)."""
    prefix = _strip(prefix)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != vectors.shape[0]:
        raise ValueError(f"{prefix}: {len(ids)} ids for a matrix of shape {vectors.shape}; expected (N, D)")
    with atomic_path(prefix.with_suffix(".npy")) as tmp:
        np.save(tmp, vectors)
    write_text_atomic(prefix.with_suffix(".ids"), "".join(f"{i}\n" for i in ids))
    if kaldi:
        import kaldiio

        ark, scp = prefix.with_suffix(".ark"), prefix.with_suffix(".scp")
        with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
            for utt, vec in zip(ids, vectors):
                writer(utt, vec)


def _read_scp(scp: Path) -> list[tuple[str, np.ndarray]]:
    """(utt, vector) in line order; a line that cannot be read is named by file, line and utterance."""
    import kaldiio

    entries = [(n, line.strip()) for n, line in enumerate(scp.read_text().splitlines(), start=1) if line.strip()]
    for lineno, line in entries:
        if len(line.split(maxsplit=1)) != 2:
            raise ValueError(f"{scp}:{lineno}: expected 'utterance rxspecifier', got {line!r}")
    items: list[tuple[str, np.ndarray]] = []
    try:  # the sequential reader keeps each ark open, not one open per utterance (bench/vectors_io.py)
        items.extend(kaldiio.load_scp_sequential(io.StringIO("".join(f"{line}\n" for _, line in entries))))
    except Exception as e:  # kaldiio raises OSError, ValueError or its own errors for a bad entry
        lineno, line = entries[min(len(items), len(entries) - 1)]
        utt, rxspecifier = line.split(maxsplit=1)
        raise ValueError(f"{scp}:{lineno}: cannot read utterance {utt!r} from {rxspecifier!r}: {e}") from e
    return items


def _stack(path: Path, items: Sequence[tuple[str, np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """Check ids are unique and vectors of one size; return (ids, (N, D) float32)."""
    if not items:
        raise ValueError(f"{path}: no vectors")
    ids = [utt for utt, _ in items]
    check_unique(ids, "utterance", path)
    rows = [np.asarray(v, dtype=np.float32).reshape(-1) for _, v in items]
    for utt, row in zip(ids, rows):
        if row.size != rows[0].size:
            raise ValueError(f"{path}: utterance {utt!r} has {row.size} values, {ids[0]!r} has {rows[0].size}")
    return ids, np.stack(rows)


def nonfinite_rows(vectors: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``vectors`` (N, D) that hold NaN or inf.

    A row's float64 sum is finite exactly when every float32 value in it is, so no (N, D) boolean mask is
    built (437 MB at 1.09M x 400); the time is the mask's (bench/nonfinite_rows.py: 0.25 s against 0.27 s).
    """
    vectors = np.asarray(vectors)
    if vectors.dtype.itemsize > 4:  # float64 values could overflow a float64 sum: the mask, then
        return np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    return np.flatnonzero(~np.isfinite(vectors.sum(axis=1, dtype=np.float64)))


def _check_finite(path: Path, ids: Sequence[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Raise naming the first utterance whose vector holds NaN or inf (a metric or a score would be NaN)."""
    bad = nonfinite_rows(vectors)
    if bad.size:
        raise ValueError(f"{path}: the vector of utterance {ids[bad[0]]!r} (row {bad[0]}) holds NaN or inf; "
                         f"{bad.size} of {len(ids)} vectors do")
    return list(ids), vectors


def load_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Load (ids, vectors (N, D) float32) from ``X.npy`` (+ ``X.ids``), ``X.scp`` or ``X.ark``.

    A .npy without a .ids file gets ids ``"0" .. "N-1"``. Ids must be unique; values must be finite.
    """
    path = Path(path)
    if path.suffix == ".scp":
        return _check_finite(path, *_stack(path, _read_scp(path)))
    if path.suffix == ".ark":
        import kaldiio

        return _check_finite(path, *_stack(path, list(kaldiio.load_ark(str(path)))))
    npy = _strip(path).with_suffix(".npy")
    if not npy.is_file():
        raise FileNotFoundError(f"vectors file {npy} does not exist")
    try:
        vectors = np.load(npy)
    except (OSError, ValueError) as e:  # not a .npy, truncated, or an object array
        raise ValueError(f"{npy}: cannot read it as a .npy matrix: {e}") from e
    if not np.issubdtype(vectors.dtype, np.number) or np.issubdtype(vectors.dtype, np.complexfloating):
        raise ValueError(f"{npy}: expected a matrix of real numbers, got dtype {vectors.dtype}")
    vectors = vectors.astype(np.float32, copy=False)
    if vectors.ndim != 2:
        raise ValueError(f"{npy}: expected an (N, D) matrix, got shape {vectors.shape}")
    ids_file = npy.with_suffix(".ids")
    if ids_file.is_file():
        ids = ids_file.read_text().split()
        if len(ids) != vectors.shape[0]:
            raise ValueError(f"{ids_file}: {len(ids)} ids for {vectors.shape[0]} rows of {npy}")
        check_unique(ids, "utterance", ids_file)
    else:
        ids = [str(i) for i in range(vectors.shape[0])]
    return _check_finite(npy, ids, vectors)
