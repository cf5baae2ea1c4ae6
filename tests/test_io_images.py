"""PNG/JPEG/TIFF/NPY/NPZ readers and writers, format sniffing, folder walking, array loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medcloak.errors import MedcloakError
from medcloak.io import is_supported, iter_inputs, load_frames, load_split, read_frames, write_npy, write_png
from medcloak.io.dataset import Record, read_manifest, write_manifest
from medcloak.io.images import rgb_to_luminance, to_unit_float


@pytest.fixture
def img() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.random((12, 17)).astype(np.float32)
    x[0, 0], x[0, 1] = 0.0, 1.0
    return x


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("bits", [8, 16])
def test_png_round_trip_and_determinism(tmp_path, img, bits):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_png(a, img, bits=bits)
    write_png(b, img, bits=bits)
    assert a.read_bytes() == b.read_bytes()
    (fr,) = read_frames(a)
    assert fr.pixels.dtype == np.float32 and fr.pixels.shape == img.shape
    assert np.abs(fr.pixels - img).max() <= 0.5 / (2**bits - 1) + 1e-7
    assert fr.meta.bit_depth == bits and fr.meta.modality == "OT" and fr.meta.n_frames == 1


def test_npy_round_trip_and_determinism(tmp_path, img):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    write_npy(a, img.astype(np.float64))
    write_npy(b, img)
    assert a.read_bytes() == b.read_bytes()
    np.testing.assert_array_equal(read_frames(a)[0].pixels, img)
    assert np.load(a).dtype == np.float32


def test_npy_stack_gives_frames(tmp_path, img):
    write_npy(tmp_path / "s.npy", np.stack([img, 1 - img, img / 2]))
    frames = read_frames(tmp_path / "s.npy")
    assert [f.meta.frame_index for f in frames] == [0, 1, 2]
    np.testing.assert_allclose(frames[1].pixels, 1 - img, atol=1e-7)


def test_integer_and_out_of_range_float_scaling(tmp_path):
    u16 = np.array([[0, 65535], [4095, 32768]], dtype=np.uint16)
    np.testing.assert_allclose(to_unit_float(u16), u16 / 65535.0, rtol=1e-6)
    i16 = np.array([[-32768, 32767]], dtype=np.int16)
    np.testing.assert_allclose(to_unit_float(i16), [[0.0, 1.0]])
    f = np.array([[-1.0, 0.0], [1.0, 3.0]])
    np.testing.assert_allclose(to_unit_float(f), [[0.0, 0.25], [0.5, 1.0]])  # min-max when outside [0, 1]
    inside = np.array([[0.2, 0.3]])
    np.testing.assert_allclose(to_unit_float(inside), inside)  # taken as is
    np.save(tmp_path / "u8.npy", np.array([[0, 51, 255]], dtype=np.uint8))
    np.testing.assert_allclose(read_frames(tmp_path / "u8.npy")[0].pixels, [[0, 0.2, 1]], atol=1e-7)
    np.save(tmp_path / "nan.npy", np.array([[np.nan, 0.0]]))
    with pytest.raises(MedcloakError, match="nan.npy"):
        read_frames(tmp_path / "nan.npy")


def test_npz_first_array(tmp_path, img):
    np.savez(tmp_path / "a.npz", first=img, second=np.zeros(3))
    np.testing.assert_array_equal(read_frames(tmp_path / "a.npz")[0].pixels, img)


def test_rgb_png_becomes_bt601_luminance(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[1, :] = (10, 200, 30)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    px = read_frames(tmp_path / "c.png")[0].pixels
    np.testing.assert_allclose(px[0], [0.299, 0.587, 0.114], atol=1e-6)
    np.testing.assert_allclose(px[1, 0], (0.299 * 10 + 0.587 * 200 + 0.114 * 30) / 255, atol=1e-6)
    np.testing.assert_allclose(rgb_to_luminance(rgb), px, atol=1e-6)


def test_jpeg_grey(tmp_path, img):
    Image.fromarray((img * 255).round().astype(np.uint8)).save(tmp_path / "g.jpg", quality=100)
    (fr,) = read_frames(tmp_path / "g.jpg")
    assert fr.pixels.shape == img.shape and np.abs(fr.pixels - img).mean() < 0.02


@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535)])
def test_tiff_multipage(tmp_path, dtype, top):
    data = np.arange(2 * 5 * 7, dtype=np.int64).reshape(2, 5, 7) % (top + 1)
    data = data.astype(dtype)
    tifffile.imwrite(tmp_path / "s.tif", data)
    frames = read_frames(tmp_path / "s.tif")
    assert len(frames) == 2 and frames[0].meta.bit_depth == np.dtype(dtype).itemsize * 8
    np.testing.assert_allclose(frames[1].pixels, data[1] / top, atol=1e-6)


def test_tiff_rgb_and_float(tmp_path, img):
    tifffile.imwrite(tmp_path / "f.tiff", img)
    np.testing.assert_array_equal(read_frames(tmp_path / "f.tiff")[0].pixels, img)
    rgb = np.full((6, 6, 3), (255, 0, 0), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_allclose(read_frames(tmp_path / "rgb.tif")[0].pixels, 0.299, atol=1e-6)


# ----------------------------------------------------------------------------------- failures
def _bad_files(tmp_path: Path, img) -> dict[str, Path]:
    write_png(tmp_path / "good.png", img)
    data = (tmp_path / "good.png").read_bytes()
    files = {
        "truncated png": (tmp_path / "trunc.png", data[: len(data) // 2]),
        "png header only": (tmp_path / "head.png", data[:20]),
        "empty": (tmp_path / "empty.png", b""),
        "text as png": (tmp_path / "text.png", b"this is not an image\n"),
        "text as npy": (tmp_path / "text.npy", b"hello"),
        "bad npy": (tmp_path / "bad.npy", b"\x93NUMPY\x01\x00garbage"),
        "bad zip": (tmp_path / "bad.npz", b"PK\x03\x04garbage"),
        "bad tiff": (tmp_path / "bad.tif", b"II*\x00" + b"\xff" * 40),
        "text as jpeg": (tmp_path / "x.jpg", b"\xff\xd8\xff" + b"nonsense"),
        "unknown": (tmp_path / "notes.txt", b"text"),
    }
    for path, content in files.values():
        path.write_bytes(content)
    return {k: v[0] for k, v in files.items()}


def test_bad_files_raise_one_medcloak_error_naming_the_file(tmp_path, img):
    for what, path in _bad_files(tmp_path, img).items():
        with pytest.raises(MedcloakError) as info:
            read_frames(path)
        msg = str(info.value)
        assert path.name in msg and "\n" not in msg, what
    with pytest.raises(MedcloakError, match="empty"):
        read_frames(tmp_path / "empty.png")
    with pytest.raises(MedcloakError, match="missing.png"):
        read_frames(tmp_path / "missing.png")
    with pytest.raises(MedcloakError):
        read_frames(tmp_path)


def test_reading_does_not_modify_input(tmp_path, img):
    write_png(tmp_path / "a.png", img, bits=16)
    write_npy(tmp_path / "a.npy", img)
    for p in (tmp_path / "a.png", tmp_path / "a.npy"):
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
        before = (p.read_bytes(), p.stat().st_mtime_ns)
        read_frames(p)
        assert (p.read_bytes(), p.stat().st_mtime_ns) == before


# ------------------------------------------------------------------------------- walking
def test_iter_inputs_sorted_and_skipping(tmp_path, img):
    for rel in ["b/2.png", "b/1.png", "a.npy", "c/d/e.tif", ".hidden/x.png", "b/.y.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".npy"):
            write_npy(p, img)
        elif rel.endswith(".tif"):
            tifffile.imwrite(p, (img * 255).astype(np.uint8))
        else:
            write_png(p, img)
    (tmp_path / "labels.csv").write_text("path,label,patient_id,split\n")
    (tmp_path / "log.jsonl").write_text("{}\n")
    (tmp_path / "README.txt").write_text("hi")
    got = [p.relative_to(tmp_path).as_posix() for p in iter_inputs(tmp_path)]
    assert got == ["a.npy", "b/1.png", "b/2.png", "c/d/e.tif"]
    assert got == [p.relative_to(tmp_path).as_posix() for p in iter_inputs(tmp_path)]
    assert is_supported(tmp_path / "a.npy") and not is_supported(tmp_path / "README.txt")
    assert not is_supported(tmp_path / "labels.csv")
    with pytest.raises(MedcloakError):
        list(iter_inputs(tmp_path / "nope"))


# ------------------------------------------------------------------------------- arrays
def test_load_frames_resize_and_size_mismatch(tmp_path, img):
    write_png(tmp_path / "a.png", img, bits=16)
    write_npy(tmp_path / "b.npy", np.stack([img, img]))
    write_png(tmp_path / "c.png", np.ones((5, 5)))
    arr = load_frames([tmp_path / "a.png", tmp_path / "b.npy"])
    assert arr.shape == (3, 12, 17) and arr.dtype == np.float32
    small = load_frames([tmp_path / "a.png", tmp_path / "c.png"], size=(6, 8))
    assert small.shape == (2, 6, 8) and small.min() >= 0 and small.max() <= 1
    assert abs(small[0].mean() - img.mean()) < 0.05
    np.testing.assert_allclose(small[1], 1.0, atol=1e-6)
    with pytest.raises(MedcloakError, match="c.png"):
        load_frames([tmp_path / "a.png", tmp_path / "c.png"])


def test_load_split_with_mask_and_frame_columns(tmp_path, img):
    mask = np.zeros((12, 17), dtype=bool)
    mask[3:9, 4:12] = True
    write_png(tmp_path / "i0.png", img)
    write_png(tmp_path / "m0.png", mask.astype(np.float32))
    write_npy(tmp_path / "cine.npy", np.stack([img, 1 - img]))
    write_png(tmp_path / "m1.png", ~mask)
    write_png(tmp_path / "i2.png", img)  # not i0.png again: an image listed twice is an error
    recs = [
        Record("i0.png", "LCA", "p0", "train", {"mask": "m0.png", "frame": ""}),
        Record("cine.npy", "RCA", "p1", "train", {"mask": "m1.png", "frame": "1"}),
        Record("i2.png", "LCA", "p2", "test", {"mask": "m0.png", "frame": ""}),
    ]
    write_manifest(tmp_path, recs)
    man = read_manifest(tmp_path)
    x = load_split(man, "train")
    assert x.shape == (2, 12, 17)
    np.testing.assert_allclose(x[1], 1 - img, atol=1e-6)
    m = load_split(man, "train", column="mask", size=(24, 34))
    assert m.dtype == bool and m.shape == (2, 24, 34)
    assert m[0, 6:18, 8:24].all() and not m[0, :4].any() and not m[1, 8:16, 10:22].any()
    assert load_split(man, "val").shape[0] == 0
    with pytest.raises(MedcloakError, match="labels.csv"):
        load_split(man, "train", column="clean")
    write_manifest(tmp_path, [Record("cine.npy", "RCA", "p1", "train")])
    with pytest.raises(MedcloakError, match="frame"):
        load_split(read_manifest(tmp_path), "train")
