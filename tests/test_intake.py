"""``medcloak dataset``: a folder of multi-frame DICOM XA cines -> frames + labels.csv (io/intake.py).

The cines are built here with pydicom (uncompressed, MONOCHROME2, 8- and 12-bit, NumberOfFrames,
positioner angles, patient name and ID, study/series UIDs) with the generator's frames as pixels.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, XRayAngiographicImageStorage

from medcloak.cli import main
from medcloak.errors import MedcloakError
from medcloak.io.dataset import read_manifest
from medcloak.io.intake import INTAKE_JSON, build_dataset, frame_scores, select_frames, view_columns
from medcloak.io.load import read_frames
from medcloak.keys import Key
from medcloak.synth import generate

UID_ROOT = "1.2.826.0.1.3680043.9.7433"
# (primary, secondary) per cine: LAO/CAU, RAO/CRA, AP/CRA, LAO/AP, RAO/CAU, ...
ANGLES = [(30.5, -20.0), (-25.0, 15.5), (0.0, 28.0), (45.0, 0.0), (-32.0, -18.5), (12.0, 22.0), (-5.5, 30.0),
          (60.0, -25.0)]
NAMES = ["ZEBRAFINCH^ALBERTINE", "QUOKKA^BARNABY", "PANGOLIN^CLEMENTINE", "AXOLOTL^DESMOND",
         "NARWHAL^EUPHEMIA", "OKAPI^FITZGERALD"]


def _dataset(frames: np.ndarray, *, name: str, pid: str, study: str, series: str, sop: str,
             angles: tuple[float, float] | None, bits: int = 12, modality: str = "XA") -> Dataset:
    """An uncompressed MONOCHROME2 DICOM of ``frames`` (N, H, W) in [0, 1], stored with ``bits`` bits."""
    n, h, w = frames.shape
    ds = Dataset()
    ds.SOPClassUID = XRayAngiographicImageStorage if modality == "XA" else CTImageStorage
    ds.SOPInstanceUID = sop
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = "19610203"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyDate = "20260101"
    ds.Modality = modality
    ds.InstitutionName = "St Test Hospital"
    if angles is not None:
        ds.PositionerPrimaryAngle = f"{angles[0]:g}"
        ds.PositionerSecondaryAngle = f"{angles[1]:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if n > 1:
        ds.NumberOfFrames = n
        ds.FrameTime = "66.7"
    stored = np.rint(np.clip(frames, 0, 1) * (2**bits - 1)).astype(np.uint8 if bits == 8 else "<u2")
    ds.PixelData = stored.tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass
class Cine:
    path: Path
    name: str
    pid: str
    study: str
    series: str
    sop: str
    label: str
    angles: tuple[float, float]
    stored: np.ndarray  # (N, H, W) the [0, 1] values the file holds (after quantisation)


def _hospital(root: Path, *, n_patients: int, cines_per_patient: int, frames_per_cine: int, seed: int):
    """Write a hospital folder; return the cines (every patient's cines in one study, one series each)."""
    n_cines = n_patients * cines_per_patient
    data = generate(n_cines * frames_per_cine, size=32, seed=seed, frames_per_patient=frames_per_cine)
    order: dict[str, list[int]] = {}
    for i, p in enumerate(data.patient_ids):
        order.setdefault(p, []).append(i)
    runs = list(order.values())
    assert len(runs) == n_cines
    cines = []
    for c, idx in enumerate(runs):
        p, s = divmod(c, cines_per_patient)
        bits = 8 if c % 2 else 12
        frames = data.frames[sorted(idx, key=lambda i: int(data.frame_index[i]))]
        name, pid = NAMES[p % len(NAMES)] + (f"^{p}" if p >= len(NAMES) else ""), f"MRN-4711-{p:04d}"
        study, series, sop = f"{UID_ROOT}.{p}", f"{UID_ROOT}.{p}.{s + 1}", f"{UID_ROOT}.{p}.{s + 1}.1"
        angles = ANGLES[c % len(ANGLES)]
        folder = root / name.replace("^", "_") / f"run{s + 1}"
        path = _save(_dataset(frames, name=name, pid=pid, study=study, series=series, sop=sop,
                              angles=angles, bits=bits), folder / "IM0001.dcm")
        stored = np.rint(frames * (2**bits - 1)) / (2**bits - 1)
        cines.append(Cine(path, name, pid, study, series, sop, data.labels[idx[0]], angles, stored))
    return cines


def _labels_csv(path: Path, cines: list[Cine], *, by: str = "SeriesInstanceUID") -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([by, "label"])
        for c in cines:
            w.writerow([c.series if by == "SeriesInstanceUID" else c.path.name, c.label])
    return path


@pytest.fixture(scope="module")
def hospital(tmp_path_factory):
    """4 patients x 2 cines of 8 frames (32 px), plus a corrupt cine and files to skip."""
    base = tmp_path_factory.mktemp("intake")
    root = base / "dicom"
    cines = _hospital(root, n_patients=4, cines_per_patient=2, frames_per_cine=8, seed=5)
    good = cines[0]
    # a corrupt cine: header fine, pixel data cut short
    bad = _dataset(np.full((6, 32, 32), 0.5, np.float32), name="WOMBAT^GERTRUDE", pid="MRN-4711-9999",
                   study=f"{UID_ROOT}.99", series=f"{UID_ROOT}.99.1", sop=f"{UID_ROOT}.99.1.1", angles=(10, 10))
    raw = _save(bad, root / "WOMBAT_GERTRUDE" / "IM0001.dcm").read_bytes()
    (root / "WOMBAT_GERTRUDE" / "IM0001.dcm").write_bytes(raw[:-3000])
    extra = {
        "single": _save(_dataset(good.stored[:1], name=good.name, pid=good.pid, study=good.study,
                                 series=f"{good.series}.7", sop=f"{good.sop}.7", angles=good.angles),
                        root / "single.dcm"),
        "ct": _save(_dataset(good.stored[:2], name=good.name, pid=good.pid, study=good.study,
                             series=f"{good.series}.8", sop=f"{good.sop}.8", angles=None, modality="CT"),
                    root / "ct.dcm"),
        "burned": root / "burned.dcm",
        "text": root / "notes.txt",
        "garbage": root / "garbage.dcm",
    }
    burned = _dataset(good.stored[:3], name=good.name, pid=good.pid, study=good.study, series=f"{good.series}.9",
                      sop=f"{good.sop}.9", angles=good.angles)
    burned.BurnedInAnnotation = "YES"
    _save(burned, extra["burned"])
    extra["text"].write_text("run list for ZEBRAFINCH^ALBERTINE\n")
    extra["garbage"].write_bytes(b"this is not a DICOM file at all" * 10)
    corrupt = Cine(root / "WOMBAT_GERTRUDE" / "IM0001.dcm", "WOMBAT^GERTRUDE", "MRN-4711-9999",
                   f"{UID_ROOT}.99", f"{UID_ROOT}.99.1", f"{UID_ROOT}.99.1.1", "LCA", (10, 10), np.zeros(0))
    labels = _labels_csv(base / "runs.csv", cines + [corrupt])
    key = Key.generate()
    key.save(base / "hospital.key")
    out = base / "data"
    summary = build_dataset(root, out, key=key, labels_csv=labels, frames=3, seed=1, progress=False,
                            map_csv=base / "map.csv")
    rows = list(csv.DictReader((out / "labels.csv").open()))
    return dict(base=base, root=root, cines=cines, corrupt=corrupt, extra=extra, key=key, out=out,
                summary=summary, rows=rows, labels=labels)


def test_frame_counts_and_pixels(hospital):
    s, rows, cines, key = hospital["summary"], hospital["rows"], hospital["cines"], hospital["key"]
    assert (s.n_cines, s.n_frames, s.n_patients, s.n_studies, s.n_series) == (8, 24, 4, 4, 8)
    by_series = {key.pseudonym("series", c.series): c for c in cines}
    per_series: dict[str, list[int]] = {}
    for r in rows:
        per_series.setdefault(r["series"], []).append(int(r["frame"]))
        c = by_series[r["series"]]
        assert r["label"] == c.label and r["cine_frames"] == "8"
        png = read_frames(hospital["out"] / r["path"])[0]
        assert png.meta.bit_depth == 16 and png.pixels.shape == (32, 32)
        # the PNG is the cine's frame at the recorded index (16-bit quantisation of the stored value)
        assert np.abs(png.pixels - c.stored[int(r["frame"])]).max() <= 1 / 65535 + 1e-7
    assert set(per_series) == set(by_series)
    assert all(len(v) == 3 == len(set(v)) for v in per_series.values())
    assert s.classes == {"LCA": 12, "RCA": 12} and s.labelled
    assert read_manifest(hospital["out"]).labels == ["LCA", "RCA"]  # usable by fit/train/study


def test_split_is_patient_wise_and_pseudonyms_are_keyed(hospital):
    rows, cines, key = hospital["rows"], hospital["cines"], hospital["key"]
    splits: dict[str, set[str]] = {}
    for r in rows:
        splits.setdefault(r["patient_id"], set()).add(r["split"])
    assert all(len(v) == 1 for v in splits.values())
    assert {next(iter(v)) for v in splits.values()} == {"train", "val", "test"}
    assert set(splits) == {key.pseudonym("patient", c.pid) for c in cines}
    assert {r["study"] for r in rows} == {key.pseudonym("study", c.study) for c in cines}
    other = Key.generate()
    assert not {r["patient_id"] for r in rows} & {other.pseudonym("patient", c.pid) for c in cines}
    for r in rows:  # file names carry only pseudonyms and the frame index
        assert Path(r["path"]).name == f"{r['patient_id']}_{r['series']}_{r['cine']}_f{int(r['frame']):04d}.png"


def test_no_name_id_or_uid_anywhere_in_the_dataset(hospital):
    out = hospital["out"]
    people = hospital["cines"] + [hospital["corrupt"]]
    needles = set()
    for c in people:
        needles |= {c.name, c.pid, c.study, c.series, c.sop, *c.name.split("^"), c.name.replace("^", "_")}
    needles |= {"St Test Hospital", "19610203", "20260101", "IM0001", "4711"}
    needles = {n.encode() for n in needles} | {n.lower().encode() for n in needles}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 24 + 2  # the frames, labels.csv and intake.json; nothing else
    for p in files:
        blob = p.read_bytes() + str(p.relative_to(out)).encode()
        leaked = [n for n in needles if n in blob]
        assert not leaked, (p, leaked)
    meta = json.loads((out / INTAKE_JSON).read_text())
    assert meta["counts"]["failed_files"] == 1 and meta["key_fingerprint"] == hospital["key"].short_fingerprint


def test_view_columns_follow_the_dicom_sign_convention(hospital):
    key = hospital["key"]
    angles = {key.pseudonym("series", c.series): c.angles for c in hospital["cines"]}
    seen = set()
    for r in hospital["rows"]:
        p, s = angles[r["series"]]
        assert float(r["primary_angle"]) == p and float(r["secondary_angle"]) == s
        assert r["view_lr"] == ("LAO" if p > 0 else "RAO" if p < 0 else "AP")
        assert r["view_cc"] == ("CRA" if s > 0 else "CAU" if s < 0 else "AP")
        assert r["view"] == f"{r['view_lr']}{abs(p):.1f}/{r['view_cc']}{abs(s):.1f}"
        seen |= {r["view_lr"], r["view_cc"]}
    assert seen == {"LAO", "RAO", "AP", "CRA", "CAU"}
    # the standard's examples: +90 is the patient's left (LAO), +90 secondary is cranial
    assert view_columns(90.0, 90.0)["view"] == "LAO90.0/CRA90.0"
    assert view_columns(-90.0, -45.0)["view"] == "RAO90.0/CAU45.0"


def test_corrupt_and_other_files_are_reported_and_skipped(hospital):
    s, extra = hospital["summary"], hospital["extra"]
    assert [p for p, _ in s.failed] == [str(hospital["corrupt"].path)]
    assert "truncated" in s.failed[0][1]
    skipped = dict(s.skipped)
    assert set(skipped) == {str(p) for p in extra.values()}
    assert "single-frame" in skipped[str(extra["single"])]
    assert "Modality CT" in skipped[str(extra["ct"])]
    assert "BurnedInAnnotation" in skipped[str(extra["burned"])]
    assert "not a DICOM" in skipped[str(extra["text"])] and "not a DICOM" in skipped[str(extra["garbage"])]
    assert s.n_files == 8 + 1 + 5


def test_hospital_map_is_outside_the_dataset_and_private(hospital, tmp_path):
    m = hospital["base"] / "map.csv"
    assert stat.S_IMODE(os.stat(m).st_mode) == 0o600
    rows = list(csv.DictReader(m.open()))
    assert {r["PatientID"] for r in rows} == {c.pid for c in hospital["cines"]}
    assert {r["patient"] for r in rows} == {r["patient_id"] for r in hospital["rows"]}
    with pytest.raises(MedcloakError, match="outside the dataset"):
        build_dataset(hospital["root"], tmp_path / "d", key=hospital["key"], map_csv=tmp_path / "d" / "map.csv",
                      progress=False)
    with pytest.raises(MedcloakError, match="must not contain the DICOM folder"):
        build_dataset(hospital["root"], hospital["root"].parent, key=hospital["key"], progress=False)


def test_selection_takes_the_opacified_phase_one_frame_per_window(hospital):
    vessels = hospital["cines"][0].stored  # 8 opacified frames
    flat = np.full((4, 32, 32), 0.8)
    cine = np.concatenate([flat, vessels, flat[:1]])  # 4 frames before injection, 1 after wash-out
    scores = frame_scores(cine)
    assert np.all(scores[:4] == 0) and np.all(scores[4:12] > 0) and scores[12] == 0
    picks = select_frames(scores, 4)
    windows = np.array_split(np.arange(4, 12), 4)
    assert len(picks) == 4
    for pick, win in zip(picks, windows):
        assert pick in win and scores[pick] == scores[win].max()
    assert select_frames(scores, 20) == list(range(13))  # a short cine gives all its frames


def test_labels_csv_mismatch_names_the_rows_and_writes_nothing(hospital, tmp_path):
    cines, key = hospital["cines"], hospital["key"]
    csv_path = tmp_path / "runs.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["SeriesInstanceUID", "StudyInstanceUID", "label"])
        for c in cines[1:] + [hospital["corrupt"]]:  # no row for the first cine
            w.writerow([c.series, "", c.label])
        w.writerow(["1.2.3.4.5.6.7", "", "LCA"])  # line 10: a series not in the folder
        w.writerow(["", "9.8.7.6", "RCA"])  # line 11: a study not in the folder
    out = tmp_path / "data"
    with pytest.raises(MedcloakError, match=r"line 10 \(series 1\.2\.3\.4\.5\.6\.7\), line 11 \(study 9\.8\.7\.6\)"):
        build_dataset(hospital["root"], out, key=key, labels_csv=csv_path, progress=False)
    assert not out.exists()
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(MedcloakError, match=f"no row for these XA cines: {cines[0].path.relative_to(hospital['root'])}"):
        build_dataset(hospital["root"], out, key=key, labels_csv=csv_path, progress=False)
    csv_path.write_text(lines[0] + "\n" + f"{cines[0].series},,LCA\n{cines[0].series},,RCA\n")
    with pytest.raises(MedcloakError, match="lines 2 and 3"):
        build_dataset(hospital["root"], out, key=key, labels_csv=csv_path, progress=False)
    assert not out.exists()


def test_without_labels_the_label_column_is_empty_and_said_so(hospital, tmp_path, capsys):
    out = tmp_path / "data"
    code = main(["dataset", str(hospital["root"]), "--out", str(out), "--key", str(hospital["base"] / "hospital.key"),
                 "--frames", "2", "--size", "16", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1  # the corrupt cine failed
    assert f"failed: {hospital['corrupt'].path}" in err and "truncated" in err
    assert f"skipped: {hospital['extra']['ct']}" in err and "EMPTY" in err
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert len(rows) == 16 and all(r["label"] == "" for r in rows)
    assert read_frames(out / rows[0]["path"])[0].pixels.shape == (16, 16)
    with pytest.raises(MedcloakError, match="empty 'label'"):
        read_manifest(out)
    # a rerun into the same folder is refused without --force (exit 2, one line)
    assert main(["dataset", str(hospital["root"]), "--out", str(out), "--key",
                 str(hospital["base"] / "hospital.key"), "--no-progress"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err


def test_labels_keyed_by_file(hospital, tmp_path):
    cines = hospital["cines"]
    csv_path = tmp_path / "runs.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label"])
        for c in cines + [hospital["corrupt"]]:
            w.writerow([c.path.relative_to(hospital["root"]).as_posix(), "A" if c.label == "LCA" else "B"])
    s = build_dataset(hospital["root"], tmp_path / "d", key=hospital["key"], labels_csv=csv_path, frames=1,
                      progress=False)
    assert s.classes == {"A": 4, "B": 4}


@pytest.mark.usefixtures("one_torch_thread")
def test_study_runs_on_an_intake_dataset_as_real_data(tmp_path, capsys):
    root = tmp_path / "dicom"
    cines = _hospital(root, n_patients=12, cines_per_patient=1, frames_per_cine=6, seed=7)
    labels = _labels_csv(tmp_path / "runs.csv", cines)
    Key.generate().save(tmp_path / "hospital.key")
    data = tmp_path / "data"
    assert main(["dataset", str(root), "--out", str(data), "--key", str(tmp_path / "hospital.key"),
                 "--labels", str(labels), "--frames", "4", "--no-progress"]) == 0
    assert "48 frames from 12 cines (12 patients" in capsys.readouterr().out
    out = tmp_path / "study"
    assert main(["study", "--preset", "tiny", "--data", str(data), "--out", str(out),
                 "--key", str(tmp_path / "hospital.key"), "--no-progress"]) == 0
    assert "(real data, 48 frames 32x32)" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["provenance"] == "real" and m["data"]["n_frames"] == 48
    assert str(data.resolve()) in m["data"]["source"]
    page = (out / "report.html").read_text()
    assert "REAL data" in page and "SEMI-SYNTHETIC" not in page


def test_a_truncated_copy_met_first_does_not_hide_the_good_file(tmp_path):
    root = tmp_path / "dicom"
    cines = _hospital(root, n_patients=2, cines_per_patient=1, frames_per_cine=4, seed=2)
    good = cines[0].path.read_bytes()
    (root / "0_partial_copy.dcm").write_bytes(good[:-500])  # sorted before the good file
    (root / "zz_full_copy.dcm").write_bytes(good)  # sorted after it
    labels = tmp_path / "runs.csv"  # keyed by file: the copies have no row of their own
    labels.write_text("file,label\n" + "".join(f"{c.path.relative_to(root).as_posix()},{c.label}\n" for c in cines))
    s = build_dataset(root, tmp_path / "d", key=Key.generate(), labels_csv=labels, frames=2, progress=False)
    assert s.n_cines == 2 and s.n_frames == 4 and s.classes == {"LCA": 2, "RCA": 2}
    assert [p for p, _ in s.failed] == [str(root / "0_partial_copy.dcm")]
    assert s.skipped == [(str(root / "zz_full_copy.dcm"), f"same SOPInstanceUID as "
                          f"{cines[0].path.relative_to(root).as_posix()} (a copy)")]
