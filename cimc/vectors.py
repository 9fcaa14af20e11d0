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


VECTOR_SUFFIXES = (".npy", ".ids", ".ark", ".scp")
ACCEPTED_FORMS = "PREFIX.npy (with PREFIX.ids), PREFIX.ark or PREFIX.scp"


def _strip(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in VECTOR_SUFFIXES else path


def read_text(path: str | Path, expected: str) -> str:
    """The UTF-8 text of ``path``; a binary file raises ``ValueError`` naming it and ``expected`` (what it should
    hold), where Python would raise a ``UnicodeDecodeError`` that names neither."""
    path = Path(path)
    data = path.read_bytes()  # decoded in one piece, so the offset below is the file's
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({expected} expected; byte 0x{data[e.start]:02x} at offset "
                         f"{e.start} is not UTF-8)") from e


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

    text = read_text(scp, "'utterance rxspecifier' lines")
    entries = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
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


def _read_ark(ark: Path) -> list[tuple[str, np.ndarray]]:
    """(utt, vector) in file order; an entry that cannot be read is named by file, utterance and position.

    kaldiio's ``load_ark`` loop, so that its errors ("buffer size must be a multiple of element size" for a
    truncated ark, "... is not a digit" for text that is no ark) can name what was being read.
    """
    from kaldiio.matio import read_kaldi, read_token

    items: list[tuple[str, np.ndarray]] = []
    with ark.open("rb") as f:
        while True:
            utt = None
            try:
                utt = read_token(f)
                if utt is None:  # the end of the file
                    break
                items.append((utt, read_kaldi(f)))
            except Exception as e:  # kaldiio raises ValueError, RuntimeError, UnicodeDecodeError, ...
                what = f"utterance {utt!r}" if utt is not None else "the utterance id"
                reason = " ".join(str(e).split())  # kaldiio's own messages span lines
                raise ValueError(f"{ark}: cannot read {what} (entry {len(items) + 1}) as a Kaldi vector (expected a "
                                 f"binary ark, or text 'utterance [ v1 v2 ... ]' lines; truncated?): {reason}") from e
    return items


def _stack(path: Path, items: Sequence[tuple[str, np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """Check ids are unique and vectors of one size; return (ids, (N, D)) in the vectors' own dtype
    (:func:`_as_float32` casts and checks it)."""
    if not items:
        raise ValueError(f"{path}: no vectors")
    ids = [utt for utt, _ in items]
    check_unique(ids, "utterance", path)
    rows = [np.asarray(v).reshape(-1) for _, v in items]
    if rows[0].size == 0:
        raise ValueError(f"{path}: the vectors have dimension 0 (utterance {ids[0]!r} has no values)")
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


def _as_float32(path: Path, ids: Sequence[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``vectors`` (N, D) as float32; raise naming the first utterance whose vector holds NaN or inf (a metric or
    a score would be NaN), or a value too large for float32 (a float64 1e39 would become inf)."""
    with np.errstate(over="ignore"):  # an overflow is reported below, by utterance
        cast = vectors.astype(np.float32, copy=False)
    bad = nonfinite_rows(cast)
    if not bad.size:
        return list(ids), cast
    nonfinite = bad if cast is vectors else nonfinite_rows(vectors)  # rows that were so before the cast
    first = int(bad[0])
    if nonfinite.size and nonfinite[0] == first:
        raise ValueError(f"{path}: the vector of utterance {ids[first]!r} (row {first}) holds NaN or inf; "
                         f"{nonfinite.size} of {len(ids)} vectors do")
    overflow = np.setdiff1d(bad, nonfinite)
    largest = float(np.abs(vectors[first]).max())
    raise ValueError(f"{path}: the vector of utterance {ids[first]!r} (row {first}) overflows float32 "
                     f"({largest:.3g}; float32 holds magnitudes up to {float(np.finfo(np.float32).max):.2g}); "
                     f"{overflow.size} of {len(ids)} vectors do")


def load_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Load (ids, vectors (N, D) float32) from ``X.npy`` (+ ``X.ids``), ``X.scp`` or ``X.ark``.

    A .npy without a .ids file gets ids ``"0" .. "N-1"``. Ids must be unique; values must be finite in float32.
    A file that cannot be read raises ``ValueError`` naming it (and the utterance, where one is known).
    """
    path = Path(path)
    if path.suffix and path.suffix not in VECTOR_SUFFIXES:  # x.npz would otherwise be looked for as x.npy
        raise ValueError(f"{path}: unsupported vectors file suffix {path.suffix!r}; give {ACCEPTED_FORMS}")
    if path.suffix == ".scp":
        return _as_float32(path, *_stack(path, _read_scp(path)))
    if path.suffix == ".ark":
        return _as_float32(path, *_stack(path, _read_ark(path)))
    npy = _strip(path).with_suffix(".npy")
    if not npy.is_file():
        raise FileNotFoundError(f"vectors file {npy} does not exist")
    if npy.stat().st_size == 0:  # np.load raises a bare EOFError
        raise ValueError(f"{npy}: the file is empty; expected a .npy matrix")
    try:
        vectors = np.load(npy)
    except (OSError, ValueError, EOFError) as e:  # not a .npy, truncated, or an object array
        raise ValueError(f"{npy}: cannot read it as a .npy matrix: {e}") from e
    if not isinstance(vectors, np.ndarray):  # np.load opens a zip as an NpzFile
        vectors.close()
        raise ValueError(f"{npy}: a .npz archive, not a .npy matrix; save the matrix with np.save")
    if not np.issubdtype(vectors.dtype, np.number) or np.issubdtype(vectors.dtype, np.complexfloating):
        raise ValueError(f"{npy}: expected a matrix of real numbers, got dtype {vectors.dtype}")
    if vectors.ndim != 2:
        raise ValueError(f"{npy}: expected an (N, D) matrix, got shape {vectors.shape}")
    if vectors.shape[0] == 0:
        raise ValueError(f"{npy}: no vectors (shape {vectors.shape})")
    if vectors.shape[1] == 0:  # else every vector would look all-zero downstream
        raise ValueError(f"{npy}: the vectors have dimension 0 (shape {vectors.shape}); expected (N, D) with D >= 1")
    ids_file = npy.with_suffix(".ids")
    if ids_file.is_file():
        ids = read_text(ids_file, "utterance ids, one a line").split()
        if len(ids) != vectors.shape[0]:
            raise ValueError(f"{ids_file}: {len(ids)} ids for {vectors.shape[0]} rows of {npy}")
        check_unique(ids, "utterance", ids_file)
    else:
        ids = [str(i) for i in range(vectors.shape[0])]
    return _as_float32(npy, ids, vectors)
