"""Issue 18 (hardening): bad and odd inputs, identifying data, environment errors.

Every bad input is generated here (tmp_path), never checked in. Each test asserts what a user
or the cloud would see: exit status, one-line errors without tracebacks, files lost or not,
identifying strings in the cloud-side folder.
"""

import errno
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medcloak.cli import main
from medcloak.errors import MedcloakError
from medcloak.io.dataset import Record, read_manifest, write_manifest
from medcloak.io.deid import UIDMapper
from medcloak.io.dicom import write_dicom
from medcloak.io.images import write_npy, write_png
from medcloak.io.limits import Limits
from medcloak.io.load import iter_inputs, read_frames
from medcloak.keys import Key
from medcloak.obfuscation.batch import obfuscate_tree, read_batch_manifest
from medcloak.obfuscation.naming import item_id, pseudonym_name

SECRET = b"\x5a" * 32
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "hospital.key"
    Key(SECRET).save(path)
    return path


@pytest.fixture
def fifo_guard():
    """A timeout guard for in-process tests that create a FIFO: a regression fails, never hangs."""
    import signal

    def expired(signum, frame):
        raise TimeoutError("blocked on a FIFO for 60 s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cli(*args) -> list[str]:
    return ["obfuscate", *map(str, args), "--no-progress"]


def one_line_error(err: str) -> str:
    """The stderr of a refused command: no traceback, an 'error:' line."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def cloud_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ 1. names


@pytest.mark.parametrize("case", ["case", "stem", "frames"])
def test_colliding_input_names_never_lose_a_file(tmp_path, key_file, capsys, case):
    rng = np.random.default_rng(0)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    if case == "case":
        files = {"a.png": 1, "a.PNG": 1}
        write_png(src / "a.png", rng.random((16, 16)))
        write_png(src / "a.PNG", rng.random((16, 16)))
    elif case == "stem":
        files = {"b.png": 1, "b.npy": 1, "b_png.png": 1}
        write_png(src / "b.png", rng.random((16, 16)))
        write_npy(src / "b.npy", rng.random((16, 16)).astype(np.float32))
        write_png(src / "b_png.png", rng.random((16, 16)))
    else:
        files = {"v.npy": 3, "v_f0001.png": 1}
        write_npy(src / "v.npy", rng.random((3, 16, 16)).astype(np.float32))
        write_png(src / "v_f0001.png", rng.random((16, 16)))
    assert main(cli(src, out, "--key", key_file)) == 0
    log = capsys.readouterr()
    assert f"failed 0 (of {len(files)} files)" in log.out
    k = Key(SECRET)
    expect = {pseudonym_name(k, rel, i, "png") for rel, n in files.items() for i in range(n)}
    got = {n for n in cloud_files(out) if n != "manifest.jsonl"}
    assert got == expect and len(got) == sum(files.values())  # one file per frame, none lost
    # each output holds its own frame: obfuscating the same input alone gives the same bytes
    for rel, n in files.items():
        alone = tmp_path / f"alone_{rel}"
        obfuscate_tree(src / rel, alone, key=k, progress=False)
        for i in range(n):
            name = pseudonym_name(k, rel, i, "png")
            assert (alone / name).read_bytes() == (out / name).read_bytes()
    # a rerun redoes nothing
    assert main(cli(src, out, "--key", key_file)) == 0
    assert f"done 0, skipped {len(files)}, failed 0" in capsys.readouterr().out


def test_keep_names_collisions_are_reported_not_silent(tmp_path, key_file, capsys):
    rng = np.random.default_rng(1)
    src, out = tmp_path / "in", tmp_path / "out"
    write_png(src / "b.png", rng.random((16, 16)))
    write_npy(src / "b.npy", rng.random((16, 16)).astype(np.float32))
    write_png(src / "b_png.png", rng.random((16, 16)))
    write_npy(src / "v.npy", rng.random((3, 16, 16)).astype(np.float32))
    write_png(src / "v_f0001.png", rng.random((16, 16)))
    for _ in range(2):  # the rerun reports them again instead of "redoing the same files forever"
        assert main(cli(src, out, "--key", key_file, "--keep-names")) == 1
        log = capsys.readouterr()
        assert "failed 4 (of 5 files)" in log.out
        assert log.err.count("also the output of another input") == 4
    latest = {r["input"]: r["status"] for r in read_batch_manifest(out / "manifest.jsonl")}
    assert latest == {"b.npy": "ok", "b.png": "error", "b_png.png": "error", "v.npy": "error",
                      "v_f0001.png": "error"}


def test_no_identifying_string_reaches_the_cloud_folder(tmp_path, key_file, capsys):
    rng = np.random.default_rng(2)
    src = tmp_path / "Patients"
    folder = src / "DOE_JOHN_MRN4711" / "2024-12-31"
    write_png(folder / "DOE_JOHN_frame1.png", rng.random((24, 24)))
    (folder / "DOE_JOHN_broken.png").write_text("not an image")
    dcm = folder / "DOE_JOHN_cine.dcm"
    write_dicom(dcm, rng.random((2, 24, 24)), uid_mapper=UIDMapper(b"u" * 16), modality="XA")
    ds = pydicom.dcmread(dcm)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JOHN", "MRN4711", "19500101"
    ds.StudyDate, ds.InstitutionName = "20241231", "St Example Hospital"
    ds.save_as(dcm)
    labels = tmp_path / "labels_root"
    # the hospital's labels.csv lives above IN here; its paths are relative to its own folder
    write_manifest(tmp_path, [Record("Patients/DOE_JOHN_MRN4711/2024-12-31/DOE_JOHN_frame1.png", "LCA",
                                     "MRN4711", "train")])
    del labels
    secret_strings = [b"DOE", b"JOHN", b"MRN4711", b"4711", b"2024-12-31", b"20241231", b"19500101",
                      b"Example Hospital", b"Patients", str(tmp_path).encode()]
    from medcloak.obfuscation.batch_worker import sha256_file as _sha256_file

    hashes = [_sha256_file(p).encode() for p in folder.iterdir()]
    for fmt in ("png", "dicom"):
        out = tmp_path / f"cloud_{fmt}"
        rc = main(cli(src, out, "--key", key_file, "--format", fmt, "--labels", tmp_path / "labels.csv"))
        log = capsys.readouterr()
        assert rc == 1 and "failed 1 (of 3 files)" in log.out
        assert "DOE_JOHN_broken.png" in log.err  # the hospital's terminal names the input in full
        files = cloud_files(out)
        assert "labels.csv" in files and "manifest.jsonl" in files
        for name, blob in files.items():
            for s in secret_strings + hashes:
                assert s not in name.encode() and s not in blob, (fmt, name, s)
        names = tmp_path / f"cloud_{fmt}.names.jsonl"
        back = read_batch_manifest(names)
        assert {r["input"] for r in back} == {p.relative_to(src).as_posix() for p in folder.iterdir()}
        cloud_labels = read_manifest(out)
        assert [r.patient_id for r in cloud_labels.records] == [Key(SECRET).pseudonym("patient", "MRN4711")]
        assert (out / cloud_labels.records[0].path).is_file()


def test_names_file_must_stay_outside_the_cloud_folder(tmp_path, key_file, capsys):
    src = tmp_path / "in"
    write_png(src / "x.png", np.zeros((8, 8)))
    assert main(cli(src, tmp_path / "out", "--key", key_file, "--names", tmp_path / "out" / "map.jsonl")) == 2
    assert "must stay at the hospital" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
    precious = tmp_path / "labels.csv"  # a --names typo must not replace another file
    precious.write_text("path,label\n")
    assert main(cli(src, tmp_path / "out", "--key", key_file, "--names", precious)) == 2
    assert "not a medcloak names file" in one_line_error(capsys.readouterr().err)
    assert precious.read_text() == "path,label\n"
    # a names file of an output folder that was deleted is replaced by a fresh one
    assert main(cli(src, tmp_path / "out", "--key", key_file)) == 0
    import shutil

    shutil.rmtree(tmp_path / "out")
    assert main(cli(src, tmp_path / "out", "--key", key_file)) == 0
    assert len(read_batch_manifest(tmp_path / "out.names.jsonl")) == 1


# ------------------------------------------------------------------------- 2. the cloud step


def test_readme_cloud_step_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's commands (synth -> keygen -> obfuscate --labels -> train), smaller sizes."""
    monkeypatch.chdir(tmp_path)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    obf_cmd = "medcloak obfuscate data/frames cloud --key hospital.key --model model --workers 2 --labels data/labels.csv"
    train_cmd = "medcloak train cloud --out clf/"
    assert obf_cmd in readme and train_cmd in readme  # the test runs what the README says
    assert main(["synth", "data", "--n", "48", "--size", "32", "--seed", "0"]) == 0
    assert main(["keygen", "hospital.key"]) == 0
    # the README's model comes from 'medcloak fit'; a map-only model keeps this test fast
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator

    Obfuscator(Key.load("hospital.key"), config=ObfuscationConfig(order="map-only", levels=16)).save("model")
    capsys.readouterr()
    assert main(obf_cmd.split()[1:] + ["--no-progress"]) == 0
    log = capsys.readouterr().out
    assert "wrote cloud/labels.csv (48 rows" in log
    hospital, cloud = read_manifest("data"), read_manifest("cloud")
    assert [r.split for r in cloud.records] == [r.split for r in hospital.records]
    assert [r.label for r in cloud.records] == [r.label for r in hospital.records]
    assert not {r.patient_id for r in hospital.records} & {r.patient_id for r in cloud.records}
    assert len({r.patient_id for r in cloud.records}) == len({r.patient_id for r in hospital.records})
    assert main(train_cmd.split()[1:] + ["--epochs", "1", "--n-boot", "10", "--no-progress"]) == 0
    assert (tmp_path / "clf" / "model.pt").is_file()


# --------------------------------------------------------------------------------- 3. burned-in


def _burned_in_dicom(path: Path, value: str = "YES") -> np.ndarray:
    frames = np.full((2, 64, 64), 0.3)
    frames[:, 16:48, 16:48] = np.linspace(0.2, 0.9, 1024).reshape(32, 32)  # the image
    frames[:, 1:4, 1:12] = 1.0  # "DOE^JOHN 1950" burned into the corner
    write_dicom(path, frames, uid_mapper=UIDMapper(b"b" * 16), modality="XA")
    ds = pydicom.dcmread(path)
    ds.BurnedInAnnotation = value
    ds.save_as(path)
    return frames


def test_burned_in_annotation_refused_masked_or_allowed(tmp_path, key_file, capsys):
    src = tmp_path / "in"
    _burned_in_dicom(src / "scan.dcm")
    k = Key(SECRET)
    assert main(cli(src, tmp_path / "refused", "--key", key_file)) == 1
    log = capsys.readouterr()
    assert "BurnedInAnnotation=YES" in log.err and "--burned-in" in log.err and "failed 1 (of 1" in log.out

    # mask: the text corner (inside the default 10 % border) is blank; the image is not
    out = tmp_path / "masked"
    assert main(cli(src, out, "--key", key_file, "--burned-in", "mask", "--format", "dicom")) == 0
    ds = pydicom.dcmread(out / pseudonym_name(k, "scan.dcm", 0, "dicom"))
    assert ds.BurnedInAnnotation == "NO" and ds.PatientIdentityRemoved == "YES"
    px = ds.pixel_array
    assert np.unique(px[:, :6, :]).size == 1 and np.unique(px[:, 1:4, 1:12]).size == 1  # text gone
    assert np.unique(px[:, 16:48, 16:48]).size > 50
    # a region list instead of the border
    out_r = tmp_path / "masked_region"
    assert main(cli(src, out_r, "--key", key_file, "--burned-in", "mask", "--mask-region", "0,0,16,6")) == 0
    img = read_frames(out_r / pseudonym_name(k, "scan.dcm", 0, "png"))[0].pixels
    assert np.unique(img[0:6, 0:16]).size == 1 and np.unique(img[16:48, 16:48]).size > 50

    # allow: processed with a warning, the DICOM output keeps YES
    out_a = tmp_path / "allowed"
    assert main(cli(src, out_a, "--key", key_file, "--burned-in", "allow", "--format", "dicom")) == 0
    log = capsys.readouterr()
    assert "warning" in log.err and "BurnedInAnnotation=YES" in log.err
    ds = pydicom.dcmread(out_a / pseudonym_name(k, "scan.dcm", 0, "dicom"))
    assert ds.BurnedInAnnotation == "YES"
    text = ds.pixel_array[0, 1:4, 1:12]
    assert np.unique(text).size == 1 and text[0, 0] != ds.pixel_array[0, 5, 20]  # the text is still there


# ------------------------------------------------------------------------------------ 4. limits


def _png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _tiff_header_only(path: Path, width: int, height: int) -> None:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, width * height)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0))


def _npy_header_only(shape, dtype="<f8") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def test_pixel_limits_are_checked_from_the_header_before_decoding(tmp_path):
    import zipfile

    big = tmp_path / "big"
    big.mkdir()
    _png_header_only(big / "wide.png", 5000, 5000)  # 25 M pixels > 4096 x 4096
    _tiff_header_only(big / "huge.tif", 60000, 50000)  # 12 GiB declared in a few hundred bytes
    (big / "huge.npy").write_bytes(_npy_header_only((400, 4096, 4096)))
    with zipfile.ZipFile(big / "huge.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("arr_0.npy", _npy_header_only((8192, 8192, 8192), "<u1"))
    ds_path = big / "cine.dcm"
    write_dicom(ds_path, np.zeros((2, 8, 8)), uid_mapper=UIDMapper(b"d" * 16), modality="XA")
    ds = pydicom.dcmread(ds_path)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4096, 4096, 400  # 6.7 G pixels; pixel data is 256 bytes
    ds.save_as(ds_path)
    for p in sorted(big.iterdir()):
        with pytest.raises(MedcloakError, match="exceed") as info:
            read_frames(p)
        assert "before decoding" in str(info.value) and str(p) in str(info.value)
    # configurable: a 24 x 24 frame over a 500-pixel limit
    small = tmp_path / "small.png"
    write_png(small, np.zeros((24, 24)))
    assert read_frames(small)[0].pixels.shape == (24, 24)
    with pytest.raises(MedcloakError, match="pixels per frame"):
        read_frames(small, limits=Limits(max_frame_pixels=500))
    cine = tmp_path / "cine.npy"
    write_npy(cine, np.zeros((5, 10, 10), dtype=np.float32))
    with pytest.raises(MedcloakError, match="pixels per file"):
        read_frames(cine, limits=Limits(max_file_pixels=499))


def test_obfuscate_max_pixels_option(tmp_path, key_file, capsys):
    src = tmp_path / "in"
    write_png(src / "ok.png", np.zeros((10, 10)))
    write_png(src / "large.png", np.zeros((30, 30)))
    assert main(cli(src, tmp_path / "out", "--key", key_file, "--max-frame-pixels", "400")) == 1
    log = capsys.readouterr()
    assert "failed 1 (of 2 files)" in log.out and "large.png" in log.err and "limit" in log.err


def test_model_files_are_checked_and_capped(tmp_path, key_file, capsys, monkeypatch, fifo_guard):
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator

    src = tmp_path / "in"
    write_png(src / "x.png", np.zeros((8, 8)))
    model = Obfuscator(Key(SECRET), config=ObfuscationConfig(order="map-only")).save(tmp_path / "model")
    doc = json.loads((model / "obfuscator.json").read_text())
    doc["config"] = "a string"
    (model / "obfuscator.json").write_text(json.dumps(doc))
    assert main(cli(src, tmp_path / "o1", "--key", key_file, "--model", model)) == 2
    assert "'config' is a str" in one_line_error(capsys.readouterr().err)
    (model / "obfuscator.json").write_text("[" * 100000 + "]" * 100000)  # nested JSON
    assert main(cli(src, tmp_path / "o2", "--key", key_file, "--model", model)) == 2
    assert "unreadable model file" in one_line_error(capsys.readouterr().err)
    # a VAE file named in the JSON is read only after the JSON checks, and never beyond the cap
    doc["config"] = ObfuscationConfig(order="map-only").to_dict()
    doc["vae_file"] = "vae.pt"
    (model / "obfuscator.json").write_text(json.dumps(doc))
    (model / "vae.pt").write_bytes(b"\0" * 4096)
    import medcloak.io.limits as limits

    monkeypatch.setattr(limits, "MAX_MODEL_FILE_BYTES", 1024)
    assert main(cli(src, tmp_path / "o3", "--key", key_file, "--model", model)) == 2
    assert "exceeds the limit of 1024 bytes" in one_line_error(capsys.readouterr().err)
    doc["key_fingerprint"] = "0" * 64  # another key: refused before the VAE file is opened
    (model / "obfuscator.json").write_text(json.dumps(doc))
    os.mkfifo(model / "vae.pt.fifo")
    doc["vae_file"] = "vae.pt.fifo"
    (model / "obfuscator.json").write_text(json.dumps(doc))
    assert main(cli(src, tmp_path / "o4", "--key", key_file, "--model", model)) == 2
    assert "fitted under key" in one_line_error(capsys.readouterr().err)


def test_nested_json_key_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "nested.key"
    bad.write_text("[" * 100000 + "]" * 100000)
    bad.chmod(0o600)
    src = tmp_path / "in"
    write_png(src / "x.png", np.zeros((8, 8)))
    assert main(cli(src, tmp_path / "out", "--key", bad)) == 2
    assert "not a medcloak key file" in one_line_error(capsys.readouterr().err)


# ----------------------------------------------------------------------- 5. environment errors


def _run_cli(args, timeout=120):
    """The CLI in a subprocess with a timeout guard (a FIFO must never hang the suite)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "medcloak.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_and_devices_are_refused_not_read(tmp_path, key_file, fifo_guard):
    src = tmp_path / "in"
    write_png(src / "ok.png", np.zeros((8, 8)))
    os.mkfifo(src / "pipe.png")
    r = _run_cli(["obfuscate", src, tmp_path / "out", "--key", key_file, "--no-progress"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "done 1, skipped 0, failed 1 (of 2 files)" in r.stdout and "pipe.png" in r.stderr and "FIFO" in r.stderr
    r = _run_cli(["obfuscate", src / "pipe.png", tmp_path / "out2", "--key", key_file, "--no-progress"])
    assert r.returncode == 2 and "not a regular file" in one_line_error(r.stderr)
    if os.path.exists("/dev/zero"):
        r = _run_cli(["obfuscate", "/dev/zero", tmp_path / "out3", "--key", key_file, "--no-progress"])
        assert r.returncode == 2 and "character device" in one_line_error(r.stderr)
        with pytest.raises(MedcloakError, match="not a regular file"):
            read_frames("/dev/zero")


def test_unwritable_output_and_read_only_manifest(tmp_path, key_file, capsys, monkeypatch):
    src = tmp_path / "in"
    write_png(src / "x.png", np.zeros((8, 8)))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(cli(src, blocker / "out", "--key", key_file)) == 2  # parent is a file: cannot create
    assert "a_file" in one_line_error(capsys.readouterr().err)
    out = tmp_path / "out"
    assert main(cli(src, out, "--key", key_file)) == 0
    write_png(src / "y.png", np.ones((8, 8)))
    real_open = os.open

    def read_only(path, flags, *a, **kw):
        if str(path).endswith("manifest.jsonl") and flags & os.O_WRONLY:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", read_only)
    assert main(cli(src, out, "--key", key_file)) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "manifest.jsonl" in line and "Permission denied" in line
    monkeypatch.setattr(os, "open", real_open)
    if not ROOT:  # a real read-only manifest (root writes anyway)
        (out / "manifest.jsonl").chmod(0o444)
        assert main(cli(src, out, "--key", key_file)) == 2
        assert "manifest.jsonl" in one_line_error(capsys.readouterr().err)
        (out / "manifest.jsonl").chmod(0o644)


@pytest.mark.parametrize("where", ["mkstemp", "fsync"])
def test_disk_full_stops_the_run_with_one_line(tmp_path, key_file, capsys, monkeypatch, where):
    """The disk fills when an output file is created, or only when its data is synced (the
    output writer syncs in a background thread)."""
    import tempfile

    src = tmp_path / "in"
    for i in range(3):
        write_png(src / f"x{i}.png", np.zeros((8, 8)))
    real = {"mkstemp": tempfile.mkstemp, "fsync": os.fsync}[where]

    def full(*args, **kw):
        if where == "fsync" or str(tmp_path / "out") in str(kw.get("dir", "")):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))
        return real(*args, **kw)

    monkeypatch.setattr(tempfile if where == "mkstemp" else os, where, full)
    assert main(cli(src, tmp_path / "out", "--key", key_file)) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device" in line and "out" in line


def test_corrupt_manifest_and_repair(tmp_path, key_file, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        write_png(src / f"x{i}.png", np.full((8, 8), i / 3))
    assert main(cli(src, out, "--key", key_file)) == 0
    m = out / "manifest.jsonl"
    lines = m.read_bytes().splitlines(keepends=True)
    m.write_bytes(lines[0] + b"{garbage\n" + b"".join(lines[2:]))
    before = m.read_bytes()
    assert main(cli(src, out, "--key", key_file)) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "line 2" in line and "--repair-manifest" in line and m.read_bytes() == before
    assert main(cli(src, out, "--key", key_file, "--repair-manifest")) == 0
    assert "done 1, skipped 2, failed 0" in capsys.readouterr().out
    assert all(isinstance(json.loads(x), dict) for x in m.read_bytes().splitlines())


def test_long_and_non_utf8_names(tmp_path, key_file, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    long_name = "p" * 240 + ".png"  # 244 bytes: the old temporary name went over 255
    write_png(src / long_name, np.zeros((8, 8)))
    raw = os.path.join(os.fsencode(src), b"caf\xe9_DOE.png")
    write_png(os.fsdecode(raw), np.ones((8, 8)))
    assert main(cli(src, out, "--key", key_file)) == 0
    assert "failed 0 (of 2 files)" in capsys.readouterr().out
    assert main(cli(src, tmp_path / "kept", "--key", key_file, "--keep-names")) == 0
    assert (tmp_path / "kept" / long_name).is_file()
    names = (tmp_path / "out.names.jsonl").read_text(encoding="utf-8")  # valid UTF-8, escaped
    assert "\\udce9" in names
    # a bad non-UTF-8 file: the error is printed escaped, not a UnicodeEncodeError
    (src / os.fsdecode(b"bad\xff.png")).write_text("no image")
    assert main(cli(src, out, "--key", key_file)) == 1
    assert "bad\\xff.png" in capsys.readouterr().err
    # predictions of such a file are still written as CSV (escaped)
    from medcloak.learn.predict import format_predictions, write_predictions

    rows = [{"path": os.fsdecode(raw), "frame": 0, "label": "LCA", "probability": 0.9, "error": ""}]
    write_predictions(tmp_path / "pred.csv", rows)
    assert "caf\\xe9_DOE.png" in (tmp_path / "pred.csv").read_text(encoding="utf-8")
    assert format_predictions(rows).count("\n") == 2


def test_predict_out_with_a_non_utf8_name_still_writes_the_csv(tmp_path, capsys, fifo_guard):
    from medcloak.learn.models import build_classifier, save_classifier

    model_dir = tmp_path / "clf"
    save_classifier(model_dir, build_classifier("small", seed=0), classes=["LCA", "RCA"], image_size=(16, 16))
    src = tmp_path / "new"
    src.mkdir()
    write_png(os.fsdecode(os.path.join(os.fsencode(src), b"M\xfcller.png")), np.zeros((16, 16)))
    write_png(src / "plain.png", np.ones((16, 16)))
    (src / os.fsdecode(b"bad\xff.png")).write_text("no image")
    os.mkfifo(src / "pipe.png")  # reported as a failed row, never opened
    out = tmp_path / "pred.csv"
    assert main(["predict", str(model_dir), str(src), "--out", str(out), "--no-progress"]) == 1
    log = capsys.readouterr()
    assert "Traceback" not in log.err and "bad\\xff.png" in log.err and "pipe.png" in log.err
    text = out.read_text(encoding="utf-8")
    assert "M\\xfcller.png" in text and "plain.png" in text and "bad\\xff.png" in text
    assert text.count("\n") == 5  # header + 2 predictions + 2 error rows
    assert main(["predict", str(model_dir), str(src / "pipe.png"), "--no-progress"]) == 2
    assert "not a regular file" in one_line_error(capsys.readouterr().err)


def test_unreadable_subfolder_is_reported_and_skipped(tmp_path, key_file, capsys, monkeypatch):
    src = tmp_path / "in"
    write_png(src / "a" / "x.png", np.zeros((8, 8)))
    write_png(src / "locked" / "y.png", np.zeros((8, 8)))
    write_png(src / "z" / "w.png", np.zeros((8, 8)))
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    seen = []
    assert [p.name for p in iter_inputs(src, on_error=lambda p, why: seen.append((p.name, why)))] == ["x.png", "w.png"]
    assert seen == [("locked", "cannot list folder (Permission denied)")]
    assert main(cli(src, tmp_path / "out", "--key", key_file)) == 1
    log = capsys.readouterr()
    assert "done 2, skipped 0, failed 1 (of 3 files)" in log.out and "locked" in log.err
    assert "Traceback" not in log.err
    bad = [r for r in read_batch_manifest(tmp_path / "out" / "manifest.jsonl") if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["error"] == f"<item {bad[0]['item']}>: cannot list folder (Permission denied)"


# ---------------------------------------------------------------------------------- 7. labels


def test_labels_duplicates_and_split_leaks_name_the_rows(tmp_path):
    recs = [Record("a.png", "LCA", "p1", "train"), Record("b.png", "RCA", "p2", "test"),
            Record("a.png", "LCA", "p1", "train")]
    write_manifest(tmp_path, recs)
    with pytest.raises(MedcloakError, match=r"a\.png' on lines 2, 4"):
        read_manifest(tmp_path)
    with pytest.warns(UserWarning, match="listed more than once"):
        assert len(read_manifest(tmp_path, allow_duplicates=True).records) == 3
    write_manifest(tmp_path, [Record("a.png", "LCA", "p1", "train"), Record("b.png", "RCA", "p1", "test")])
    with pytest.raises(MedcloakError, match="patient 'p1': test on lines 3; train on lines 2"):
        read_manifest(tmp_path)
    with pytest.warns(UserWarning, match="more than one split"):
        read_manifest(tmp_path, allow_split_leak=True)
    # frames of one cine are distinct images
    write_manifest(tmp_path, [Record("c.npy", "LCA", "p1", "train", {"frame": "0"}),
                              Record("c.npy", "LCA", "p1", "train", {"frame": "1"})])
    assert len(read_manifest(tmp_path).records) == 2
