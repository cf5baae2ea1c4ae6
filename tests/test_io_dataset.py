"""The lead's dataset manifests (medcloak.io.dataset): round trip, patient-wise split, bad CSVs."""

from __future__ import annotations

import pytest

from medcloak.errors import MedcloakError
from medcloak.io.dataset import Record, read_manifest, split_patients, write_manifest


def _records(n_patients=20, frames=3):
    return [
        Record(f"p{p}/f{f}.png", "LCA" if p % 2 else "RCA", f"p{p}", "", {"view": f"v{f}"})
        for p in range(n_patients)
        for f in range(frames)
    ]


def test_round_trip_keeps_records_and_extras(tmp_path):
    recs = [Record("a.png", "LCA", "p1", "train", {"mask": "m/a.png", "note": "x,y \"q\""}),
            Record("b.png", "RCA", "p2", "", {"clean": "c/b.png"})]
    out = write_manifest(tmp_path, recs)
    assert out == tmp_path / "labels.csv"
    man = read_manifest(tmp_path)
    assert man.root == tmp_path and man.labels == ["LCA", "RCA"]
    assert [(r.path, r.label, r.patient_id, r.split) for r in man.records] == [
        ("a.png", "LCA", "p1", "train"), ("b.png", "RCA", "p2", "")]
    assert man.records[0].extra == {"mask": "m/a.png", "note": "x,y \"q\"", "clean": ""}
    assert man.records[1].extra["clean"] == "c/b.png"
    assert man.abspath("a.png") == tmp_path / "a.png"
    assert [r.path for r in man.subset("train")] == ["a.png"]
    write_manifest(tmp_path, man.records)
    first = (tmp_path / "labels.csv").read_bytes()
    write_manifest(tmp_path, read_manifest(tmp_path / "labels.csv").records)
    assert (tmp_path / "labels.csv").read_bytes() == first


def test_split_is_patient_wise_stratified_and_seeded():
    recs = _records()
    out = split_patients(recs, seed=3)
    by_patient = {}
    for r in out:
        by_patient.setdefault(r.patient_id, set()).add(r.split)
    assert all(len(s) == 1 for s in by_patient.values())
    splits = {r.split for r in out}
    assert splits == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert {r.label for r in out if r.split == split} == {"LCA", "RCA"}
    n_train = sum(1 for s in by_patient.values() if s == {"train"})
    assert 12 <= n_train <= 16  # 70 % of 20 patients
    assert [r.split for r in split_patients(recs, seed=3)] == [r.split for r in out]
    assert [r.split for r in split_patients(recs, seed=4)] != [r.split for r in out]
    assert [(r.path, r.extra) for r in out] == [(r.path, r.extra) for r in recs]


def test_split_rejects_bad_fractions():
    with pytest.raises(MedcloakError):
        split_patients(_records(), seed=0, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(MedcloakError):
        split_patients(_records(), seed=0, fractions=(1.2, -0.1, -0.1))


@pytest.mark.parametrize(
    "text, reason",
    [
        ("path,label,split\na.png,LCA,train\n", "patient_id"),
        ("path,label,patient_id,split\na.png,,p1,train\n", "label"),
        ("path,label,patient_id,split\n,LCA,p1,train\n", "path"),
        ("path,label,patient_id,split\na.png,LCA,p1,training\n", "split"),
        ("path,label,patient_id,split\n../a.png,LCA,p1,train\n", "inside"),
        ("path,label,patient_id,split\n/etc/passwd,LCA,p1,train\n", "relative"),
        ("", "missing column"),
    ],
)
def test_bad_csv_raises_medcloak_error(tmp_path, text, reason):
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8")
    with pytest.raises(MedcloakError, match=reason) as info:
        read_manifest(tmp_path)
    assert "labels.csv" in str(info.value)


def test_missing_and_undecodable_csv(tmp_path):
    with pytest.raises(MedcloakError, match="labels.csv"):
        read_manifest(tmp_path)
    (tmp_path / "labels.csv").write_bytes(b"path,label,patient_id,split\n\xff\xfe,LCA,p,train\n")
    with pytest.raises(MedcloakError, match="cannot read"):
        read_manifest(tmp_path)
