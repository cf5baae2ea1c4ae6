"""The images an expert-reader study shows: blinded PNG files plus ``items.csv``.

Layout written under ``RUN_DIR/readers/``::

    items.csv            id,image,condition,frame,artery,stenosis  (one row per shown image)
    images/<id>.png      8-bit grey-scale, upscaled with nearest-neighbour to >= 256 px

An item id is the first 12 hex digits of SHA-256 over ``seed``, condition and frame, so it
never reveals the condition to a reader (the browser only ever sees ids and pixels) while the
same inputs always give the same ids. ``items.csv`` is the only place that maps an id to its
condition and ground truth; the web app serves images only through it.
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_text
from medcloak.io.images import write_png

__all__ = [
    "Item",
    "write_reader_items",
    "read_reader_items",
    "item_id",
    "readers_dir",
    "ARTERIES",
    "ITEMS_CSV",
    "MIN_VIEW_PX",
    "ID_PATTERN",
]

ITEMS_CSV = "items.csv"
IMAGES_DIR = "images"
#: Ground-truth artery labels (the binary task of the study).
ARTERIES = ("LCA", "RCA")
#: Least side, in pixels, of a written image (smaller frames are enlarged by an integer factor).
MIN_VIEW_PX = 256
#: An item id: 12 lower-case hex digits.
ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")
_COLUMNS = ("id", "image", "condition", "frame", "artery", "stenosis")


@dataclass(frozen=True)
class Item:
    """One row of ``items.csv``: an image shown to readers and its (hidden) truth."""

    id: str
    image: str  # path relative to the readers folder, always ``images/<id>.png``
    condition: str
    frame: int
    artery: str  # "LCA" or "RCA"
    stenosis: bool


def readers_dir(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR/readers``: the folder holding items, images and answers."""
    return Path(run_dir) / "readers"


def item_id(condition: str, frame: int, *, seed: int = 0) -> str:
    """The blinded id of ``frame`` under ``condition``: 12 hex digits of SHA-256.

    Examples
    --------
    >>> item_id("original", 0) == item_id("original", 0) != item_id("vae", 0)
    True
    """
    digest = hashlib.sha256(f"medcloak-reader-item\x00{int(seed)}\x00{condition}\x00{int(frame)}".encode())
    return digest.hexdigest()[:12]


def _upscale(img: np.ndarray) -> np.ndarray:
    factor = max(1, math.ceil(MIN_VIEW_PX / max(img.shape)))
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def _check(images: Mapping[str, np.ndarray], artery: Sequence[str], stenosis: Sequence[bool]) -> int:
    if not images:
        raise MedcloakError("no conditions given: images must map a condition name to frames")
    n = None
    for cond, arr in images.items():
        if not isinstance(cond, str) or not cond.strip() or cond != cond.strip() or "," in cond:
            raise MedcloakError(f"condition name {cond!r} must be a non-empty string without commas or edge spaces")
        arr = np.asarray(arr)
        if arr.ndim != 3:
            raise MedcloakError(f"condition {cond!r}: frames must have shape (N, H, W), got {arr.shape}")
        if n is None:
            n = arr.shape[0]
        elif arr.shape[0] != n:
            raise MedcloakError(f"condition {cond!r} has {arr.shape[0]} frames, the first condition has {n}")
        if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
            raise MedcloakError(f"condition {cond!r}: frames must be finite floats in [0, 1]")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise MedcloakError(f"condition {cond!r}: values must lie in [0, 1], got [{arr.min():g}, {arr.max():g}]")
    if not n:
        raise MedcloakError("no frames given")
    if len(artery) != n or len(stenosis) != n:
        raise MedcloakError(f"need one artery and one stenosis label per frame ({n}), got {len(artery)} and {len(stenosis)}")
    bad = sorted({a for a in artery if a not in ARTERIES})
    if bad:
        raise MedcloakError(f"artery labels must be one of {ARTERIES}, got {bad}")
    return n


def write_reader_items(
    run_dir: str | os.PathLike,
    images: Mapping[str, np.ndarray],
    *,
    artery: Sequence[str],
    stenosis: Sequence[bool],
    seed: int = 0,
) -> Path:
    """Write the blinded images and ``items.csv`` of a reader study.

    Parameters
    ----------
    run_dir : path-like
        Study output folder; files go to ``run_dir/readers/``.
    images : mapping of str to ndarray float (N, H, W) in [0, 1]
        Condition name (e.g. ``"original"``, ``"vae"``, ``"obfuscated"``, ``"T1-n100"``,
        ``"T4"``) to the same ``N`` frames under that condition. Names may not contain commas.
    artery : sequence of str, length N
        Ground-truth artery of each frame, ``"LCA"`` or ``"RCA"``.
    stenosis : sequence of bool, length N
        Ground truth: a stenosis is present in the frame.
    seed : int
        Mixed into the item ids (different studies on the same run get different ids).

    Returns
    -------
    Path
        The written ``run_dir/readers/items.csv``.

    Notes
    -----
    Each image is written as an 8-bit PNG, enlarged by the smallest integer factor that makes
    its longer side at least :data:`MIN_VIEW_PX` (nearest neighbour, so no pixel is invented).
    PNG files of an earlier call that are not items any more are removed; ``items.csv`` is
    written last, so a reader never sees an id without its image. All writes are atomic.
    """
    n = _check(images, artery, stenosis)
    out = readers_dir(run_dir)
    img_dir = out / IMAGES_DIR
    img_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Item] = []
    for cond, arr in images.items():
        arr = np.asarray(arr, dtype=np.float32)
        for f in range(n):
            iid = item_id(cond, f, seed=seed)
            rel = f"{IMAGES_DIR}/{iid}.png"
            write_png(out / rel, _upscale(arr[f]))
            rows.append(Item(iid, rel, cond, f, str(artery[f]), bool(stenosis[f])))
    if len({r.id for r in rows}) != len(rows):  # 48-bit ids: astronomically unlikely
        raise MedcloakError("item id collision; choose another seed", out / ITEMS_CSV)
    keep = {Path(r.image).name for r in rows}
    for old in img_dir.glob("*.png"):
        if old.name not in keep:
            old.unlink()
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_COLUMNS)
    for r in rows:
        w.writerow([r.id, r.image, r.condition, r.frame, r.artery, int(r.stenosis)])
    atomic_write_text(out / ITEMS_CSV, buf.getvalue())
    return out / ITEMS_CSV


def read_reader_items(run_dir: str | os.PathLike) -> list[Item]:
    """Read and check ``run_dir/readers/items.csv`` (written by :func:`write_reader_items`).

    Raises
    ------
    MedcloakError
        If the file is missing or malformed, an id is not 12 hex digits or repeats, or an
        image path is not ``images/<id>.png``.
    """
    path = readers_dir(run_dir) / ITEMS_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MedcloakError("no reader items; the study writes them (medcloak study) or call write_reader_items", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MedcloakError(f"cannot read reader items: {exc}", path) from None
    reader = csv.DictReader(_io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise MedcloakError(f"missing column(s) {', '.join(missing)}", path)
    items: list[Item] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        iid = row["id"] or ""
        if not ID_PATTERN.match(iid) or iid in seen:
            raise MedcloakError(f"line {line}: id {iid!r} is not 12 hex digits or repeats", path)
        if row["image"] != f"{IMAGES_DIR}/{iid}.png":
            raise MedcloakError(f"line {line}: image must be {IMAGES_DIR}/{iid}.png, got {row['image']!r}", path)
        if row["artery"] not in ARTERIES or row["stenosis"] not in ("0", "1") or not (row["frame"] or "").isdigit():
            raise MedcloakError(f"line {line}: bad artery, stenosis or frame value", path)
        seen.add(iid)
        items.append(Item(iid, row["image"], row["condition"], int(row["frame"]), row["artery"], row["stenosis"] == "1"))
    if not items:
        raise MedcloakError("no items", path)
    return items
