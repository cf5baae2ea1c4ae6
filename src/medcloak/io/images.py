"""Ordinary image files: PNG, JPEG, TIFF, NPY and NPZ <-> float32 images in [0, 1].

Reading rules (one place, so every caller gets the same numbers):

* **Integer pixels** are scaled by the range of their dtype: ``uint8 / 255``, ``uint16 / 65535``,
  signed ``(x - min) / (max - min)`` of the dtype. A 12-bit image stored in a 16-bit PNG therefore
  stays dark (values up to 4095/65535); nothing is stretched per image.
* **Float pixels** (NPY/NPZ, float TIFF) already in [0, 1] are taken as they are; floats with
  any value outside [0, 1] are min-max scaled to [0, 1] per frame (a constant frame becomes 0).
  NaN or infinite values are an error.
* **Colour** (RGB, RGBA, palette, CMYK) becomes luminance with the ITU-R BT.601 weights
  ``Y = 0.299 R + 0.587 G + 0.114 B``; alpha is dropped.
* Stacks (multi-page TIFF, 3-D NPY of shape (N, H, W)) become one :class:`Frame` per page.

Writers are deterministic: the same array gives byte-identical files (no timestamps).
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_bytes
from medcloak.io.frames import Frame, FrameMeta
from medcloak.io.limits import Limits, check_pixels

__all__ = [
    "BT601",
    "to_uint",
    "to_unit_float",
    "rgb_to_luminance",
    "read_pil_image",
    "read_tiff",
    "read_array_file",
    "write_png",
    "PNG_ENCODINGS",
    "png_bytes",
    "write_npy",
    "npy_bytes",
]

#: ITU-R BT.601 luma weights for R, G, B.
BT601 = (0.299, 0.587, 0.114)


def to_uint(img: np.ndarray, *, bits: int = 8) -> np.ndarray:
    """Convert a float image in [0, 1] to uint8 (``bits=8``) or uint16 (``bits=16``), rounding to nearest."""
    if bits not in (8, 16):
        raise MedcloakError(f"bits must be 8 or 16, got {bits}")
    top = (1 << bits) - 1
    arr = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * top
    return np.rint(arr).astype(np.uint8 if bits == 8 else np.uint16)


def to_unit_float(arr: np.ndarray, *, path: str | os.PathLike | None = None) -> np.ndarray:
    """Scale an array of any numeric dtype to float32 in [0, 1] (rules in the module docstring).

    Parameters
    ----------
    arr : ndarray
        (H, W) or (N, H, W) grey values. For floats, min-max scaling (when needed) is done per
        frame along the last two axes.
    path : path-like, optional
        Named in the error message.

    Returns
    -------
    ndarray
        float32, same shape, values in [0, 1].
    """
    a = np.asarray(arr)
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype in (np.uint8, np.uint16):
        return np.take(_unit_table(a.dtype.itemsize * 8), a)
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        out = (a.astype(np.float64) - info.min) / float(info.max - info.min)
        return out.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise MedcloakError("image contains NaN or infinite values", path)
        if a.size == 0 or (a.min() >= 0.0 and a.max() <= 1.0):
            return a.astype(np.float32)
        lo = a.min(axis=(-2, -1), keepdims=True)
        span = a.max(axis=(-2, -1), keepdims=True) - lo
        out = np.where(span > 0, (a - lo) / np.where(span > 0, span, 1.0), 0.0)
        return out.astype(np.float32)
    raise MedcloakError(f"unsupported pixel type {a.dtype}", path)


_UNIT_TABLES: dict[int, np.ndarray] = {}


def _unit_table(bits: int) -> np.ndarray:
    """float32 value of every uint8 / uint16 code, computed exactly as the general integer rule
    (``(float64(v) - 0) / (2**bits - 1)``, then float32): a look-up gives the same bits, 4-5x faster."""
    table = _UNIT_TABLES.get(bits)
    if table is None:
        codes = np.arange(1 << bits, dtype=np.float64)
        table = (codes / float((1 << bits) - 1)).astype(np.float32)
        table.setflags(write=False)
        _UNIT_TABLES[bits] = table
    return table


def rgb_to_luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance of an (..., 3) or (..., 4) colour array with the ITU-R BT.601 weights.

    The input is scaled first with :func:`to_unit_float` rules for its dtype (floats must already
    be in [0, 1] for a meaningful result); alpha (a fourth channel) is ignored.

    Returns
    -------
    ndarray
        float32 of shape ``rgb.shape[:-1]`` in [0, 1].

    Examples
    --------
    >>> round(float(rgb_to_luminance(np.array([[255, 0, 0]], dtype=np.uint8))[0]), 4)
    0.299
    """
    a = np.asarray(rgb)
    if a.shape[-1] not in (3, 4):
        raise MedcloakError(f"colour image needs 3 or 4 channels in the last axis, got shape {a.shape}")
    unit = to_unit_float(a[..., :3].reshape(1, -1, 3)).reshape(a.shape[:-1] + (3,))
    y = unit.astype(np.float64) @ np.asarray(BT601)
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def _frames_from_stack(stack: np.ndarray, *, path, modality: str, bit_depth: int, fmt: str,
                       colour: bool) -> list[Frame]:
    """(N, H, W[, C]) stored values -> list of Frames."""
    frames = []
    n = stack.shape[0]
    for i in range(n):
        raw = stack[i]
        px = rgb_to_luminance(raw) if colour else to_unit_float(raw, path=path)
        meta = FrameMeta(source=os.fspath(path), frame_index=i, n_frames=n, modality=modality,
                         original_shape=tuple(int(s) for s in raw.shape), bit_depth=bit_depth,
                         extra={"format": fmt, "dtype": str(raw.dtype)})
        frames.append(Frame(np.ascontiguousarray(px, dtype=np.float32), meta))
    return frames


def _classify(arr: np.ndarray, path) -> tuple[np.ndarray, bool]:
    """Return (stack (N,H,W[,C]), is_colour) for an array of 2, 3 or 4 dimensions."""
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        return arr[None], True
    if arr.ndim == 3:
        return arr, False
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        return arr, True
    raise MedcloakError(f"cannot interpret an array of shape {arr.shape} as images "
                        "(expected (H, W), (N, H, W), (H, W, 3) or (N, H, W, 3))", path)


def _check_size(stack: np.ndarray, path) -> None:
    if stack.shape[0] == 0 or stack.shape[1] == 0 or stack.shape[2] == 0:
        raise MedcloakError(f"image has no pixels (shape {stack.shape})", path)


def _shape_pixels(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(frames, height, width) of an array shape as :func:`_classify` will read it (header only)."""
    sq = [int(s) for s in shape if int(s) != 1] or [1, 1]
    if len(sq) == 1:
        sq = [1, *sq]
    if len(sq) >= 3 and sq[-1] in (3, 4):
        n = 1
        for s in sq[:-3]:
            n *= s
        return n, sq[-3], sq[-2]
    n = 1
    for s in sq[:-2]:
        n *= s
    return n, sq[-2], sq[-1]


def read_pil_image(path: str | os.PathLike, *, limits: Limits | None = None) -> list[Frame]:
    """Read a PNG or JPEG (anything Pillow decodes, single frame) as one grey-scale :class:`Frame`.

    8-bit images are divided by 255, 16-bit ones by 65535; colour, palette and alpha images are
    reduced to BT.601 luminance. The file is opened read-only. The size in the header is checked
    against ``limits`` (:mod:`medcloak.io.limits`) before decoding.
    """
    try:
        with Image.open(path) as im:
            fmt = im.format or "image"
            mode = im.mode
            check_pixels(1, im.size[1], im.size[0], path, limits)
            im.load()
            if mode in ("1",):
                arr = np.asarray(im, dtype=bool)
                bits = 1
            elif mode in ("L", "LA"):
                arr = np.asarray(im.getchannel(0), dtype=np.uint8)
                bits = 8
            elif mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(im, dtype=np.uint16)
                bits = 16
            elif mode == "I":
                arr = np.asarray(im)
                bits = 16 if fmt == "PNG" else 32
                if fmt == "PNG":
                    arr = arr.astype(np.uint16)
            elif mode == "F":
                arr = np.asarray(im, dtype=np.float32)
                bits = 32
            else:  # RGB, RGBA, P, PA, CMYK, YCbCr, LAB, ...
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
                bits = 8
    except MedcloakError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MedcloakError(f"cannot decode image ({exc.__class__.__name__}: {exc})", path) from None
    colour = arr.ndim == 3
    stack = arr[None]
    _check_size(stack, path)
    return _frames_from_stack(stack, path=path, modality="OT", bit_depth=bits, fmt=fmt, colour=colour)


def read_tiff(path: str | os.PathLike, *, limits: Limits | None = None) -> list[Frame]:
    """Read a TIFF (8/16/32-bit integer or float, grey or RGB, one or many pages) with tifffile.

    Each page of a multi-page grey file becomes one :class:`Frame`. The shape in the header is
    checked against ``limits`` before decoding.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            check_pixels(*_shape_pixels(tuple(series.shape)), path, limits)
            arr = series.asarray()
            photometric = getattr(tif.pages[0], "photometric", None)
    except MedcloakError:
        raise
    except Exception as exc:  # tifffile raises many types (TiffFileError, ValueError, struct.error, ...)
        raise MedcloakError(f"cannot decode TIFF ({exc.__class__.__name__}: {exc})", path) from None
    arr = np.squeeze(arr) if arr.ndim > 2 else arr
    if photometric is not None and int(photometric) == 0 and np.issubdtype(arr.dtype, np.integer):
        arr = np.iinfo(arr.dtype).max - arr  # MINISWHITE -> invert to "high = bright"
    stack, colour = _classify(arr, path)
    _check_size(stack, path)
    bits = 1 if arr.dtype == bool else arr.dtype.itemsize * 8
    return _frames_from_stack(stack, path=path, modality="OT", bit_depth=bits, fmt="TIFF", colour=colour)


def _npy_header_shape(fh) -> tuple[int, ...]:
    """Shape from an NPY header (the file position is moved past the header)."""
    from numpy.lib import format as npformat

    version = npformat.read_magic(fh)
    if version == (1, 0):
        shape, _fortran, _dtype = npformat.read_array_header_1_0(fh)
    else:
        shape, _fortran, _dtype = npformat.read_array_header_2_0(fh)
    return tuple(shape)


def _check_array_header(fh, path, limits) -> None:
    """Check the declared shape of an NPY file, or of the first array of an NPZ, before loading."""
    import zipfile

    head = fh.read(6)
    fh.seek(0)
    if head.startswith(b"\x93NUMPY"):
        shape = _npy_header_shape(fh)
    elif head[:2] == b"PK":
        with zipfile.ZipFile(fh) as zf:
            names = zf.namelist()
            if not names:
                return
            with zf.open(names[0]) as member:
                shape = _npy_header_shape(member)
    else:
        return
    fh.seek(0)
    check_pixels(*_shape_pixels(shape), path, limits)


def read_array_file(path: str | os.PathLike, *, limits: Limits | None = None) -> list[Frame]:
    """Read an ``.npy`` file, or the first array of an ``.npz`` file (``allow_pickle=False``).

    Accepted shapes: (H, W), (N, H, W), (H, W, 3|4), (N, H, W, 3|4). A 3-D array whose last axis
    is 3 or 4 and whose first axis is larger than 4 is taken as one colour image. The shape in
    the header is checked against ``limits`` before the array is read.
    """
    try:
        with open(path, "rb") as fh:
            _check_array_header(fh, path, limits)
            data = np.load(fh, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                with data:
                    keys = list(data.files)
                    if not keys:
                        raise MedcloakError("NPZ archive holds no arrays", path)
                    arr = data[keys[0]]
                fmt = "NPZ"
            else:
                arr = np.asarray(data)
                fmt = "NPY"
    except MedcloakError:
        raise
    except Exception as exc:  # numpy/zipfile raise OSError, ValueError, BadZipFile, EOFError, ...
        raise MedcloakError(f"not a valid NPY/NPZ file ({exc.__class__.__name__}: {exc})", path) from None
    if not isinstance(arr, np.ndarray):
        raise MedcloakError("not a valid NPY/NPZ file (no array inside)", path)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise MedcloakError(f"unsupported array dtype {arr.dtype}", path)
    stack, colour = _classify(arr, path)
    _check_size(stack, path)
    bits = 1 if arr.dtype == bool else arr.dtype.itemsize * 8
    return _frames_from_stack(stack, path=path, modality="OT", bit_depth=bits, fmt=fmt, colour=colour)


#: How an output PNG is encoded (the pixels are the same under both; the file bytes are not):
#: ``compat`` is Pillow's default (zlib level 6, the declared bit depth), byte for byte the files
#: of medcloak before issue 17; ``fast`` is zlib level 1, and a 16-bit image whose every code is
#: an 8-bit code times 257 is stored with 8 bits (it decodes to the same float32 values, k/255 ==
#: 257k/65535). Measured on 512 px frames (one thread): the keyed map's output 23.4 -> 9.2 ms per
#: frame at the same size (199 -> 198 kB); block-wise scrambling's 16-bit output 32.9 -> 11.6 ms
#: (445 -> 236 kB); blur's 16-bit output 46.5 -> 17.8 ms (389 -> 401 kB).
PNG_ENCODINGS: dict[str, tuple[int | None, bool]] = {"compat": (None, False), "fast": (1, True)}


def png_bytes(img: np.ndarray, *, bits: int = 8, encoding: str = "compat") -> bytes:
    """The PNG file :func:`write_png` writes, as bytes.

    ``img`` is a float image in [0, 1] (converted with :func:`to_uint`), or an already converted
    ``uint8`` (``bits=8``) / ``uint16`` (``bits=16``) array, taken as it is: the same pixels give
    the same bytes either way. ``encoding`` (:data:`PNG_ENCODINGS`): ``compat`` keeps Pillow's
    defaults (zlib level 6, adaptive row filters), so files are byte-identical to those of
    earlier medcloak versions; ``fast`` writes the same pixels faster (zlib level 1, lossless 8-bit
    storage of 16-bit codes that are multiples of 257).
    """
    if encoding not in PNG_ENCODINGS:
        raise MedcloakError(f"PNG encoding must be one of {', '.join(PNG_ENCODINGS)}, got {encoding!r}")
    level, reduce_depth = PNG_ENCODINGS[encoding]
    a = np.asarray(img)
    if a.ndim != 2:
        raise MedcloakError(f"a PNG needs a 2-D grey-scale image, got shape {a.shape}")
    want = np.uint8 if bits == 8 else np.uint16
    if a.dtype != want:
        a = to_uint(a, bits=bits)
    if reduce_depth and a.dtype == np.uint16 and np.array_equal(a >> 8, a & 0xFF):  # k * 257 == (k << 8) | k
        a = (a & 0xFF).astype(np.uint8)
    buf = _io.BytesIO()
    options = {} if level is None else {"compress_level": level}  # compat: Pillow's own default, untouched
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", **options)
    return buf.getvalue()


def write_png(path: str | os.PathLike, img: np.ndarray, *, bits: int = 8) -> None:
    """Write a grey-scale float image in [0, 1] (or its ``uint8`` / ``uint16`` codes, see
    :func:`png_bytes`) as an 8- or 16-bit PNG, atomically."""
    if np.ndim(img) != 2:
        raise MedcloakError(f"write_png needs a 2-D grey-scale image, got shape {np.shape(img)}", path)
    atomic_write_bytes(path, png_bytes(img, bits=bits))


def write_npy(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write an array as ``.npy`` (no pickling), atomically and deterministically.

    Float images are stored as float32 (the library convention); other dtypes (e.g. bool
    masks, uint8 labels) are stored as they are.
    """
    atomic_write_bytes(Path(path), npy_bytes(arr, where=path))


def npy_bytes(arr: np.ndarray, *, where: str | os.PathLike | None = None) -> bytes:
    """The bytes :func:`write_npy` writes for ``arr`` (float32 for floats, no pickling)."""
    a = np.asarray(arr)
    if a.dtype == object:
        raise MedcloakError("write_npy cannot store object arrays", where)
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    buf = _io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()
