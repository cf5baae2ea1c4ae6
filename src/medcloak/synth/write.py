"""Write a :class:`~medcloak.io.frameset.FrameSet` as a dataset folder (PNGs + ``labels.csv``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medcloak.errors import MedcloakError
from medcloak.io.dataset import LABELS_CSV, Manifest, Record, split_patients, write_manifest
from medcloak.io.images import write_png
from medcloak.io.frameset import FrameSet

__all__ = ["write_synth", "FRAME_TIME_MS"]

FRAME_TIME_MS = 66.7  # 15 frames per second, a common cine rate for coronary angiography


def write_synth(
    out: str | os.PathLike,
    data: FrameSet,
    *,
    seed: int,
    dicom: bool = False,
    progress: bool = True,
    overwrite: bool = True,
) -> Manifest:
    """Write frames, masks and noise-free frames as 8-bit PNGs plus ``labels.csv``.

    Layout::

        out/frames/<patient>_<k>.png     detector frame
        out/masks/<patient>_<k>.png      visible vessel lumen, ``FrameSet.masks`` (0 / 255)
        out/catheter/<patient>_<k>.png   catheter lumen, ``FrameSet.catheter`` (0 / 255)
        out/clean/<patient>_<k>.png      frame without quantum noise
        out/dicom/<patient>.dcm          (``dicom=True``) one multi-frame XA cine per patient
        out/labels.csv                   path, label, patient_id, split, mask, catheter_mask, clean,
                                         stenosis, view, frame

    The catheter column is named ``catheter_mask`` so that readers treat it as a mask
    (:func:`medcloak.io.arrays.is_mask_column`); it is left out when ``data.catheter`` is None.

    Parameters
    ----------
    out : path-like
        Dataset folder (created).
    data : FrameSet
        What :func:`~medcloak.synth.generate` returned.
    seed : int
        Seed of the patient-wise train/val/test split
        (:func:`medcloak.io.dataset.split_patients`, 70/15/15 % of patients per class).
    dicom : bool
        Also write one 16-bit multi-frame DICOM XA per patient with
        :func:`medcloak.io.dicom.write_dicom` (no identifying attributes; UIDs derived from
        the patient id, so a patient's cine has its own study).
    progress : bool
        tqdm progress bar on stderr.
    overwrite : bool
        If False, refuse a folder that already holds ``labels.csv``.

    Returns
    -------
    Manifest
        The records written (paths relative to ``out``); ``labels.csv`` is written last, so a
        folder with ``labels.csv`` is complete.
    """
    out = Path(out)
    if not overwrite and (out / LABELS_CSV).exists():
        raise MedcloakError(f"already holds a dataset ({LABELS_CSV}); choose another folder or overwrite", out)
    n = len(data.labels)
    if not (len(data.frames) == len(data.masks) == len(data.clean) == len(data.patient_ids) == n) or (
            data.catheter is not None and len(data.catheter) != n):
        raise MedcloakError("FrameSet arrays and lists differ in length", out)
    records = []
    names = [f"{pid}_{int(k)}.png" for pid, k in zip(data.patient_ids, data.frame_index)]
    views = data.views or [""] * n
    for i in tqdm(range(n), disable=not progress, file=sys.stderr, unit="frame", desc="write"):
        write_png(out / "frames" / names[i], data.frames[i])
        write_png(out / "masks" / names[i], data.masks[i].astype(np.float32))
        write_png(out / "clean" / names[i], data.clean[i])
        extra = {"mask": f"masks/{names[i]}"}
        if data.catheter is not None:
            write_png(out / "catheter" / names[i], np.asarray(data.catheter[i]).astype(np.float32))
            extra["catheter_mask"] = f"catheter/{names[i]}"
        extra |= {
            "clean": f"clean/{names[i]}",
            "stenosis": str(int(bool(data.stenosis[i]))),
            "view": views[i],
            "frame": str(int(data.frame_index[i])),
        }
        records.append(Record(f"frames/{names[i]}", data.labels[i], data.patient_ids[i], "", extra))
    if dicom:
        _write_dicoms(out / "dicom", data, progress=progress)
    records = split_patients(records, seed=seed)
    write_manifest(out, records)
    return Manifest(out, records)


def _write_dicoms(folder: Path, data: FrameSet, *, progress: bool) -> None:
    from medcloak.io.deid import UIDMapper
    from medcloak.io.dicom import write_dicom

    order: dict[str, list[int]] = {}
    for i, pid in enumerate(data.patient_ids):
        order.setdefault(pid, []).append(i)
    for pid, idx in tqdm(order.items(), disable=not progress, file=sys.stderr, unit="cine", desc="dicom"):
        idx = sorted(idx, key=lambda i: int(data.frame_index[i]))
        mapper = UIDMapper(f"medcloak-synth/{pid}".encode().ljust(16, b"."))
        write_dicom(
            folder / f"{pid}.dcm",
            data.frames[idx],
            source=None,
            uid_mapper=mapper,
            modality="XA",
            description=f"medcloak synthetic {data.labels[idx[0]]} {data.views[idx[0]] if data.views else ''}".strip(),
            frame_time_ms=FRAME_TIME_MS,
        )
