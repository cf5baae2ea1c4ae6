"""medcloak obfuscate: pseudonymous (or kept) outputs, manifest, resume after kill -9, refusals, bad files, no secrets."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medcloak.cli import main
from medcloak.errors import MedcloakError
from medcloak.io.deid import UIDMapper
from medcloak.io.dicom import write_dicom
from medcloak.io.images import write_npy, write_png
from medcloak.io.load import read_frames
from medcloak.keys import Key
from medcloak.obfuscation.batch import obfuscate_tree, read_batch_manifest
from medcloak.obfuscation.naming import item_id, pseudonym_name
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.vae import VAEConfig

SECRET1, SECRET2 = b"\x31" * 32, b"\x32" * 32


def make_key(tmp_path, secret, name):
    path = tmp_path / name
    Key(secret).save(path)
    return path


def make_inputs(root: Path, n_png: int = 6, size: int = 24) -> None:
    rng = np.random.default_rng(0)
    for i in range(n_png):
        write_png(root / ("a" if i % 2 else "b/deep") / f"img{i:03d}.png", rng.random((size, size)))
    write_npy(root / "b" / "cine.npy", rng.random((3, 24, 24)).astype(np.float32))
    write_png(root / "a" / "same.png", rng.random((24, 24)))
    write_npy(root / "a" / "same.npy", rng.random((24, 24)).astype(np.float32))
    (root / "b" / "bad.png").write_text("this is not an image")
    write_dicom(root / "c" / "scan.dcm", rng.random((2, 24, 24)), uid_mapper=UIDMapper(b"s" * 16), modality="XA")


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def outputs(root: Path) -> dict:
    return {k: v[0] for k, v in snapshot(root).items() if k != "manifest.jsonl"}


def assert_no_secret(secret: bytes, blobs):
    forms = [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
             base64.urlsafe_b64encode(secret).rstrip(b"=")]
    for blob in blobs:
        for form in forms:
            assert form not in blob


def test_map_only_run_manifest_bad_file_and_resume(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    make_inputs(src)
    key = make_key(tmp_path, SECRET1, "k.key")
    before = snapshot(src)

    rc = main(["obfuscate", str(src), str(out), "--key", str(key), "--no-progress"])
    log = capsys.readouterr()
    assert rc == 1  # one bad file -> non-zero
    assert "no VAE model: mapping only" in log.out and "no VAE model: mapping only" in log.err
    assert "done 10, skipped 0, failed 1 (of 11 files)" in log.out
    assert "bad.png" in log.err
    assert snapshot(src) == before  # inputs untouched: bytes and mtimes

    k = Key(SECRET1)
    files = set(outputs(out))
    expect = {pseudonym_name(k, rel, i, "png"): (rel, i) for rel, n in
              [("a/img001.png", 1), ("a/img003.png", 1), ("a/img005.png", 1), ("b/deep/img000.png", 1),
               ("b/deep/img002.png", 1), ("b/deep/img004.png", 1), ("b/cine.npy", 3), ("a/same.png", 1),
               ("a/same.npy", 1), ("c/scan.dcm", 2)] for i in range(n)}
    assert files == set(expect)  # one pseudonymous output per frame, nothing else in OUT but the manifest
    assert all(len(f.split("/")) == 2 and f.split("/")[0] == f.split("/")[1][:2] for f in files)
    for blob_name in files:  # nothing of the input names in the cloud-side names
        assert not any(w in blob_name for w in ("img", "cine", "same", "scan", "deep"))
    recs = read_batch_manifest(out / "manifest.jsonl")
    assert len(recs) == 11
    bad = [r for r in recs if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["item"] == item_id(k, "b/bad.png")
    assert "bad" not in bad[0]["error"] and str(src) not in bad[0]["error"] and "<item " in bad[0]["error"]
    for r in recs:
        assert r["key_fingerprint"] == k.fingerprint and r["format"] == "png" and r["medcloak_version"]
        assert set(r) >= {"item", "outputs", "output_sha256", "model_fingerprint", "status", "error"}
        assert "input" not in r and "input_sha256" not in r and r["naming"] == "pseudonym"
    ok = next(r for r in recs if r["item"] == item_id(k, "b/cine.npy"))
    assert ok["frames"] == 3 and len(ok["outputs"]) == 3 == len(ok["output_sha256"])
    # the hospital-side map lives beside OUT, not in it, and maps every output back
    names = read_batch_manifest(tmp_path / "out.names.jsonl")
    assert not list(out.rglob("*.names.jsonl")) and (tmp_path / "out.names.jsonl").stat().st_mode & 0o077 == 0
    back = {o["output"]: (n["input"], o["frame"]) for n in names for o in n["outputs"]}
    assert back == expect
    nbad = next(n for n in names if n["input"] == "b/bad.png")
    assert nbad["status"] == "error" and "bad.png" in nbad["error"]
    img = read_frames(out / pseudonym_name(k, "a/img001.png", 0, "png"))[0].pixels
    assert img.shape == (24, 24) and np.unique(img).size > 50  # native size, many levels

    first = outputs(out)
    rc = main(["obfuscate", str(src), str(out), "--key", str(key), "--no-progress"])
    log2 = capsys.readouterr()
    assert rc == 1 and "done 0, skipped 10, failed 1" in log2.out
    assert outputs(out) == first
    assert snapshot(src) == before
    blobs = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    assert_no_secret(SECRET1, blobs + [(log.out + log.err + log2.out + log2.err).encode()])


def test_refuses_other_key_model_and_unsafe_folders(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    make_inputs(src, n_png=2)
    k1, k2 = make_key(tmp_path, SECRET1, "k1.key"), make_key(tmp_path, SECRET2, "k2.key")
    assert main(["obfuscate", str(src), str(out), "--key", str(k1), "--no-progress"]) == 1
    before = outputs(out)
    assert main(["obfuscate", str(src), str(out), "--key", str(k2), "--no-progress"]) == 2
    assert "another key" in capsys.readouterr().err
    # the same key with a VAE model is another model
    model = Obfuscator(Key(SECRET1), config=ObfuscationConfig(order="map-only", levels=32)).save(tmp_path / "m")
    with pytest.raises(MedcloakError, match="another model"):
        obfuscate_tree(src, out, key=Key(SECRET1), model_dir=model, progress=False)
    with pytest.raises(MedcloakError, match="another format"):
        obfuscate_tree(src, out, key=Key(SECRET1), fmt="npy", progress=False)
    # a model of another key is refused before any work
    with pytest.raises(MedcloakError, match="model was fitted under key"):
        obfuscate_tree(src, tmp_path / "new", key=Key(SECRET2), model_dir=model, progress=False)
    assert outputs(out) == before and not (tmp_path / "new").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(MedcloakError, match="not empty"):
        obfuscate_tree(src, tmp_path / "other", key=Key(SECRET1), progress=False)
    with pytest.raises(MedcloakError, match="inside the output"):
        obfuscate_tree(src, tmp_path, key=Key(SECRET1), progress=False)
    with pytest.raises(MedcloakError, match="inside the input"):
        obfuscate_tree(src, src / "out", key=Key(SECRET1), progress=False)


def _cli(*args):
    return [sys.executable, "-m", "medcloak.cli", *map(str, args)]


def test_kill_9_then_resume_is_byte_identical(tmp_path):
    src = tmp_path / "in"
    make_inputs(src, n_png=300, size=64)  # enough work that the kill lands mid-run
    key = make_key(tmp_path, SECRET1, "k.key")
    ref, out = tmp_path / "ref", tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # uninterrupted reference (in this process)
    full = obfuscate_tree(src, ref, key=Key(SECRET1), progress=False)
    assert (full.done, full.failed, full.total) == (304, 1, 305)

    # a serial run killed with SIGKILL once some outputs exist
    proc = subprocess.Popen(_cli("obfuscate", src, out, "--key", key, "--no-progress"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_before = manifest.read_bytes().count(b"\n")
    assert 5 <= n_before < 305, "the run was not interrupted mid-batch"
    assert len(outputs(out)) < len(outputs(ref))

    # resume with 2 worker processes: same bytes whatever the number of workers
    resumed = subprocess.run(_cli("obfuscate", src, out, "--key", key, "--workers", 2, "--batch-size", 4,
                                  "--no-progress"),
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 1, resumed.stderr
    assert f"skipped {n_before - 1}" in resumed.stdout or f"skipped {n_before}" in resumed.stdout
    assert outputs(out) == outputs(ref)  # same names, byte-identical, no temporary files left
    latest = {r["item"]: r for r in read_batch_manifest(manifest)}
    assert len(latest) == 305 and sum(r["status"] == "ok" for r in latest.values()) == 304


def test_vae_model_dicom_output(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_inputs(src, n_png=2)
    key = Key(SECRET1)
    rng = np.random.default_rng(2)
    obf = Obfuscator(key, config=ObfuscationConfig(image_size=16, vae=VAEConfig(
        base_channels=4, latent_channels=2, downsamples=1, residual_units=0, epochs=1, batch_size=8)))
    obf.fit(rng.random((8, 16, 16)).astype(np.float32), progress=False)
    model = obf.save(tmp_path / "model")
    s = obfuscate_tree(src, out, key=key, model_dir=model, fmt="dicom", progress=False)
    assert (s.done, s.failed, s.skipped, s.total) == (6, 1, 0, 7) and not s.ok and not s.map_only
    assert s.model_fingerprint == obf.model_fingerprint
    cine = read_frames(out / pseudonym_name(key, "b/cine.npy", 0, "dicom"))
    assert len(cine) == 3 and cine[0].pixels.shape == (16, 16)  # one multi-frame file, resized
    scan = read_frames(out / pseudonym_name(key, "c/scan.dcm", 0, "dicom"))
    assert len(scan) == 2 and scan[0].meta.modality == "XA"
    import pydicom

    ds = pydicom.dcmread(out / pseudonym_name(key, "c/scan.dcm", 0, "dicom"))
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientName == ""
    # the pixels are exactly the obfuscator's output of the resized frames
    from medcloak.io.arrays import resize

    x = np.stack([resize(f.pixels, 16) for f in read_frames(src / "c" / "scan.dcm")])
    assert np.allclose(np.stack([f.pixels for f in scan]), obf.obfuscate(x), atol=1 / 65535)
    assert_no_secret(SECRET1, [p.read_bytes() for p in out.rglob("*") if p.is_file()])
    again = obfuscate_tree(src, out, key=key, model_dir=model, fmt="dicom", progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 6, 1)


def test_truncated_manifest_line_is_repaired(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_inputs(src, n_png=2)
    key = Key(SECRET1)
    obfuscate_tree(src, out, key=key, fmt="npy", progress=False)
    m = out / "manifest.jsonl"
    lines = m.read_bytes().splitlines(keepends=True)
    m.write_bytes(b"".join(lines[:3]) + lines[3][:20])  # as if killed while appending line 4
    tmp_dir = (out / pseudonym_name(key, "a/img001.png", 0, "npy")).parent
    (tmp_dir / ".x.npy.abc.tmp").write_bytes(b"partial")  # a leftover atomic temp file
    s = obfuscate_tree(src, out, key=key, fmt="npy", progress=False)
    assert s.skipped == 3 and s.done == 6 - 3 and s.failed == 1
    assert not (tmp_dir / ".x.npy.abc.tmp").exists()
    for line in m.read_bytes().splitlines():
        json.loads(line)
    y = np.load(out / pseudonym_name(key, "b/cine.npy", 1, "npy"))
    assert y.dtype == np.float32 and y.shape == (24, 24)


def test_keep_names_mirrors_the_inputs_with_a_warning(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    make_inputs(src, n_png=2)
    key = make_key(tmp_path, SECRET1, "k.key")
    assert main(["obfuscate", str(src), str(out), "--key", str(key), "--no-progress", "--keep-names"]) == 1
    log = capsys.readouterr()
    assert "--keep-names" in log.err and "reach the cloud" in log.err
    files = set(outputs(out))
    assert files == {"a/img001.png", "b/deep/img000.png", "b/cine_f0000.png", "b/cine_f0001.png",
                     "b/cine_f0002.png", "a/same_png.png", "a/same_npy.png", "c/scan_f0000.png", "c/scan_f0001.png"}
    recs = read_batch_manifest(out / "manifest.jsonl")
    assert {r["input"] for r in recs} >= {"a/img001.png", "b/bad.png"} and all(r["naming"] == "kept" for r in recs)
    assert not (tmp_path / "out.names.jsonl").exists()
    # the naming of an output folder cannot change on resume
    assert main(["obfuscate", str(src), str(out), "--key", str(key), "--no-progress"]) == 2
    assert "another naming" in capsys.readouterr().err
    assert main(["obfuscate", str(src), str(out), "--key", str(key), "--no-progress", "--keep-names"]) == 1
    assert "done 0, skipped 6, failed 1 (of 7 files)" in capsys.readouterr().out


def test_task_size_shrinks_only_towards_the_end_of_a_parallel_run():
    from medcloak.obfuscation.batch import task_size

    assert all(task_size(r, 8, 1) == 8 for r in range(0, 200))  # one process: always whole tasks
    for workers in (2, 3, 8):
        sizes = [task_size(r, 8, workers) for r in range(1000, 0, -1)]
        assert sizes[0] == 8 and sizes[-1] == 1 and all(1 <= s <= 8 for s in sizes)
        assert all(a >= b for a, b in zip(sizes, sizes[1:]))  # never grows as the run goes on
        handed, left = [], 1000
        while left:
            handed.append(min(left, task_size(left, 8, workers)))
            left -= handed[-1]
        # whole tasks for most of the run; the last ones too small to keep a process busy alone for long
        assert handed[: 1000 // 8 - 4 * workers] == [8] * (1000 // 8 - 4 * workers)
        assert handed[-2 * workers:] == [1] * (2 * workers)
        assert len(handed) < 1000 // 8 + 12 * workers


def test_parallel_tasks_get_smaller_at_the_end_and_outputs_do_not_change(tmp_path, monkeypatch):
    import medcloak.obfuscation.batch as batch
    from medcloak.obfuscation.batch_worker import run_serial

    src = tmp_path / "in"
    rng = np.random.default_rng(3)
    for i in range(80):
        write_png(src / f"f{i:02d}.png", rng.random((12, 12)))
    key = Key(SECRET1)
    obfuscate_tree(src, tmp_path / "one", key=key, workers=1, batch_size=8, progress=False)
    sizes = []

    def in_order(tasks, args, record, workers):  # the tasks a 2-worker run hands out, run here in order
        listed = list(tasks)
        sizes.extend(len(t) for t in listed)
        run_serial(listed, args, record)

    monkeypatch.setattr(batch, "run_parallel", in_order)
    summary = obfuscate_tree(src, tmp_path / "two", key=key, workers=2, batch_size=8, progress=False)
    assert summary.ok and sum(sizes) == 80
    assert sizes[0] == 8 and sizes[-1] == 1 and sizes == sorted(sizes, reverse=True)
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")
