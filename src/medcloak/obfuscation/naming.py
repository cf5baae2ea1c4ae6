"""Cloud-side output names that carry nothing of the input, and the hospital-side map back.

Default (pseudonymous) layout, fixed depth::

    OUT/<p[:2]>/<p>.<ext>      p = key.pseudonym("output-name", f"{relpath}\\x00{frame_index}")

``p`` is 16 hex characters (an HMAC under a key sub-key, :meth:`medcloak.keys.Key.pseudonym`):
without the key nobody can compute it from a candidate name. A multi-frame input written as one
DICOM file is named by its frame 0. Every item (input file) also has an *item id*
``key.pseudonym("input", relpath)`` that names it in the cloud-side manifest, also when it failed
and has no output.

The map back (pseudonym -> input relpath, frame index, input SHA-256) is a JSON Lines file kept
at the hospital, by default ``OUT.names.jsonl`` *beside* ``OUT`` (:func:`default_names_path`);
it must never be inside ``OUT``.

``--keep-names`` (:class:`OutputSpec` with ``keep_names=True``) mirrors the input folders and
names instead (the behaviour before pseudonyms), with a warning: those names reach the cloud.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from medcloak.keys import Key

__all__ = ["OutputSpec", "item_id", "pseudonym_name", "default_names_path", "keep_name_stems", "EXTENSIONS"]

EXTENSIONS = {"png": ".png", "npy": ".npy", "dicom": ".dcm"}


def pseudonym_name(key: Key, rel: str, frame: int, fmt: str) -> str:
    """Cloud-side relpath of frame ``frame`` of input ``rel``: ``ab/abcdef0123456789.png``."""
    p = key.pseudonym("output-name", f"{rel}\x00{int(frame)}")
    return f"{p[:2]}/{p}{EXTENSIONS[fmt]}"


def item_id(key: Key, rel: str) -> str:
    """Pseudonymous id of one input file (names it in the cloud-side manifest)."""
    return key.pseudonym("input", rel)


def default_names_path(out_dir: str | os.PathLike) -> Path:
    """``OUT.names.jsonl`` beside the output folder ``OUT``."""
    out = Path(os.path.abspath(out_dir))
    return out.parent / f"{out.name}.names.jsonl"


def keep_name_stems(rels: list[str]) -> dict[str, str]:
    """Mirrored output stem of every input relpath (``--keep-names``).

    Inputs of one folder that share a stem (``a.png``, ``a.PNG``, ``a.npy``) get their extension,
    case kept, as a suffix (``a_png``, ``a_PNG``, ``a_npy``). Names that still collide (``b_png.png``
    beside ``b.png`` and ``b.npy``) are found when the outputs are known and reported as errors.
    """
    stems: dict[str, list[str]] = {}
    for rel in rels:
        p = Path(rel)
        stems.setdefault((p.parent / p.stem).as_posix(), []).append(rel)
    out = {}
    for stem, group in stems.items():
        for rel in group:
            suffix = Path(rel).suffix.lstrip(".") or "noext"
            out[rel] = stem if len(group) == 1 else f"{stem}_{suffix}"
    return out


@dataclass(frozen=True)
class OutputSpec:
    """How one input is named and processed (picklable; sent with each item to a worker).

    Attributes
    ----------
    rel : str
        Input relpath (``/``-separated).
    fmt : str
        ``png`` | ``npy`` | ``dicom``.
    key : Key or None
        For pseudonyms (None with ``keep_names``).
    stem : str
        Mirrored stem (``keep_names`` only).
    keep_names : bool
    limits : object
        :class:`medcloak.io.limits.Limits` checked before decoding.
    burned_in : str
        ``refuse`` | ``mask`` | ``allow`` (DICOM ``BurnedInAnnotation=YES``).
    mask_border : float
        Fraction of the shorter side blanked at every edge with ``burned_in="mask"``.
    mask_regions : tuple of (x0, y0, x1, y1)
        Pixel boxes (input coordinates, end exclusive) blanked with ``burned_in="mask"``.
    png : str
        PNG encoding (:data:`medcloak.io.images.PNG_ENCODINGS`) with ``fmt="png"``.
    """

    rel: str
    fmt: str
    key: Key | None = None
    stem: str = ""
    keep_names: bool = False
    limits: object = None
    burned_in: str = "refuse"
    mask_border: float = 0.0
    mask_regions: tuple = field(default_factory=tuple)
    png: str = "compat"

    def names(self, n_frames: int) -> list[str]:
        """Output relpaths for an input of ``n_frames`` frames (one for DICOM)."""
        ext = EXTENSIONS[self.fmt]
        count = 1 if self.fmt == "dicom" else int(n_frames)
        if not self.keep_names:
            return [pseudonym_name(self.key, self.rel, i, self.fmt) for i in range(count)]
        if count == 1:
            return [self.stem + ext]
        width = max(4, len(str(count - 1)))
        return [f"{self.stem}_f{i:0{width}d}{ext}" for i in range(count)]
