"""The one exception type a user sees.

Every error caused by input (a corrupt file, a wrong key, a bad option) is raised as
:class:`MedcloakError` with a one-line message naming the file and the reason. The CLI prints
that line and exits with status 2; it never prints a traceback for these.
"""

from __future__ import annotations

import os

__all__ = ["MedcloakError", "printable"]


class MedcloakError(Exception):
    """A user-facing error: one line, naming the file (if any) and the reason.

    Parameters
    ----------
    reason : str
        What is wrong, in words a user can act on.
    path : str or os.PathLike, optional
        The file the error is about; it is put in front of the reason.
    """

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        self.reason = " ".join(str(reason).split())  # always one line
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.reason if self.path is None else f"{self.path}: {self.reason}")


def printable(text: str) -> str:
    r"""``text`` safe to print or write as UTF-8: bytes of a non-UTF-8 file name become ``\xNN``.

    File names that are not valid UTF-8 reach Python as lone surrogates (``surrogateescape``),
    which no UTF-8 stream accepts; this turns them into escaped text instead of a crash.

    >>> printable("caf\udce9.png")
    'caf\\xe9.png'
    """
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
