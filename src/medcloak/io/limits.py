"""Size limits checked from a file's header before any pixel is decoded, and the regular-file check.

A small compressed file can declare a huge image (a 1.6 MB TIFF or NPZ that asks for 12 GiB, a
140 KB PNG that decodes to gigabytes). Every reader calls :func:`check_pixels` with the shape it
read from the header and refuses the file before decoding. The defaults are generous for X-ray
angiography: 4096 x 4096 pixels per frame and 4096 x 4096 x 300 pixels per file.

Change them per call (``limits=Limits(...)``), per run (``medcloak obfuscate --max-frame-pixels
--max-file-pixels``) or process-wide with :func:`set_default_limits`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from medcloak.errors import MedcloakError

__all__ = ["Limits", "DEFAULT_LIMITS", "check_pixels", "check_regular_file", "get_default_limits",
           "set_default_limits", "read_capped", "MAX_MODEL_FILE_BYTES"]

#: Largest VAE weight file :meth:`Obfuscator.load` reads (bytes).
MAX_MODEL_FILE_BYTES = 2 << 30


@dataclass(frozen=True)
class Limits:
    """Maximum pixel counts (grey pixels; colour channels are not counted).

    Attributes
    ----------
    max_frame_pixels : int
        Height x width of one frame.
    max_file_pixels : int
        Frames x height x width of one file.
    """

    max_frame_pixels: int = 4096 * 4096
    max_file_pixels: int = 4096 * 4096 * 300

    def __post_init__(self):
        if int(self.max_frame_pixels) < 1 or int(self.max_file_pixels) < 1:
            raise MedcloakError("pixel limits must be >= 1")


DEFAULT_LIMITS = Limits()
_default = [DEFAULT_LIMITS]


def get_default_limits() -> Limits:
    """The limits used when a reader is given none."""
    return _default[0]


def set_default_limits(limits: Limits) -> None:
    """Set the process-wide default limits."""
    _default[0] = limits


def check_pixels(n_frames: int, height: int, width: int, path, limits: Limits | None = None) -> None:
    """Refuse a file whose header declares more pixels than ``limits`` allow.

    Raises
    ------
    MedcloakError
        Naming the file, the declared size and the limit.
    """
    lim = limits or get_default_limits()
    n, h, w = int(n_frames), int(height), int(width)
    if n < 0 or h < 0 or w < 0:
        raise MedcloakError(f"header declares a negative size ({n} x {h} x {w})", path)
    if h * w > lim.max_frame_pixels:
        raise MedcloakError(f"frame of {h} x {w} = {h * w} pixels exceeds the limit of {lim.max_frame_pixels} "
                            "pixels per frame (checked before decoding; raise it with --max-frame-pixels)", path)
    if n * h * w > lim.max_file_pixels:
        raise MedcloakError(f"{n} frames of {h} x {w} = {n * h * w} pixels exceed the limit of "
                            f"{lim.max_file_pixels} pixels per file (checked before decoding; raise it with "
                            "--max-file-pixels)", path)


def check_regular_file(path: str | os.PathLike) -> None:
    """Refuse anything that is not a regular file (FIFO, device, socket) before opening it.

    Opening a FIFO blocks until a writer comes; ``/dev/zero`` never ends.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise MedcloakError(f"cannot open ({exc.strerror or exc.__class__.__name__})", path) from None
    if stat.S_ISDIR(mode):
        raise MedcloakError("is a folder, not an image file", path)
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "special")
        raise MedcloakError(f"not a regular file ({kind}); refused", path)


def read_capped(path: str | os.PathLike, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes`` bytes (checked before and while reading)."""
    p = Path(path)
    check_regular_file(p)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise MedcloakError(f"file of {size} bytes exceeds the limit of {max_bytes} bytes", p)
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise MedcloakError(f"cannot read ({exc.strerror or exc.__class__.__name__})", p) from None
    if len(data) > max_bytes:
        raise MedcloakError(f"file exceeds the limit of {max_bytes} bytes", p)
    return data
