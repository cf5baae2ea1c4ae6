"""Ordinary image files (PNG for now; the io engineer extends this to JPEG/TIFF/NPY/NPZ).

Writers are deterministic: the same array gives byte-identical files.
"""

from __future__ import annotations

import io as _io
import os

import numpy as np
from PIL import Image

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_bytes

__all__ = ["to_uint", "write_png"]


def to_uint(img: np.ndarray, *, bits: int = 8) -> np.ndarray:
    """Convert a float image in [0, 1] to uint8 (``bits=8``) or uint16 (``bits=16``), rounding to nearest."""
    if bits not in (8, 16):
        raise MedcloakError(f"bits must be 8 or 16, got {bits}")
    top = (1 << bits) - 1
    arr = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * top
    return np.rint(arr).astype(np.uint8 if bits == 8 else np.uint16)


def write_png(path: str | os.PathLike, img: np.ndarray, *, bits: int = 8) -> None:
    """Write a grey-scale float image in [0, 1] as an 8- or 16-bit PNG, atomically."""
    if np.ndim(img) != 2:
        raise MedcloakError(f"write_png needs a 2-D grey-scale image, got shape {np.shape(img)}", path)
    buf = _io.BytesIO()
    Image.fromarray(to_uint(img, bits=bits)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
