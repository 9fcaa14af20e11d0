"""Small helpers shared by every stage: logging, atomic writes, devices, `.done` markers, unique ids."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"


def setup_logging(verbose: bool = False, log_file: str | Path | None = None) -> None:
    """Configure the root logger once: time, level, ``file:line`` (and rank under torchrun).

    :param verbose: DEBUG instead of INFO.
    :param log_file: also append to this file (created with its folder).
    """
    rank = os.environ.get("RANK")
    fmt = LOG_FORMAT if rank is None else LOG_FORMAT.replace("%(levelname)s", f"%(levelname)s rank{rank}")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt, handlers=handlers, force=True)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (os.umask can only swap it, which for
    a moment gives files that another thread creates mode 0666)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def array_digest(array) -> str:
    """Hex digest of an array's dtype, shape and bytes (blake2b; ~1 GB/s): tells whether a checkpoint was
    trained on these very vectors, where N and D alone could match re-extracted ones."""
    import hashlib

    import numpy as np

    array = np.ascontiguousarray(array)
    digest = hashlib.blake2b(f"{array.dtype.str}{array.shape}".encode(), digest_size=16)
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash mid-write never leaves a truncated output that a rerun would mistake for a finished one.
    The temporary name keeps ``path``'s suffixes, so writers that pick a format by suffix still work.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> out.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():  # mkstemp made it 0600: give it the mode a plain open() would (shared exp/ folders)
            tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def resolve_device(device: str = "auto", cpu_fallback: bool = False) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is visible, else ``cpu``; pass other names through.

    ``cuda`` asked for where torch sees no GPU is an error that says so (torch's own is an AssertionError,
    "Torch not compiled with CUDA enabled", at the first tensor moved there), or with ``cpu_fallback``
    (embedding with a model trained on a GPU) a warning and ``cpu``.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        if cpu_fallback:
            logger.warning("device %s requested but CUDA is not available; using the CPU", device)
            return "cpu"
        raise ValueError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU (a CPU build, or "
                         f"CUDA_VISIBLE_DEVICES empty); use device auto or cpu")
    return device


@contextlib.contextmanager
def tf32_switches_kept() -> Iterator[None]:
    """Puts torch's process-wide TF32 switches (CUDA matmul, cuDNN) back as they were on leaving."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class OutputBusyError(OSError):
    """Another process holds the output folder (:func:`exclusive_dir`)."""


def _take_lock(out_dir: Path, command: str, lock_name: str = ".lock", instead: str = "another output folder"):
    """``out_dir/lock_name`` opened, flocked and naming ``command``; None (warned) where the folder is read-only or
    its file system does not lock files. OutputBusyError when another process holds it."""
    import errno
    import fcntl

    try:
        lock = open(out_dir / lock_name, "a+")
    except OSError as e:  # a read-only folder (a shared finished exp/): it can still be read back
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        logger.warning("%s: cannot write its %s (%s); going on without guarding it against a second run",
                       out_dir, lock_name, e.strerror)
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise OutputBusyError(f"{out_dir} is being written by {holder}; wait for it to finish, or give "
                              f"{instead}") from None
    except OSError as e:  # file systems without flock (Lustre without -o flock, some NFS)
        lock.close()
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        logger.warning("%s: its file system does not lock files (%s); going on without guarding it against "
                       "a second run", out_dir, e.strerror)
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{command} (pid {os.getpid()})\n")
    lock.flush()
    return lock


@contextlib.contextmanager
def exclusive_dir(out_dir: str | Path, command: str, lock_name: str = ".lock",
                  instead: str = "another output folder") -> Iterator[Path]:
    """Hold ``out_dir/lock_name`` (an flock, released when the process ends however it ends) while ``command``
    writes ``out_dir``; a second run into the same folder stops at once, naming it, instead of both writing one
    checkpoint. Another ``lock_name`` guards another kind of writer (CIMC's checkpoints) in the same folder;
    ``instead`` ends the error (what to give instead).
    """
    import fcntl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(out_dir, command, lock_name, instead)
    try:
        yield out_dir
    finally:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


def is_done(out_dir: str | Path) -> bool:
    """True if ``out_dir`` holds a ``.done`` marker from a finished run."""
    return (Path(out_dir) / ".done").exists()


def mark_done(out_dir: str | Path) -> None:
    """Leave a ``.done`` marker in ``out_dir`` (icefall/Kaldi convention for resumable stages)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / ".done").touch()


def warn_if_newer(input_path: str | Path, out_dir: str | Path, finished: str | Path | None = None,
                  redo: str | None = None) -> None:
    """Warn when ``input_path`` changed after ``out_dir`` was finished: its outputs came from an earlier version.

    ``finished`` is the file written last (default ``out_dir/.done``); ``redo`` what to delete (default ``out_dir``).
    """
    done = Path(finished) if finished is not None else Path(out_dir) / ".done"
    if Path(input_path).is_file() and done.is_file() and Path(input_path).stat().st_mtime > done.stat().st_mtime:
        logger.warning("%s is newer than the finished %s (made from an earlier version of it?); delete %s to redo it",
                       input_path, out_dir, redo or out_dir)


def name_some(items: Iterable[str], limit: int = 10, sep: str = ", ") -> str:
    """The first ``limit`` items joined by ``sep``, with " ..." when there are more (for messages)."""
    items = list(items)
    return sep.join(items[:limit]) + (" ..." if len(items) > limit else "")


def check_unique(ids: Iterable[str], what: str, where: str | Path | None = None) -> None:
    """Raise ``ValueError`` naming (and counting) ids that occur more than once, prefixed by ``where`` (a file)."""
    dups = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dups:
        prefix = f"{where}: " if where is not None else ""
        raise ValueError(f"{prefix}{len(dups)} duplicate {what} id(s): {name_some(dups)}")
