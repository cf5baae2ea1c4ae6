"""Stack files into (N, H, W) arrays for training and evaluation.

Resizing uses :func:`skimage.transform.resize` with bilinear interpolation (``order=1``) and
Gaussian anti-aliasing when shrinking; the result is clipped to [0, 1]. Masks (a column named
``mask`` or ending in ``_mask``) are resized the same way and thresholded (``>= 0.5``) into ``bool``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.io.dataset import LABELS_CSV, Manifest
from medcloak.io.load import read_frames

__all__ = ["load_frames", "load_split", "resize", "is_mask_column"]

Size = int | tuple[int, int] | None


def _size(size: Size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise MedcloakError(f"size must be a positive int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def resize(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize one (H, W) image in [0, 1] to ``size`` (bilinear, anti-aliased); float32 in [0, 1].

    The numbers are those of ``skimage.transform.resize(img, size, order=1, mode="reflect",
    anti_aliasing=<shrinking>, preserve_range=True)`` (the resizer medcloak always used; models
    are fitted on frames resized by it), computed by the same two SciPy calls it makes -- a
    Gaussian pre-filter with ``sigma = max(0, (factor - 1) / 2)`` when shrinking, then
    ``scipy.ndimage.zoom(order=1, mode="mirror", grid_mode=True)``, then a clip to the input's
    range -- without its per-call overhead (about 40 % of its time at 512 -> 256 px). An exact
    halving (512 -> 256 px) takes :func:`medcloak.io.halve.halve`, the same arithmetic in cache-sized
    blocks (another 2x).
    ``tests/test_io_resize.py`` holds the equality to skimage, bit for bit.
    """
    from scipy import ndimage as ndi

    h, w = _size(size)
    if img.shape == (h, w):
        return np.asarray(img, dtype=np.float32)
    image = np.asarray(img, dtype=np.float32)
    if image.ndim != 2:  # not a grey frame: skimage itself decides (colour axis, errors)
        from skimage.transform import resize as _resize

        out = _resize(image, (h, w), order=1, mode="reflect", anti_aliasing=bool(h < image.shape[0] or w <
                                                                                 image.shape[1]), preserve_range=True)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
    from medcloak.io.halve import can_halve, halve

    if can_halve(image.shape, (h, w)):  # 512 -> 256 px: the same bits, about 2x faster (medcloak.io.halve)
        out = halve(image)
    else:
        factors = np.divide(image.shape, (h, w))
        if h < image.shape[0] or w < image.shape[1]:  # skimage's anti-aliasing when shrinking
            image_f = ndi.gaussian_filter(image, np.maximum(0, (factors - 1) / 2), cval=0.0, mode="mirror")
        else:
            image_f = image
        out = ndi.zoom(image_f, [1 / f for f in factors], order=1, mode="mirror", cval=0.0, grid_mode=True)
    np.clip(out, np.asarray(image.min()), np.asarray(image.max()), out=out)  # skimage's clip=True
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def is_mask_column(column: str) -> bool:
    """True for columns holding segmentation masks (``mask``, ``vessel_mask``, ...)."""
    c = column.strip().lower()
    return c == "mask" or c.endswith("_mask")


def _stack(frames: list[np.ndarray], size, sources: list[str]) -> np.ndarray:
    hw = _size(size)
    if hw is None:
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            first = frames[0].shape
            bad = next(i for i, f in enumerate(frames) if f.shape != first)
            raise MedcloakError(f"frame size {frames[bad].shape} differs from {first} of the first file; "
                                "pass size= to resize", sources[bad])
        return np.stack(frames).astype(np.float32, copy=False)
    return np.stack([resize(f, hw) for f in frames]).astype(np.float32, copy=False)


def load_frames(paths: Iterable[str | os.PathLike], *, size: Size = None) -> np.ndarray:
    """Read files and stack all their frames into one array.

    Parameters
    ----------
    paths : iterable of path-like
        Image files; a multi-frame file contributes all its frames, in order.
    size : int or (int, int), optional
        Resize every frame to (height, width). Without it all frames must have the same shape.

    Returns
    -------
    ndarray
        float32 (N, H, W) in [0, 1] (N = 0 gives shape (0, 0, 0), or (0, h, w) with ``size``).
    """
    frames, sources = [], []
    for p in paths:
        for fr in read_frames(p):
            frames.append(fr.pixels)
            sources.append(os.fspath(p))
    if not frames:
        hw = _size(size) or (0, 0)
        return np.zeros((0, *hw), dtype=np.float32)
    return _stack(frames, size, sources)


def load_split(manifest: Manifest, split: str, *, column: str = "path", size: Size = None) -> np.ndarray:
    """Load one split of a dataset, one image per row of ``labels.csv``.

    Parameters
    ----------
    manifest : Manifest
        From :func:`medcloak.io.dataset.read_manifest`.
    split : str
        ``train``, ``val`` or ``test``.
    column : str
        ``path`` (the images) or an extra column naming other files of the same rows, e.g.
        ``mask`` or ``clean``. Paths are relative to the manifest root.
    size : int or (int, int), optional
        Resize to (height, width).

    Returns
    -------
    ndarray
        (N, H, W) float32 in [0, 1]; ``bool`` for mask columns (:func:`is_mask_column`), resized
        as floats then thresholded at 0.5. Rows are in manifest order.

    Notes
    -----
    A row whose file has several frames needs a ``frame`` column (0-based index) saying which
    one; otherwise the row is an error. Single-image files ignore ``frame`` (so a per-frame mask
    file can sit beside a multi-frame cine).
    """
    csv_path = manifest.root / LABELS_CSV
    records = manifest.subset(split)
    frames, sources = [], []
    cache: tuple[str, list] | None = None
    for rec in records:
        rel = rec.path if column == "path" else rec.extra.get(column, "")
        if column != "path" and column not in rec.extra:
            raise MedcloakError(f"no column '{column}'", csv_path)
        rel = (rel or "").strip()
        if not rel:
            raise MedcloakError(f"empty '{column}' for row with path '{rec.path}'", csv_path)
        full = manifest.abspath(rel)
        key = os.fspath(full)
        if cache is None or cache[0] != key:
            cache = (key, read_frames(full))
        file_frames = cache[1]
        idx_text = (rec.extra.get("frame") or "").strip()
        if len(file_frames) == 1:
            idx = 0  # a single image (e.g. the mask of one frame of a cine) whatever 'frame' says
        elif idx_text:
            try:
                idx = int(idx_text)
            except ValueError:
                raise MedcloakError(f"frame '{idx_text}' of '{rec.path}' is not an integer", csv_path) from None
            if not 0 <= idx < len(file_frames):
                raise MedcloakError(f"frame {idx} out of range (file has {len(file_frames)})", full)
        else:
            raise MedcloakError(f"file has {len(file_frames)} frames; add a 'frame' column to {LABELS_CSV}", full)
        frames.append(file_frames[idx].pixels)
        sources.append(key)
    if not frames:
        hw = _size(size) or (0, 0)
        out = np.zeros((0, *hw), dtype=np.float32)
    else:
        out = _stack(frames, size, sources)
    if is_mask_column(column):
        return out >= 0.5
    return out
