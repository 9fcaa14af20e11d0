"""Read and write per-utterance vectors (i-vectors, embeddings): .npy + id list, or Kaldi ark/scp.

One format convention for every stage: ``PREFIX.npy`` holds an (N, D) float32 matrix and
``PREFIX.ids`` the N utterance ids, one a line, in row order. The same vectors can also be written
as ``PREFIX.ark``/``PREFIX.scp`` with kaldiio for Kaldi tools.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cimc.utils import atomic_path, write_text_atomic


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


def load_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Load (ids, vectors (N, D) float32) from ``X.npy`` (+ ``X.ids``), ``X.scp`` or ``X.ark``.

    A .npy without a .ids file gets ids ``"0" .. "N-1"``.
    """
    path = Path(path)
    if path.suffix in {".scp", ".ark"}:
        import kaldiio

        reader = kaldiio.load_scp(str(path)) if path.suffix == ".scp" else kaldiio.load_ark(str(path))
        items = list(reader.items()) if path.suffix == ".scp" else list(reader)
        if not items:
            raise ValueError(f"{path}: no vectors")
        ids = [k for k, _ in items]
        return ids, np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for _, v in items])
    npy = _strip(path).with_suffix(".npy")
    if not npy.is_file():
        raise FileNotFoundError(f"vectors file {npy} does not exist")
    vectors = np.load(npy).astype(np.float32, copy=False)
    if vectors.ndim != 2:
        raise ValueError(f"{npy}: expected an (N, D) matrix, got shape {vectors.shape}")
    ids_file = npy.with_suffix(".ids")
    if ids_file.is_file():
        ids = ids_file.read_text().split()
        if len(ids) != vectors.shape[0]:
            raise ValueError(f"{ids_file}: {len(ids)} ids for {vectors.shape[0]} rows of {npy}")
    else:
        ids = [str(i) for i in range(vectors.shape[0])]
    return ids, vectors
