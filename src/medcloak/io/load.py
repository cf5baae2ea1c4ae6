"""One entry point for reading any supported file, and a deterministic walk over input folders.

The format is decided by the file's **content** (magic bytes; the ``DICM`` marker at byte 128)
first; the extension only decides for DICOM files written without the preamble (``.dcm``,
``.dicom``, ``.dic``, ``.ima`` or no extension). A file whose content matches no format is an
error even if its extension looks right (a text file named ``x.png``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from medcloak.errors import MedcloakError
from medcloak.io.frames import Frame
from medcloak.io.limits import Limits, check_regular_file

__all__ = ["read_frames", "iter_inputs", "is_supported", "sniff_format", "looks_like_raw_dicom", "IMAGE_EXTENSIONS"]

#: Extensions :func:`iter_inputs` picks up without looking inside the file (lower case).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz", ".dcm", ".dicom", ".dic", ".ima"}
)
_RAW_DICOM_EXTENSIONS = frozenset({".dcm", ".dicom", ".dic", ".ima", ""})
_SKIP_NAMES = frozenset({"labels.csv", "dicomdir"})

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"\x93NUMPY", "npy"),
    (b"PK\x03\x04", "npz"),
    (b"PK\x05\x06", "npz"),  # empty zip
)


def sniff_format(path: str | os.PathLike) -> str | None:
    """Name of the format by content: ``png``, ``jpeg``, ``tiff``, ``npy``, ``npz``, ``dicom``.

    Returns ``"dicom-raw"`` for a file without a recognised signature but with a DICOM-like
    extension (read with ``force=True``), and ``None`` when nothing matches.

    Raises
    ------
    MedcloakError
        If the file cannot be opened, or is empty.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise MedcloakError(f"cannot open ({exc.strerror or exc.__class__.__name__})", path) from None
    if not head:
        raise MedcloakError("empty file", path)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if Path(path).suffix.lower() in _RAW_DICOM_EXTENSIONS:
        return "dicom-raw"
    return None


def read_frames(path: str | os.PathLike, *, limits: Limits | None = None) -> list[Frame]:
    """Read any supported file into a list of float32 (H, W) frames in [0, 1].

    Parameters
    ----------
    path : path-like
        A PNG, JPEG, TIFF, NPY, NPZ or DICOM file (opened read-only, never modified). Anything
        but a regular file (a FIFO, a device) is refused before it is opened.
    limits : Limits, optional
        Pixel limits checked from the header before decoding (default:
        :func:`medcloak.io.limits.get_default_limits`).

    Returns
    -------
    list of Frame
        One per image (multi-page TIFF, 3-D arrays and multi-frame DICOM give several).

    Raises
    ------
    MedcloakError
        One error naming the file and the reason, for anything unreadable.
    """
    p = Path(path)
    if p.is_dir():
        raise MedcloakError("is a folder, not an image file", p)
    if not p.exists():
        raise MedcloakError("no such file", p)
    check_regular_file(p)
    fmt = sniff_format(p)
    try:
        if fmt in ("png", "jpeg"):
            from medcloak.io.images import read_pil_image

            return read_pil_image(p, limits=limits)
        if fmt == "tiff":
            from medcloak.io.images import read_tiff

            return read_tiff(p, limits=limits)
        if fmt in ("npy", "npz"):
            from medcloak.io.images import read_array_file

            return read_array_file(p, limits=limits)
        if fmt in ("dicom", "dicom-raw"):
            from medcloak.io.dicom import read_dicom

            return read_dicom(p, force=fmt == "dicom-raw", limits=limits)
    except MedcloakError:
        raise
    except Exception as exc:  # last line of defence: a reader let a library error through
        raise MedcloakError(f"cannot read ({exc.__class__.__name__}: {exc})", p) from None
    ext = p.suffix.lower()
    hint = f" although the name ends in '{ext}'" if ext in IMAGE_EXTENSIONS else ""
    raise MedcloakError(
        f"unsupported or unrecognised file content{hint} (supported: PNG, JPEG, TIFF, NPY, NPZ, DICOM)", p
    )


def is_supported(path: str | os.PathLike) -> bool:
    """True if ``path`` is a file medcloak would try to read (by extension, else by content).

    This does not promise the file is valid: :func:`read_frames` may still reject it.
    """
    p = Path(path)
    if not p.is_file() or p.name.lower() in _SKIP_NAMES or p.suffix.lower() == ".jsonl":
        return False
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        fmt = sniff_format(p)
    except MedcloakError:
        return False
    if fmt == "dicom-raw":
        return looks_like_raw_dicom(p)
    return fmt is not None


def looks_like_raw_dicom(p: Path) -> bool:
    """An extension-less file starting with a plausible group 0x0008 element (no preamble)."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return len(head) == 4 and head[:2] in (b"\x08\x00", b"\x00\x08", b"\x02\x00")


def iter_inputs(root: str | os.PathLike, *, on_error: Callable[[Path, str], None] | None = None) -> Iterator[Path]:
    """Yield the image files under ``root`` recursively, in a sorted, deterministic order.

    Skipped: hidden files and folders (name starting with ``.``), ``labels.csv``, ``*.jsonl``,
    ``DICOMDIR`` and files :func:`is_supported` rejects. Symbolic links to folders are not
    followed. If ``root`` is a file it is yielded alone.

    Parameters
    ----------
    root : path-like
    on_error : callable, optional
        ``on_error(path, reason)`` is called for a subfolder that cannot be listed and for a
        non-regular file (FIFO, device, socket) with an image extension; both are then skipped
        and the walk goes on. Without it an unlistable folder raises.

    Raises
    ------
    MedcloakError
        If ``root`` does not exist (or a folder cannot be listed and ``on_error`` is None).
    """
    base = Path(root)
    if base.is_file():
        yield base
        return
    if not base.is_dir():
        if base.exists():
            check_regular_file(base)  # a FIFO or a device: refused, never opened
        raise MedcloakError("no such file or folder", base)

    def walk(folder: Path) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            reason = f"cannot list folder ({exc.strerror or exc.__class__.__name__})"
            if on_error is None or folder == base:
                raise MedcloakError(reason, folder) from None
            on_error(folder, reason)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file()
            except OSError:
                is_dir = is_file = False
            if is_dir:
                yield from walk(Path(entry.path))
            elif is_file:
                if is_supported(entry.path):
                    yield Path(entry.path)
            elif on_error is not None and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                try:
                    os.stat(entry.path)
                except OSError:
                    continue  # a dangling link: nothing to read
                on_error(Path(entry.path), "not a regular file (FIFO, device or socket); skipped")

    yield from walk(base)
