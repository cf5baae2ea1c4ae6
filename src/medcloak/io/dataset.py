"""Dataset manifests: a folder of images plus ``labels.csv``.

``labels.csv`` columns (header required, comma-separated, UTF-8):

========== ======== =============================================================
column     required meaning
========== ======== =============================================================
path       yes      image path relative to the folder holding ``labels.csv``
label      yes      class name (the angiography task: ``LCA`` or ``RCA``)
patient_id yes      pseudonymous patient id; splits never cut a patient
split      yes      ``train``, ``val``, ``test`` or empty (not yet assigned)
...        no       any further columns (``mask``, ``clean``, ``stenosis``, ``view``,
                    ``frame``) are kept as strings in :attr:`Record.extra`
========== ======== =============================================================

A row names one image: ``(path, frame)``. Two rows naming the same image, and a patient whose
rows sit in two different splits (the split is then not patient-wise and the test set leaks),
are errors naming the rows (:func:`check_records`), unless the caller allows them explicitly.
"""

from __future__ import annotations

import csv
import io as _io
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_text

__all__ = ["Record", "Manifest", "read_manifest", "write_manifest", "split_patients", "check_records", "LABELS_CSV"]

LABELS_CSV = "labels.csv"
REQUIRED = ("path", "label", "patient_id", "split")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Record:
    """One row of ``labels.csv``."""

    path: str
    label: str
    patient_id: str
    split: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Manifest:
    """A dataset: its root folder and its records (paths relative to ``root``)."""

    root: Path
    records: list[Record]

    def abspath(self, rel: str) -> Path:
        """Absolute path of a path stored relative to the root."""
        return self.root / rel

    def subset(self, split: str) -> list[Record]:
        """Records of one split (``train``, ``val`` or ``test``)."""
        return [r for r in self.records if r.split == split]

    @property
    def labels(self) -> list[str]:
        """Sorted distinct class names."""
        return sorted({r.label for r in self.records})


def _rows(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:6])) + (" ..." if len(lines) > 6 else "")


def check_records(records: list[Record], csv_path, *, lines: list[int] | None = None,
                  allow_duplicates: bool = False, allow_split_leak: bool = False) -> list[str]:
    """Duplicate images and patients in two splits: an error naming the rows, or warnings if allowed.

    Parameters
    ----------
    records : list of Record
    csv_path : path-like
        Named in the messages.
    lines : list of int, optional
        File line of each record (default: record index + 2, after the header).
    allow_duplicates, allow_split_leak : bool
        Turn the matching error into a returned warning.

    Returns
    -------
    list of str
        Warnings (only for allowed problems).
    """
    lines = lines or [i + 2 for i in range(len(records))]
    seen: dict[tuple[str, str], list[int]] = {}
    splits: dict[str, dict[str, list[int]]] = {}
    for rec, line in zip(records, lines):
        seen.setdefault((rec.path, (rec.extra.get("frame") or "").strip()), []).append(line)
        if rec.split:
            splits.setdefault(rec.patient_id, {}).setdefault(rec.split, []).append(line)
    out = []
    dups = [(k, v) for k, v in seen.items() if len(v) > 1]
    if dups:
        (path, frame), where = dups[0]
        what = f"{path}" + (f" frame {frame}" if frame else "")
        msg = (f"{len(dups)} image(s) listed more than once, e.g. '{what}' on lines {_rows(where)} "
               "(a duplicate row weighs twice, or sits in two splits)")
        if not allow_duplicates:
            raise MedcloakError(msg + "; remove the duplicates or pass --allow-duplicates", csv_path)
        out.append(f"{csv_path}: {msg}")
    leaks = [(pid, by) for pid, by in splits.items() if len(by) > 1]
    if leaks:
        pid, by = leaks[0]
        parts = "; ".join(f"{sp} on lines {_rows(ls)}" for sp, ls in sorted(by.items()))
        msg = (f"{len(leaks)} patient(s) in more than one split, e.g. patient '{pid}': {parts} "
               "(the split is no longer patient-wise)")
        if not allow_split_leak:
            raise MedcloakError(msg + "; fix the splits or pass --allow-split-leak", csv_path)
        out.append(f"{csv_path}: {msg}")
    return out


def read_manifest(folder: str | os.PathLike, *, allow_duplicates: bool = False,
                  allow_split_leak: bool = False) -> Manifest:
    """Read ``folder/labels.csv``.

    Duplicate images and patients in two splits are errors (:func:`check_records`); with
    ``allow_duplicates`` / ``allow_split_leak`` they are warnings (``UserWarning``).

    Raises
    ------
    MedcloakError
        If the file is missing, lacks a required column, has an empty required field, an
        unknown split, names a path outside the folder, lists an image twice or puts a patient
        in two splits.
    """
    root = Path(folder)
    csv_path = root / LABELS_CSV if root.is_dir() or not root.suffix else root
    if csv_path.name != LABELS_CSV and root.suffix == ".csv":
        csv_path = root
    root = csv_path.parent
    if not csv_path.is_file():
        raise MedcloakError(f"no {LABELS_CSV} found (a dataset is a folder of images plus {LABELS_CSV})", csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MedcloakError(f"cannot read: {exc.__class__.__name__}", csv_path) from None
    reader = csv.DictReader(_io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise MedcloakError(f"missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}", csv_path)
    records, lines = [], []
    for lineno, row in enumerate(reader, start=2):
        for c in ("path", "label", "patient_id"):
            if not (row.get(c) or "").strip():
                raise MedcloakError(f"line {lineno}: empty '{c}'", csv_path)
        split = (row.get("split") or "").strip()
        if split and split not in SPLITS:
            raise MedcloakError(f"line {lineno}: unknown split '{split}' (use {', '.join(SPLITS)} or empty)", csv_path)
        rel = row["path"].strip()
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise MedcloakError(f"line {lineno}: path '{rel}' must be relative and inside the folder", csv_path)
        extra = {k: (v or "") for k, v in row.items() if k not in REQUIRED and k is not None}
        records.append(Record(rel, row["label"].strip(), row["patient_id"].strip(), split, extra))
        lines.append(lineno)
    for w in check_records(records, csv_path, lines=lines, allow_duplicates=allow_duplicates,
                           allow_split_leak=allow_split_leak):
        warnings.warn(w, stacklevel=2)
    return Manifest(root, records)


def write_manifest(folder: str | os.PathLike, records: list[Record]) -> Path:
    """Write ``folder/labels.csv`` atomically; extra columns are the union of all records' extras."""
    extra_cols: list[str] = []
    for r in records:
        for k in r.extra:
            if k not in extra_cols:
                extra_cols.append(k)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*REQUIRED, *extra_cols])
    for r in records:
        w.writerow([r.path, r.label, r.patient_id, r.split, *(r.extra.get(k, "") for k in extra_cols)])
    out = Path(folder) / LABELS_CSV
    atomic_write_text(out, buf.getvalue())
    return out


def split_patients(
    records: list[Record], *, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
) -> list[Record]:
    """Assign ``train``/``val``/``test`` patient-wise: every frame of a patient lands in one split.

    Patients are shuffled with ``numpy.random.default_rng(seed)`` (experiment randomness, not
    protective randomness) within each label, so the class balance is kept in every split.
    ``fractions`` are of patients, in the order train, val, test, and must sum to 1.

    Examples
    --------
    >>> rs = [Record(f"{i}.png", "LCA" if i % 2 else "RCA", f"p{i // 2}") for i in range(40)]
    >>> out = split_patients(rs, seed=0)
    >>> all(len({r.split for r in out if r.patient_id == p}) == 1 for p in {r.patient_id for r in out})
    True
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise MedcloakError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    # a patient's "label" for stratification: its most common label
    by_patient: dict[str, list[str]] = {}
    for r in records:
        by_patient.setdefault(r.patient_id, []).append(r.label)
    strata: dict[str, list[str]] = {}
    for pid in sorted(by_patient):
        labels = by_patient[pid]
        strata.setdefault(max(sorted(set(labels)), key=labels.count), []).append(pid)
    assign: dict[str, str] = {}
    for label in sorted(strata):
        pids = strata[label]
        order = rng.permutation(len(pids))
        n = len(pids)
        n_train = int(round(fractions[0] * n))
        n_val = int(round(fractions[1] * n))
        if n >= 3:  # keep every split non-empty when there are enough patients
            n_train = min(max(n_train, 1), n - 2) if fractions[1] > 0 and fractions[2] > 0 else n_train
            n_val = min(max(n_val, 1), n - n_train - 1) if fractions[1] > 0 and fractions[2] > 0 else n_val
        for rank, idx in enumerate(order):
            assign[pids[idx]] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return [replace(r, split=assign[r.patient_id]) for r in records]
