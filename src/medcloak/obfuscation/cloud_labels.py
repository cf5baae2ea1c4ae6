"""The cloud's ``labels.csv``: the hospital's labels, re-addressed to pseudonymous outputs.

``medcloak obfuscate IN OUT --labels data/labels.csv`` writes ``OUT/labels.csv`` beside the
obfuscated frames, so that ``medcloak train OUT`` works on the cloud side:

========== ==================================================================================
column     value
========== ==================================================================================
path       the output's relpath in ``OUT`` (the pseudonym of the input's frame)
label      the hospital's label, unchanged (it is what the cloud learns)
patient_id ``key.pseudonym("patient", patient_id)``: stable per patient, so the cloud can keep
           splits patient-wise, and meaningless without the key
split      the hospital's split, unchanged
frame      only with ``--format dicom`` (one cine per input): the frame index in that cine
========== ==================================================================================

Every other column of the hospital's file (masks, noise-free copies, stenosis, view) is left
out: it names hospital-side files or carries more than the task needs. Rows whose input failed
(or is not under ``IN``) are left out and counted. The hospital's file is checked first with
:func:`medcloak.io.dataset.check_records` (duplicate images, patients in two splits).
"""

from __future__ import annotations

import csv
import io as _io
import os
from pathlib import Path

from medcloak.errors import MedcloakError
from medcloak.keys import Key

__all__ = ["check_hospital_labels", "write_cloud_labels"]


def check_hospital_labels(labels: str | os.PathLike, *, allow_duplicates: bool = False,
                          allow_split_leak: bool = False) -> list[str]:
    """Read and check the hospital's labels.csv; returns the warnings of allowed problems."""
    import warnings

    from medcloak.io.dataset import read_manifest

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_manifest(labels, allow_duplicates=allow_duplicates, allow_split_leak=allow_split_leak)
    return [str(w.message) for w in caught]


def _outputs_by_input(summary) -> dict[str, tuple[list[str], int]]:
    """Input relpath -> (output relpaths, frame count) of every item whose latest record is ok."""
    from medcloak.obfuscation.batch import read_batch_manifest

    latest: dict[str, dict] = {}
    if summary.names is not None:
        for rec in read_batch_manifest(summary.names):
            latest[rec.get("input")] = rec
        return {rel: ([o["output"] for o in rec.get("outputs") or []], int(rec.get("frames") or 0))
                for rel, rec in latest.items() if rec.get("status") == "ok"}
    for rec in read_batch_manifest(summary.manifest):
        latest[rec.get("input")] = rec
    return {rel: (list(rec.get("outputs") or []), int(rec.get("frames") or 0))
            for rel, rec in latest.items() if rec.get("status") == "ok"}


def write_cloud_labels(labels: str | os.PathLike, in_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                       key: Key, summary, allow_duplicates: bool = False,
                       allow_split_leak: bool = False) -> tuple[int, Path]:
    """Write ``OUT/labels.csv`` for the outputs of a finished :func:`obfuscate_tree` run.

    Parameters
    ----------
    labels : path-like
        The hospital's ``labels.csv`` (or its folder); paths relative to its folder.
    in_path : path-like
        The ``IN`` of the run; every labelled path is looked up relative to it.
    out_dir : path-like
        The run's ``OUT``.
    key : Key
        The run's key (patient pseudonyms).
    summary : BatchSummary
        The run's summary (where its manifest and names file are).

    Returns
    -------
    (int, Path)
        Rows written and the file.
    """
    import warnings

    from medcloak.io.atomic import atomic_write_text
    from medcloak.io.dataset import LABELS_CSV, read_manifest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        man = read_manifest(labels, allow_duplicates=allow_duplicates, allow_split_leak=allow_split_leak)
    csv_path = man.root / LABELS_CSV
    in_path = Path(in_path)
    in_root = Path(os.path.abspath(in_path if in_path.is_dir() else in_path.parent))
    outputs = _outputs_by_input(summary)
    dicom = str(getattr(summary, "fmt", "")) == "dicom"
    rows, dropped = [], 0
    for rec in man.records:
        full = Path(os.path.abspath(man.root / rec.path))
        try:
            rel = full.relative_to(in_root).as_posix()
        except ValueError:
            dropped += 1
            continue
        outs, n_frames = outputs.get(rel, ([], 0))
        frame_text = (rec.extra.get("frame") or "").strip()
        if n_frames == 1:
            frame = 0  # a single image, whatever 'frame' says (as load_split reads it)
        else:
            try:
                frame = int(frame_text) if frame_text else -1
            except ValueError:
                raise MedcloakError(f"frame '{frame_text}' of '{rec.path}' is not an integer", csv_path) from None
        if not outs or not 0 <= frame < n_frames:
            dropped += 1
            continue
        pid = key.pseudonym("patient", rec.patient_id)
        if dicom:
            rows.append([outs[0], rec.label, pid, rec.split, str(frame) if n_frames > 1 else ""])
        else:
            rows.append([outs[frame], rec.label, pid, rec.split])
    if not rows:
        raise MedcloakError(f"no labelled image was obfuscated ({dropped} row(s) name files that are not under "
                            f"{in_path} or failed); paths in labels.csv are relative to its folder", csv_path)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "patient_id", "split"] + (["frame"] if dicom else []))
    w.writerows(rows)
    out = Path(out_dir) / LABELS_CSV
    atomic_write_text(out, buf.getvalue())
    if dropped:
        import sys

        print(f"warning: {dropped} row(s) of {csv_path} left out of {out} (input failed or not under {in_path})",
              file=sys.stderr)
    return len(rows), out
