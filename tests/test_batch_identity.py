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


def test_map_only_outputs_are_the_files_of_the_float_path_and_frozen_pixels(tmp_path):
    src = _inputs(tmp_path / "in")
    summary = obfuscate_tree(src, tmp_path / "out", key=KEY, keep_names=True, progress=False)
    assert summary.ok and summary.done == 4
    files = _outputs(tmp_path / "out")
    obf = Obfuscator(KEY, config=ObfuscationConfig(order="map-only"))
    for name, outs in files.items():
        expect = [_reference_png(f) for f in obf.obfuscate(_read_float(src / name))]
        assert outs == expect, name
        pixels = hashlib.sha256(b"".join(np.asarray(Image.open(io.BytesIO(b))).tobytes() for b in outs)).hexdigest()
        assert pixels == FROZEN_PIXELS[name], name


def test_vae_outputs_are_the_files_of_the_float_path(tmp_path):
    """(1 and 2 workers give the same files: tests/test_bench_smoke.py.)"""
    rng = np.random.default_rng(3)
    obf = Obfuscator(KEY, config=ObfuscationConfig(vae=VAEConfig(base_channels=4, latent_channels=2, epochs=1)))
    obf.fit(rng.random((4, 16, 16), dtype=np.float32), progress=False)
    obf.save(tmp_path / "model")
    src = _inputs(tmp_path / "in")
    summary = obfuscate_tree(src, tmp_path / "out", key=KEY, model_dir=tmp_path / "model", keep_names=True,
                             progress=False)
    assert summary.ok and summary.done == 4
    files = _outputs(tmp_path / "out")
    for name, outs in files.items():
        x = _read_float(src / name)
        resized = np.stack([np.clip(sk_resize(f, (16, 16), order=1, mode="reflect",
                                              anti_aliasing=bool(f.shape[0] > 16 or f.shape[1] > 16),
                                              preserve_range=True), 0, 1).astype(np.float32) for f in x])
        expect = [_reference_png(f) for f in obf.obfuscate(resized)]
        assert outs == expect, name


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
