"""Atomic file writes: a temporary file in the target folder, fsync, then rename.

A reader (or a resumed batch) therefore sees either no file or the whole file, never a
partial one, even after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_with"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a binary file for writing that appears at ``path`` only when the block succeeds.

    Parameters
    ----------
    path : path-like
        Final location. Parent folders are created.
    mode : int
        Permission bits of the final file (e.g. ``0o600`` for secret material).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name stays short (a long final name plus the random part would exceed 255 bytes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, mode=mode) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, mode: int = 0o644) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[BinaryIO], None], *, mode: int = 0o644) -> None:
    """Call ``writer(fh)`` on a temporary file, then move it to ``path``."""
    with atomic_open(path, mode=mode) as fh:
        writer(fh)

