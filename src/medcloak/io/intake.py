"""From a hospital's folder of DICOM XA cines to a study dataset (a folder of frames + ``labels.csv``).

:func:`build_dataset` walks a folder, reads every X-ray angiography (XA) cine, picks ``frames``
frames per cine, and writes them as 16-bit PNGs plus ``labels.csv`` (the format of
:mod:`medcloak.io.dataset`) that ``medcloak fit``, ``train`` and ``study --data`` read.

Two passes
----------
1. **Headers** (``stop_before_pixels``): every file under the folder (sorted; hidden files,
   ``DICOMDIR`` and the output folder are left out). Kept as cines: ``Modality`` XA with at least
   two frames. Skipped, one line each: files that are not DICOM, other modalities,
   single-frame images, and cines flagged ``BurnedInAnnotation = YES`` (text such as the patient's
   name may be burned into the pixels, which nothing here removes). Failed: unreadable headers. The labels CSV is matched against these
   headers **before anything is written**.
2. **Pixels** (:func:`medcloak.io.dicom.read_dicom`: modality LUT, MONOCHROME1 inverted, scaled by
   ``BitsStored``): a cine whose pixel data cannot be decoded (truncated, bad syntax) is reported
   and skipped; the others are written. A file with the ``SOPInstanceUID`` of a cine already
   written is skipped as a copy (so a truncated copy met first does not hide the good one).

Frame selection rule (``frames = N`` per cine)
----------------------------------------------
Every frame is scored by its **vessel area**: the fraction of pixels that
:func:`medcloak.metrics.vessel_map` (top-hat contrast of the line integral, fixed settings) marks
as contrast-filled vessel, computed on the frame shrunk to at most 128 px a side (the map's
radius follows the frame side; 128 px keeps it cheap on 512/1024-px cines). The **opacified
phase** is the span from the first to the last frame scoring at least half the cine's best
score (before the injection and after wash-out the vessels are not visible). That span is cut
into N windows of (nearly) equal length in time (:func:`numpy.array_split`) and the
highest-scoring frame of each window is kept (the earliest on ties). At 15 frames/s a cardiac
cycle lasts 10-15 frames and a run's opacified phase several cycles, so the picks spread over
the cardiac cycle instead of bunching on the best few neighbouring frames. A span shorter than
N frames is widened to the whole cine; a cine of fewer than N frames gives all its frames.

Views
-----
From ``PositionerPrimaryAngle`` (0018,1510) and ``PositionerSecondaryAngle`` (0018,1511) (for
Enhanced XA, from ``PositionerPositionSequence`` in the shared or first per-frame functional
group). DICOM PS3.3 section C.8.7.5.1.2 "Positioner Primary and Secondary Angles": the primary
angle is in the transaxial plane, 0 deg perpendicular to the patient's chest, **+90 deg at the
patient's left hand side (LAO) and -90 deg at the right (RAO)**; the secondary angle is in the
sagittal plane and **+90 deg is cranial** (so negative is caudal). Both "apply to the first
frame of a multi-frame image" (the standard); we use them for every frame of the cine. Columns:
``view_lr`` LAO / RAO (``AP`` at exactly 0), ``view_cc`` CRA / CAU (``AP`` at exactly 0),
``view`` as the generator writes it (``LAO32.1/CRA14.0``; ``AP0.0`` for a zero angle), and the
angles in degrees. A cine without the angles gets empty view columns.

Pseudonyms and what leaves into the dataset
-------------------------------------------
Patient, study, series and cine are named by :meth:`medcloak.keys.Key.pseudonym` of
``PatientID``, ``StudyInstanceUID``, ``SeriesInstanceUID`` and ``SOPInstanceUID`` (labels
``patient``, ``study``, ``series``, ``cine``): HMAC-SHA256 under the hospital's key, so nobody
without the key can confirm a guessed ID. A cine without ``PatientID`` is grouped under its
study (a note says how many). Frame files are named ``frames/<patient>_<series>_<cine>_f<k>.png``
(``k`` = frame index in the cine). The dataset folder holds only those PNGs (no DICOM header, no
PNG text chunk), ``labels.csv`` and ``intake.json`` (counts, the rule, the key's fingerprint):
no name, ID, UID, date or source file name. The optional hospital-side map (pseudonyms -> source
file and original IDs) must be written **outside** the dataset folder.

Labels CSV (``labels_csv``)
---------------------------
Header row; a ``label`` column (any class names, e.g. LCA / RCA) and at least one key column:
``file`` (or ``path``; relative to the DICOM folder), ``SeriesInstanceUID`` or
``StudyInstanceUID`` (column names are matched ignoring case, spaces and underscores). Each row
uses its most specific non-empty key (file, then series, then study); a copy of a labelled file
(same ``SOPInstanceUID``) carries its label. Every XA cine must get a
label and every row must match a file: a mismatch raises one :class:`MedcloakError` naming the
rows (line numbers) or the files. Without ``labels_csv`` the label column is **empty**:
:func:`medcloak.io.dataset.read_manifest` (hence ``fit``, ``train`` and ``study``) refuses such
a dataset until labels are filled in.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_text
from medcloak.io.dataset import LABELS_CSV, Record, split_patients, write_manifest
from medcloak.io.frame_selection import SCORE_SIDE, frame_scores, select_frames

__all__ = ["build_dataset", "IntakeSummary", "frame_scores", "select_frames", "view_columns", "SCORE_SIDE",
           "INTAKE_JSON"]

#: Written into the dataset folder: counts and settings (no identifying value).
INTAKE_JSON = "intake.json"
_SKIP_NAMES = frozenset({"dicomdir", LABELS_CSV})
_KEY_COLUMNS = {"file": "file", "path": "file", "seriesinstanceuid": "series", "studyinstanceuid": "study"}
_MAX_LISTED = 10


@dataclass
class IntakeSummary:
    """What :func:`build_dataset` did.

    Attributes
    ----------
    out : Path
        The dataset folder.
    n_files : int
        Files looked at.
    n_cines, n_frames, n_patients, n_studies, n_series : int
        Cines written, frames written, and distinct patients, studies and series among them.
    labelled : bool
        True when a labels CSV gave the ``label`` column; False: it is empty.
    classes : dict
        Frames per label (empty when unlabelled).
    splits : dict
        Frames per split.
    skipped : list of (str, str)
        (file, reason) of files left out by rule (not DICOM, not XA, one frame, burned-in
        annotation, a copy of a cine already written).
    failed : list of (str, str)
        (file, reason) of files that could not be read.
    notes : list of str
        Things the user should know (short cines, missing angles or patient IDs, empty labels).
    """

    out: Path
    n_files: int = 0
    n_cines: int = 0
    n_frames: int = 0
    n_patients: int = 0
    n_studies: int = 0
    n_series: int = 0
    labelled: bool = False
    classes: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Cine:
    path: Path
    rel: str
    patient: str  # the original PatientID (or a stand-in); never written into the dataset
    study: str
    series: str
    sop: str
    n_frames: int
    primary: float | None
    secondary: float | None
    patient_id: str = ""  # PatientID as found (may be empty), for the hospital-side map only
    label: str = ""


# ------------------------------------------------------------------ views
def _angle(ds, keyword: str) -> float | None:
    def value(obj):
        v = obj.get(keyword) if obj is not None else None
        try:
            return None if v is None or v == "" else float(v)
        except (TypeError, ValueError):
            return None

    a = value(ds)
    if a is not None:
        return a
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            item = ds.get(group)[0]
            a = value(item.PositionerPositionSequence[0])
        except Exception:
            a = None
        if a is not None:
            return a
    return None


def view_columns(primary: float | None, secondary: float | None) -> dict[str, str]:
    """The view columns of ``labels.csv`` from the positioner angles (degrees).

    Sign convention of DICOM PS3.3 C.8.7.5.1.2: primary > 0 is LAO, < 0 RAO; secondary > 0 is
    cranial (CRA), < 0 caudal (CAU); exactly 0 is written ``AP`` (no angulation in that plane).

    >>> view_columns(32.1, -14.0)["view"], view_columns(-30, 25)["view_lr"]
    ('LAO32.1/CAU14.0', 'RAO')
    >>> view_columns(None, 5.0)["view"]
    ''
    """
    if primary is None or secondary is None:
        return {"view": "", "view_lr": "", "view_cc": "", "primary_angle": "", "secondary_angle": ""}
    lr = "LAO" if primary > 0 else "RAO" if primary < 0 else "AP"
    cc = "CRA" if secondary > 0 else "CAU" if secondary < 0 else "AP"
    return {"view": f"{lr}{abs(primary):.1f}/{cc}{abs(secondary):.1f}", "view_lr": lr, "view_cc": cc,
            "primary_angle": f"{primary:g}", "secondary_angle": f"{secondary:g}"}


# ------------------------------------------------------------------ labels CSV
def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _read_labels(path: Path) -> list[tuple[int, str, str, str]]:
    """Rows of the labels CSV as (line, kind, key, label); kind is file, series or study."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MedcloakError("labels file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MedcloakError(f"cannot read labels file ({exc.__class__.__name__})", path) from None
    reader = csv.reader(_io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise MedcloakError("labels file is empty (need a header row with 'label' and a key column)", path)
    cols = {_norm(h): i for i, h in enumerate(header)}
    if "label" not in cols:
        raise MedcloakError("labels file has no 'label' column", path)
    keys = [(kind, cols[name]) for name, kind in _KEY_COLUMNS.items() if name in cols]
    if not keys:
        raise MedcloakError("labels file needs a key column: file, SeriesInstanceUID or StudyInstanceUID", path)
    order = {"file": 0, "series": 1, "study": 2}
    keys.sort(key=lambda k: order[k[0]])
    rows, bad = [], []
    for lineno, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        cell = lambda i: row[i].strip() if i < len(row) else ""  # noqa: E731
        label = cell(cols["label"])
        found = next(((kind, cell(i)) for kind, i in keys if cell(i)), None)
        if not label or found is None:
            bad.append(f"line {lineno} ({'no label' if not label else 'no key'})")
            continue
        rows.append((lineno, found[0], found[1], label))
    if bad:
        raise MedcloakError(f"labels file rows without a label or a key: {_listing(bad)}", path)
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    clash = []
    for lineno, kind, key, label in rows:
        k = (kind, key if kind != "file" else Path(key).as_posix())
        if k in seen and seen[k][1] != label:
            clash.append(f"lines {seen[k][0]} and {lineno} ({kind} {key}: {seen[k][1]} vs {label})")
        seen.setdefault(k, (lineno, label))
    if clash:
        raise MedcloakError(f"labels file gives one key two labels: {_listing(clash)}", path)
    return rows


def _listing(items: list[str]) -> str:
    more = len(items) - _MAX_LISTED
    return ", ".join(items[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _apply_labels(rows, cines: list[_Cine], *, looked_at: list[Path], series_uids: set[str],
                  study_uids: set[str], root: Path, csv_path: Path) -> None:
    """Set ``cine.label`` from the CSV rows; raise naming the rows / files that do not match.

    A row matches when it names a file looked at, or the series / study UID of any readable
    header (so a row for a file that is skipped or fails later is not a mismatch).
    """
    by_file, by_series, by_study = {}, {}, {}
    for lineno, kind, key, label in rows:
        if kind == "file":
            p = Path(key)
            by_file[(p if p.is_absolute() else root / p).resolve()] = (lineno, label)
        elif kind == "series":
            by_series[key] = (lineno, label)
        else:
            by_study[key] = (lineno, label)
    used = {by_file[p.resolve()][0] for p in looked_at if p.resolve() in by_file}
    used |= {lineno for s, (lineno, _) in by_series.items() if s in series_uids}
    used |= {lineno for s, (lineno, _) in by_study.items() if s in study_uids}
    unmatched = [f"line {lineno} ({kind} {key})" for lineno, kind, key, _ in rows if lineno not in used]
    if unmatched:
        raise MedcloakError(f"labels file rows match no file in the DICOM folder: {_listing(unmatched)}", csv_path)
    for c in cines:
        hit = by_file.get(c.path.resolve()) or by_series.get(c.series) or by_study.get(c.study)
        c.label = hit[1] if hit else ""
    by_sop = {c.sop: c.label for c in cines if c.label}
    for c in cines:  # a copy of a labelled file (same SOPInstanceUID) carries its label
        c.label = c.label or by_sop.get(c.sop, "")
    unlabelled = [c.rel for c in cines if not c.label]
    if unlabelled:
        raise MedcloakError(f"labels file has no row for these XA cines: {_listing(unlabelled)}", csv_path)


# ------------------------------------------------------------------ walking and headers
def _walk(root: Path, exclude: list[Path]) -> list[Path]:
    """Every regular file under ``root``, sorted; hidden entries, DICOMDIR and ``exclude`` left out."""
    ex = {p.resolve() for p in exclude}
    found: list[Path] = []

    def walk(folder: Path) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise MedcloakError(f"cannot list folder ({exc.strerror or exc.__class__.__name__})", folder) from None
        for e in entries:
            p = Path(e.path)
            if e.name.startswith(".") or p.resolve() in ex:
                continue
            if e.is_dir(follow_symlinks=False):
                walk(p)
            elif e.is_file() and e.name.lower() not in _SKIP_NAMES:
                found.append(p)

    walk(root)
    return found


def _read_header(path: Path):
    """(dataset, force) of a DICOM file, or raise MedcloakError; None when it is not DICOM."""
    from medcloak.io.dicom import read_dicom_dataset
    from medcloak.io.load import looks_like_raw_dicom, sniff_format

    fmt = sniff_format(path)  # raises for unreadable / empty files
    if fmt == "dicom-raw" and not looks_like_raw_dicom(path):
        fmt = None
    if fmt not in ("dicom", "dicom-raw"):
        return None, fmt
    return read_dicom_dataset(path, force=fmt == "dicom-raw"), fmt


def _uid(ds, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip().rstrip("\x00")


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ------------------------------------------------------------------ the one entry point
def build_dataset(
    dicom_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    key,
    labels_csv: str | os.PathLike | None = None,
    frames: int = 8,
    size: int | None = None,
    seed: int = 0,
    map_csv: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> IntakeSummary:
    """Turn a folder of DICOM XA cines into a dataset folder of frames plus ``labels.csv``.

    Parameters
    ----------
    dicom_dir : path-like
        Folder searched recursively (files are opened read-only, never modified).
    out : path-like
        Dataset folder (created). Holds ``frames/*.png`` (16-bit grey PNG: ``round(x * 65535)``
        of the [0, 1] frame), ``labels.csv`` (written last: a folder with it is complete) and
        ``intake.json``. Must not contain ``dicom_dir``.
    key : medcloak.keys.Key
        The hospital's key; every pseudonym is ``key.pseudonym(label, value)``.
    labels_csv : path-like, optional
        Labels keyed by file, SeriesInstanceUID or StudyInstanceUID (module docstring). Without
        it the ``label`` column is empty (see :attr:`IntakeSummary.notes`).
    frames : int
        Frames kept per cine (>= 1), by the rule in the module docstring.
    size : int, optional
        Resize every kept frame to ``size`` x ``size`` (:func:`medcloak.io.arrays.resize`:
        bilinear, anti-aliased); default: the cine's own size.
    seed : int
        Seed of the patient-wise train/val/test split (:func:`~medcloak.io.dataset.split_patients`,
        70/15/15 % of patients per class).
    map_csv : path-like, optional
        Hospital-side table pseudonym -> PatientID, UIDs and source file (mode 0600). It holds
        identifiers, so it must lie outside ``out``.
    overwrite : bool
        Allow an ``out`` that already holds ``labels.csv`` (files of the same name are replaced,
        others left).
    progress : bool
        tqdm progress bars on stderr.

    Returns
    -------
    IntakeSummary
        Counts, the skipped and failed files with reasons, and notes. Nothing is written when no
        cine could be read (``n_cines == 0``).

    Raises
    ------
    MedcloakError
        Bad arguments, a missing folder, no XA cine at all, or a labels CSV that does not match
        the folder (naming the rows or files) -- all before anything is written.
    """
    from tqdm import tqdm

    from medcloak.io.arrays import resize
    from medcloak.io.dicom import read_dicom
    from medcloak.io.images import write_png

    root, out = Path(dicom_dir), Path(out)
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise MedcloakError(f"frames per cine must be an integer >= 1, got {frames!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8):
        raise MedcloakError(f"size must be an integer >= 8 pixels, got {size!r}")
    if not root.is_dir():
        raise MedcloakError("no such folder (expected a folder of DICOM XA files)", root)
    r_root, r_out = root.resolve(), out.resolve()
    if r_root == r_out or r_out in r_root.parents:
        raise MedcloakError("the dataset folder must not contain the DICOM folder (its headers hold names "
                            "and IDs); choose another --out", out)
    if map_csv is not None:
        r_map = Path(map_csv).resolve()
        if r_out == r_map or r_out in r_map.parents:
            raise MedcloakError("the pseudonym map holds patient IDs and must be written outside the "
                                "dataset folder", map_csv)
    if (out / LABELS_CSV).exists() and not overwrite:
        raise MedcloakError(f"already holds a dataset ({LABELS_CSV}); choose another folder or overwrite", out)
    rows = _read_labels(Path(labels_csv)) if labels_csv is not None else None

    summary = IntakeSummary(out=out, labelled=rows is not None)
    exclude = [out] + [Path(p) for p in (labels_csv, map_csv) if p is not None]
    files = _walk(root, exclude)
    summary.n_files = len(files)

    # pass 1: headers
    cines: list[_Cine] = []
    forced: dict[Path, bool] = {}
    series_uids: set[str] = set()
    study_uids: set[str] = set()
    for path in tqdm(files, disable=not progress, file=sys.stderr, unit="file", desc="headers"):
        rel = _rel(path, root)
        try:
            ds, fmt = _read_header(path)
        except MedcloakError as exc:
            summary.failed.append((str(path), exc.reason))
            continue
        if ds is None:
            summary.skipped.append((str(path), f"not a DICOM file ({fmt or 'unknown content'})"))
            continue
        study, series, sop = _uid(ds, "StudyInstanceUID"), _uid(ds, "SeriesInstanceUID"), _uid(ds, "SOPInstanceUID")
        series_uids.add(series)
        study_uids.add(study)
        modality = str(ds.get("Modality", "") or "").strip().upper()
        if modality != "XA":
            summary.skipped.append((str(path), f"not an XA image (Modality {modality or 'missing'})"))
            continue
        try:
            n = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            n = 1
        if n < 2:
            summary.skipped.append((str(path), "single-frame XA image, not a cine"))
            continue
        if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
            summary.skipped.append((str(path), "BurnedInAnnotation YES: identifying text may be in the pixels"))
            continue
        pid = str(ds.get("PatientID", "") or "").strip()
        cines.append(_Cine(path, rel, pid or f"study:{study or rel}", study or f"file:{rel}",
                           series or f"file:{rel}", sop or f"file:{rel}", n,
                           _angle(ds, "PositionerPrimaryAngle"), _angle(ds, "PositionerSecondaryAngle"), pid))
        forced[path] = fmt == "dicom-raw"
    if not cines:
        raise MedcloakError(f"no XA cine (multi-frame DICOM with Modality XA) among {len(files)} files; "
                            f"{len(summary.skipped)} skipped, {len(summary.failed)} unreadable", root)
    if rows is not None:
        _apply_labels(rows, cines, looked_at=files, series_uids=series_uids, study_uids=study_uids,
                      root=root, csv_path=Path(labels_csv))

    # pass 2: pixels, selection, frames
    records: list[Record] = []
    written: list[_Cine] = []
    short = no_angle = no_pid = 0
    done: dict[str, str] = {}  # SOPInstanceUID -> the file written for it (a later copy is skipped)
    for c in tqdm(cines, disable=not progress, file=sys.stderr, unit="cine", desc="cines"):
        if c.sop in done:
            summary.skipped.append((str(c.path), f"same SOPInstanceUID as {done[c.sop]} (a copy)"))
            continue
        try:
            read = read_dicom(c.path, force=forced[c.path])
            stack = np.stack([f.pixels for f in read])
        except MedcloakError as exc:
            summary.failed.append((str(c.path), exc.reason))
            continue
        except ValueError:  # frames of different shapes cannot happen in one DICOM, but say so
            summary.failed.append((str(c.path), "frames of different sizes"))
            continue
        keep = select_frames(frame_scores(stack), frames)
        short += len(stack) < frames
        no_angle += c.primary is None or c.secondary is None
        no_pid += not c.patient_id
        done[c.sop] = c.rel
        p, st = key.pseudonym("patient", c.patient), key.pseudonym("study", c.study)
        se, ci = key.pseudonym("series", c.series), key.pseudonym("cine", c.sop)
        views = view_columns(c.primary, c.secondary)
        for k in keep:
            img = stack[k] if size is None else resize(stack[k], int(size))
            rel = f"frames/{p}_{se}_{ci}_f{k:04d}.png"
            write_png(out / rel, img, bits=16)
            extra = {"study": st, "series": se, "cine": ci, "frame": str(k), "cine_frames": str(len(stack)), **views}
            records.append(Record(rel, c.label, p, "", extra))
        written.append(c)
    if not written:
        summary.notes.append("no cine could be read: nothing was written")
        return summary
    records = split_patients(records, seed=seed)
    summary.n_cines, summary.n_frames = len(written), len(records)
    summary.n_patients = len({r.patient_id for r in records})
    summary.n_studies = len({r.extra["study"] for r in records})
    summary.n_series = len({r.extra["series"] for r in records})
    n_split = Counter(r.split for r in records)
    summary.splits = {k: n_split[k] for k in ("train", "val", "test") if n_split[k]}
    if rows is not None:
        summary.classes = dict(sorted(Counter(r.label for r in records).items()))
        if len(summary.classes) != 2:
            summary.notes.append(f"{len(summary.classes)} classes ({', '.join(summary.classes)}); the study's "
                                 "classification task expects two (e.g. LCA / RCA)")
    else:
        summary.notes.append(f"no labels given: the 'label' column of {LABELS_CSV} is EMPTY, so fit, train and "
                             "study refuse this dataset until it is filled in (rerun with --labels runs.csv)")
    if short:
        summary.notes.append(f"{short} cine(s) had fewer than {frames} frames; all their frames were kept")
    if no_angle:
        summary.notes.append(f"{no_angle} cine(s) have no positioner angles; their view columns are empty")
    if no_pid:
        summary.notes.append(f"{no_pid} cine(s) have no PatientID; each is grouped as a patient of its own study")
    if map_csv is not None:
        _write_map(Path(map_csv), written, key)
    meta = {
        "format": "medcloak-intake", "version": 1,
        "frames_per_cine": int(frames), "size": None if size is None else int(size), "seed": int(seed),
        "png": "16-bit grey, round(x * 65535) of the [0, 1] frame (modality LUT applied, MONOCHROME1 inverted)",
        "selection": ("vessel area (metrics.vessel_map, frames shrunk to <= 128 px) per frame; the opacified "
                      "span (>= half the best score) cut into N equal windows; the best frame of each"),
        "pseudonyms": "HMAC-SHA256 under the key (Key.pseudonym: patient, study, series, cine), 16 hex",
        "key_fingerprint": key.short_fingerprint,
        "labelled": rows is not None,
        "counts": {"files": summary.n_files, "cines": summary.n_cines, "frames": summary.n_frames,
                   "patients": summary.n_patients, "studies": summary.n_studies, "series": summary.n_series,
                   "skipped_files": len(summary.skipped), "failed_files": len(summary.failed)},
        "splits": summary.splits, "classes": summary.classes,
    }
    atomic_write_text(out / INTAKE_JSON, json.dumps(meta, indent=2) + "\n")
    write_manifest(out, records)
    return summary


def _write_map(path: Path, cines: list[_Cine], key) -> None:
    """Hospital-side table: pseudonyms -> original IDs and source file (0600; never inside the dataset)."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["patient", "study", "series", "cine", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                "SOPInstanceUID", "source_file"])
    for c in cines:
        w.writerow([key.pseudonym("patient", c.patient), key.pseudonym("study", c.study),
                    key.pseudonym("series", c.series), key.pseudonym("cine", c.sop), c.patient_id, c.study,
                    c.series, c.sop, str(c.path.resolve())])
    atomic_write_text(path, buf.getvalue(), mode=0o600)
