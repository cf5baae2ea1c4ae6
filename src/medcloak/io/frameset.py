"""``FrameSet``: the one in-memory type for labelled frames.

Every stage that handles frames takes a :class:`FrameSet`: the generator builds one
(:func:`medcloak.synth.generate`), :func:`load_dataset` builds one from a ``labels.csv``
folder, the study caches one per run (:meth:`FrameSet.save` / :meth:`FrameSet.load`), the
cloud's classifier, the attacks and the reader items read it.

Frames are float32 (N, H, W) in [0, 1]; per-frame values (label, patient, split, ...) sit in
lists or arrays of length N, element ``i`` belonging to frame ``i``. The optional pixel arrays
(vessel masks, catheter, noise-free frame) are ``None`` when the source has none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError

__all__ = ["FrameSet", "load_dataset", "SPLITS"]

SPLITS = ("train", "val", "test")
_PIXELS = ("clean", "masks", "masks_full", "catheter")  # optional (N, H, W) arrays
_FORMAT = "medcloak-frameset-v1"


@dataclass
class FrameSet:
    """Labelled frames and what is known about each.

    Attributes
    ----------
    frames : ndarray float32 (N, H, W) in [0, 1]
        The frames as the owner holds them (vessels dark).
    labels : list of str
        Class of each frame (the angiography task: ``"LCA"`` or ``"RCA"``).
    patient_ids : list of str
        Patient of each frame; a split never cuts a patient.
    split : ndarray of str (N,)
        ``"train"``, ``"val"``, ``"test"`` or ``""`` (not assigned).
    stenosis : ndarray of bool (N,)
        A stenosis is present (all False when the source does not say).
    frame_index : ndarray of int (N,)
        Index of the frame within its patient's sequence.
    views : list of str
        C-arm angulation of each frame (``""`` when unknown).
    clean : ndarray float32 (N, H, W), optional
        The frame without quantum noise (semi-synthetic data only).
    masks : ndarray bool (N, H, W), optional
        Visible vessel lumen: the ground truth of every vessel score.
    masks_full : ndarray bool (N, H, W), optional
        The full anatomical lumen, whatever its contrast.
    catheter : ndarray bool (N, H, W), optional
        Pixels vessel scores ignore (the catheter).
    provenance : str
        ``"semi-synthetic"`` or ``"real"``: stated on every report made from it.
    source : str
        Where the frames came from (free text for reports).

    Examples
    --------
    >>> fs = FrameSet(np.zeros((4, 8, 8), np.float32), ["LCA", "RCA"] * 2, ["p0", "p1"] * 2,
    ...               split=np.array(["train", "test"] * 2))
    >>> len(fs.subset("test")), fs.subset("test").labels
    (2, ['RCA', 'RCA'])
    """

    frames: np.ndarray
    labels: list[str]
    patient_ids: list[str]
    split: np.ndarray | None = None
    stenosis: np.ndarray | None = None
    frame_index: np.ndarray | None = None
    views: list[str] = field(default_factory=list)
    clean: np.ndarray | None = None
    masks: np.ndarray | None = None
    masks_full: np.ndarray | None = None
    catheter: np.ndarray | None = None
    provenance: str = "semi-synthetic"
    source: str = ""

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.float32)
        if self.frames.ndim != 3:
            raise MedcloakError(f"FrameSet: frames must be (N, H, W), got shape {self.frames.shape}")
        n = len(self.frames)
        self.labels = [str(v) for v in self.labels]
        self.patient_ids = [str(v) for v in self.patient_ids]
        self.split = np.full(n, "", dtype="<U5") if self.split is None else np.asarray(self.split, dtype=str)
        self.stenosis = np.zeros(n, bool) if self.stenosis is None else np.asarray(self.stenosis, bool)
        self.frame_index = np.zeros(n, np.int64) if self.frame_index is None else np.asarray(self.frame_index, np.int64)
        self.views = [str(v) for v in self.views] if len(self.views) else [""] * n
        for name in ("labels", "patient_ids", "split", "stenosis", "frame_index", "views"):
            if len(getattr(self, name)) != n:
                raise MedcloakError(f"FrameSet: {name} has {len(getattr(self, name))} entries for {n} frames")
        bad = sorted(set(self.split.tolist()) - {*SPLITS, ""})
        if bad:
            raise MedcloakError(f"FrameSet: unknown split(s) {', '.join(bad)}")
        for name in _PIXELS:
            a = getattr(self, name)
            if a is None:
                continue
            a = np.asarray(a, np.float32 if name == "clean" else bool)
            if a.shape != self.frames.shape:
                raise MedcloakError(f"FrameSet: {name} {a.shape} does not match the frames {self.frames.shape}")
            setattr(self, name, a)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def take(self, index) -> "FrameSet":
        """The frames at ``index`` (a boolean mask or integer indices), everything else alongside."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("labels", "patient_ids", "views"):
            kw[name] = pick(kw[name])
        for name in ("frames", "split", "stenosis", "frame_index", *_PIXELS):
            if kw[name] is not None:
                kw[name] = kw[name][idx]
        return FrameSet(**kw)

    def subset(self, split: str) -> "FrameSet":
        """The frames of one split (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise MedcloakError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        return self.take(self.split == split)

    def with_frames(self, frames: np.ndarray) -> "FrameSet":
        """The same labels, patients and split with other frames (e.g. their obfuscations).

        The pixel-aligned extras (masks, noise-free frames) stay when the new frames have the
        originals' shape (they describe the originals) and are dropped otherwise (a
        low-resolution release, patch tokens).
        """
        frames = np.asarray(frames, np.float32)
        if len(frames) != len(self):
            raise MedcloakError(f"with_frames: {len(frames)} frames for a set of {len(self)}")
        if frames.shape == self.frames.shape:
            return replace(self, frames=frames)
        return replace(self, frames=frames, **dict.fromkeys(_PIXELS))

    def split_by_patient(self, *, seed: int, fractions=(0.7, 0.15, 0.15)) -> "FrameSet":
        """A copy split patient-wise with :func:`medcloak.io.dataset.split_patients` (the one rule)."""
        from medcloak.io.dataset import Record, split_patients

        recs = [Record(str(i), lab, pid) for i, (lab, pid) in enumerate(zip(self.labels, self.patient_ids))]
        split = np.array([r.split for r in split_patients(recs, seed=seed, fractions=fractions)])
        return replace(self, split=split)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` atomically (no pickles; readable with ``numpy.load``)."""
        from medcloak.io.atomic import atomic_write_with

        arrays = {"format": np.array(_FORMAT), "frames": self.frames, "labels": np.asarray(self.labels, str),
                  "patient_ids": np.asarray(self.patient_ids, str), "split": self.split,
                  "stenosis": self.stenosis, "frame_index": self.frame_index, "views": np.asarray(self.views, str),
                  "provenance": np.array(self.provenance), "source": np.array(self.source)}
        arrays.update({k: getattr(self, k) for k in _PIXELS if getattr(self, k) is not None})
        path = Path(path)
        atomic_write_with(path, lambda fh: np.savez(fh, **arrays))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FrameSet":
        """Read a file written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise MedcloakError(f"cannot read the frame set ({type(exc).__name__})", path) from None
        if str(d.pop("format", "")) != _FORMAT:
            raise MedcloakError("not a medcloak frame set", path)
        for k in ("labels", "patient_ids", "views"):
            d[k] = d[k].tolist()
        for k in ("provenance", "source"):
            d[k] = str(d[k])
        return cls(**d)


def _int(v) -> int:
    try:
        return int(str(v or "0").strip())
    except ValueError:
        return 0


def _truthy(v: str) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "y")


def load_dataset(folder_or_manifest, size: int, *, seed: int = 0) -> FrameSet:
    """A ``labels.csv`` folder as a :class:`FrameSet` of ``size`` x ``size`` frames (provenance "real").

    Rows without a split are split patient-wise (:meth:`FrameSet.split_by_patient`, ``seed``).
    Optional columns: ``mask`` (vessel masks), ``catheter_mask`` (pixels scores ignore),
    ``clean`` (noise-free frames), ``stenosis`` (``1``/``true``/``yes``), ``view``, ``frame``.
    Without a ``mask`` column, :func:`medcloak.metrics.vessel_map` of the frames stands in and
    :attr:`FrameSet.source` says so. Each file is read once.

    Parameters
    ----------
    folder_or_manifest : path-like or Manifest
        A folder holding ``labels.csv``, the CSV itself, or a :class:`~medcloak.io.dataset.Manifest`.
    size : int
        Frame side after resizing (:func:`medcloak.io.arrays.resize`).
    seed : int
        Seed of the patient-wise split when ``labels.csv`` leaves it empty.
    """
    from medcloak.io.arrays import load_split
    from medcloak.io.dataset import Manifest, read_manifest

    manifest = folder_or_manifest if isinstance(folder_or_manifest, Manifest) else read_manifest(folder_or_manifest)
    assigned = all(r.split for r in manifest.records)
    recs = [r for s in SPLITS for r in manifest.subset(s)] if assigned else list(manifest.records)
    if not recs:
        raise MedcloakError("labels.csv has no rows", manifest.root / "labels.csv")
    sub = Manifest(manifest.root, recs)
    # load_split reads one split's rows; give every row one split to read them all in order
    tmp = Manifest(sub.root, [replace(r, split="train") for r in recs])

    def column(name: str):
        if not all(r.extra.get(name) for r in recs):
            return None
        return load_split(tmp, "train", column=name, size=size)

    frames = load_split(tmp, "train", size=size)
    masks = column("mask")
    source = f"{manifest.root} ({len(recs)} rows of labels.csv)"
    if masks is None:
        from medcloak import metrics

        masks = metrics.vessel_map(frames)
        source += ("; NO vessel masks in labels.csv: a hand-made vessel map of the originals "
                   "(metrics.vessel_map) stands in, so vessel scores measure agreement with it")
    fs = FrameSet(
        frames, [r.label for r in recs], [r.patient_id for r in recs],
        split=np.array([r.split for r in recs]) if assigned else None,
        stenosis=np.array([_truthy(r.extra.get("stenosis", "")) for r in recs], bool),
        frame_index=np.array([_int(r.extra.get("frame")) for r in recs], np.int64),
        views=[r.extra.get("view", "") for r in recs],
        clean=column("clean"), masks=masks, catheter=column("catheter_mask"), provenance="real", source=source,
    )
    return fs if assigned else fs.split_by_patient(seed=seed)
