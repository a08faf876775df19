"""Files written whole or not at all, and folder locks across processes."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _atomic(path: Path, write: Callable[[IO[Any]], object], binary: bool) -> None:
    """Write to a temporary file next to ``path``, then rename it into place (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda fh: fh.write(text), binary=False)


def atomic_save_array(path: Path, array: Any) -> None:
    """``numpy.save`` of ``array`` to ``path``, atomically."""
    import numpy as np

    _atomic(path, lambda fh: np.save(fh, array, allow_pickle=False), binary=True)


@contextlib.contextmanager
def folder_lock(directory: Path) -> Iterator[bool]:
    """An exclusive lock on ``directory`` shared by every process (``fcntl.flock`` on ``.lock``).

    Yields False when the lock file cannot be created (a read-only folder): the caller goes on
    without the cross-process guarantee."""
    try:
        import fcntl

        handle = open(directory / ".lock", "a+")  # noqa: SIM115 - held for the block
    except OSError:
        yield False
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield True
    finally:
        handle.close()  # releases the lock
