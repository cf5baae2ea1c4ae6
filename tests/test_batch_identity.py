"""`medcloak obfuscate` keeps its promise of byte-identical outputs for the same key and model.

The batch runner writes PNGs through a fast path (integer look-ups, no float32 output, hashes of
the bytes in memory, a faster call of the same resizer). These tests hold it to the files the
straightforward path writes -- read, resize with skimage, ``Obfuscator.obfuscate`` to float32,
``to_uint``, Pillow's PNG with its defaults -- and, for the keyed map, to frozen SHA-256s of the
decoded output pixels computed with the code before the fast path existed (commit b5bee8f).
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage.transform import resize as sk_resize

from medcloak.keys import Key
from medcloak.obfuscation.batch import obfuscate_tree
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.vae import VAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEY = Key(bytes(range(32)))

# SHA-256 of the decoded pixels (numpy bytes) of each map-only output, written by the code before
# the fast path (b5bee8f) from the inputs of `_inputs`: the keyed map must not move one pixel.
FROZEN_PIXELS = {
    "g8.png": "ee5da1088cf5a779f86b14f7fdb5989c904d048f028a39ed53b3f37db2a6e303",
    "g16.png": "9bbfd777bd45c46c94536644d2f772179596fe1bd769a20b78114e983ba8aea8",
    "rgb.png": "17588608f0e990064800dd456b4ded41757781c41823dbfa8c6d7e452849a380",
    "cine.npy": "5ce83f6b0d2b398caa346ba42a5292dd4298de8bb5c49509d7866c8117ddef77",
}


def _inputs(folder):
    rng = np.random.default_rng(7)
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 36), dtype=np.uint8)).save(folder / "g8.png")
    Image.fromarray(rng.integers(0, 65536, (24, 32), dtype=np.uint16)).save(folder / "g16.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / "rgb.png")
    np.save(folder / "cine.npy", rng.random((2, 16, 16), dtype=np.float32))
    return folder


def _reference_png(img: np.ndarray) -> bytes:
    """8-bit PNG of a float image in [0, 1], the way medcloak wrote them before the fast path."""
    codes = np.rint(np.clip(np.asarray(img, np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(codes).save(buf, format="PNG")
    return buf.getvalue()


def _outputs(out):
    """{input name: [output file bytes, ...]} from a --keep-names run, and the manifest's hashes."""
    recs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    files = {r["input"]: [(out / o).read_bytes() for o in r["outputs"]] for r in recs}
    for r in recs:
        assert r["status"] == "ok"
        assert [hashlib.sha256(b).hexdigest() for b in files[r["input"]]] == r["output_sha256"]
    return files


def _read_float(path) -> np.ndarray:
    from medcloak.io.load import read_frames

    return np.stack([f.pixels for f in read_frames(path)])


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.mark.parametrize("encoding", ["compat", "fast"])
def test_map_only_outputs_are_the_files_of_the_float_path_and_frozen_pixels(tmp_path, encoding):
    """``compat``: the very bytes of the float path; ``fast`` (the default): other bytes (zlib level 1),
    the same pixels; both hold the frozen pixel hashes."""
    src = _inputs(tmp_path / "in")
    summary = obfuscate_tree(src, tmp_path / "out", key=KEY, keep_names=True, progress=False,
                             png_encoding=None if encoding == "fast" else encoding)
    assert summary.ok and summary.done == 4 and summary.png_encoding == encoding
    files = _outputs(tmp_path / "out")
    assert {json.loads(line)["png"] for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()} \
        == {encoding}
    obf = Obfuscator(KEY, config=ObfuscationConfig(order="map-only"))
    for name, outs in files.items():
        expect = [_reference_png(f) for f in obf.obfuscate(_read_float(src / name))]
        if encoding == "compat":
            assert outs == expect, name
        else:
            assert outs != expect and all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(outs, expect)), name
        pixels = hashlib.sha256(b"".join(_pixels(b).tobytes() for b in outs)).hexdigest()
        assert pixels == FROZEN_PIXELS[name], name


def test_vae_outputs_are_the_files_of_the_float_path(tmp_path):
    """(1 and 2 workers give the same files: tests/test_bench_smoke.py.)"""
    rng = np.random.default_rng(3)
    obf = Obfuscator(KEY, config=ObfuscationConfig(vae=VAEConfig(base_channels=4, latent_channels=2, epochs=1)))
    obf.fit(rng.random((4, 16, 16), dtype=np.float32), progress=False)
    obf.save(tmp_path / "model")
    src = _inputs(tmp_path / "in")
    runs = {}
    for enc in ("compat", "fast"):
        summary = obfuscate_tree(src, tmp_path / enc, key=KEY, model_dir=tmp_path / "model", keep_names=True,
                                 progress=False, png_encoding=enc)
        assert summary.ok and summary.done == 4
        runs[enc] = _outputs(tmp_path / enc)
    for name, outs in runs["compat"].items():
        x = _read_float(src / name)
        resized = np.stack([np.clip(sk_resize(f, (16, 16), order=1, mode="reflect",
                                              anti_aliasing=bool(f.shape[0] > 16 or f.shape[1] > 16),
                                              preserve_range=True), 0, 1).astype(np.float32) for f in x])
        expect = [_reference_png(f) for f in obf.obfuscate(resized)]
        assert outs == expect, name
        assert [_pixels(b).tobytes() for b in runs["fast"][name]] == [_pixels(b).tobytes() for b in expect], name


def test_fast_png_stores_8_bit_content_of_16_bit_outputs_in_8_bits_and_reads_back_the_same_floats(tmp_path):
    """Block-wise scrambling of 8-bit frames declares 16 bits but only holds 8-bit values: ``fast``
    stores them with 8 bits (k/255 == 257k/65535, so medcloak reads the very same float32 frames);
    blur's real values keep 16 bits."""
    from medcloak.io.images import png_bytes

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(src / f"f{i}.png")
    for scheme, reduced in (("blockwise", True), ("blur", False)):
        got = {}
        for enc in ("compat", "fast"):
            out = tmp_path / f"{scheme}-{enc}"
            assert obfuscate_tree(src, out, key=KEY, scheme=scheme, keep_names=True, progress=False,
                                  png_encoding=enc).ok
            got[enc] = {p.name: p for p in out.glob("*.png")}
        assert len(got["fast"]) == 2
        for name, fast in got["fast"].items():
            assert Image.open(got["compat"][name]).mode == "I;16"
            assert Image.open(fast).mode == ("L" if reduced else "I;16"), scheme
            assert _read_float(fast).tobytes() == _read_float(got["compat"][name]).tobytes(), scheme
    codes = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    assert _pixels(png_bytes(codes, bits=16, encoding="fast")).dtype == np.uint8
    codes[0, 0] += 1  # one code that is not k * 257: 16 bits kept
    assert np.array_equal(_pixels(png_bytes(codes, bits=16, encoding="fast")), codes)


def test_a_folder_keeps_its_png_encoding(tmp_path, capsys):
    """A resumed folder written with ``compat`` (or by medcloak before the setting existed: records
    without "png") continues with ``compat``; asking for the other encoding is refused."""
    from medcloak.errors import MedcloakError

    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert obfuscate_tree(src, out, key=KEY, keep_names=True, progress=False, png_encoding="compat").ok
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    (out / "manifest.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "png"}) + "\n"
                                                for r in lines))  # as written before the setting
    (src / "new.png").write_bytes((src / "g8.png").read_bytes())
    s = obfuscate_tree(src, out, key=KEY, keep_names=True, progress=False)
    assert s.ok and s.skipped == 4 and s.done == 1 and s.png_encoding == "compat"
    assert json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])["png"] == "compat"
    assert (out / "new.png").read_bytes() == (out / "g8.png").read_bytes()  # compat bytes, same input
    with pytest.raises(MedcloakError, match="PNG encoding"):
        obfuscate_tree(src, out, key=KEY, keep_names=True, progress=False, png_encoding="fast")
    with pytest.raises(MedcloakError, match="PNG encoding must be one of"):
        obfuscate_tree(src, tmp_path / "o2", key=KEY, keep_names=True, progress=False, png_encoding="zip")


def test_blas_schemes_write_the_same_bytes_with_one_or_two_workers(tmp_path):
    """Workers pin numpy's BLAS to one thread (two workers with two BLAS threads each ran at 0.6x of
    one worker); the outputs must not depend on that: 1 worker (in-process, caller's BLAS threads
    restored after) and 2 workers write the same files."""
    from threadpoolctl import threadpool_info

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(src / f"f{i}.png")
    before = [i["num_threads"] for i in threadpool_info()]
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        s = obfuscate_tree(src, out, key=KEY, scheme="svd", fmt="npy", workers=workers, keep_names=True,
                           progress=False)
        assert s.failed == 0
        runs[workers] = _outputs(out)
    assert runs[1] == runs[2] and len(runs[1]) == 4
    assert [i["num_threads"] for i in threadpool_info()] == before


@pytest.mark.parametrize("workers", [1, 2])
def test_npy_outputs_go_through_the_background_writer_with_the_bytes_of_np_save(tmp_path, workers):
    """``--format npy`` hands ``np.save``'s bytes to the same background writer as the PNGs (it used
    to fsync each file in the compute thread and read it back for its SHA-256): the files are
    ``np.save`` of the scheme's float32 output, and the manifest's hashes are the files' own."""
    from medcloak.obfuscation.scheme import make_scheme

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 16), dtype=np.uint8)).save(src / f"f{i}.png")
    s = obfuscate_tree(src, tmp_path / "out", key=KEY, scheme="randenc", fmt="npy", workers=workers,
                       keep_names=True, progress=False)
    assert s.ok and s.done == 3
    files = _outputs(tmp_path / "out")  # also checks the manifest's SHA-256s against the files
    scheme = make_scheme("randenc").fit(None, KEY)
    for name, outs in files.items():
        expect = []
        for frame in scheme.apply(_read_float(src / name)):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(frame, dtype=np.float32), allow_pickle=False)
            expect.append(buf.getvalue())
        assert outs == expect, name
    assert not list((tmp_path / "out").glob(".*.tmp"))
