"""``medcloak obfuscate --engine ray`` (issue 16): on a local Ray cluster started here, the Ray engine
writes the local engine's bytes, resumes after a failing worker with every frame once, reports a
corrupt input as the local engine does, and never ships the key; CPU pinning reaches torch."""

import base64
import json
import os
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medcloak.errors import MedcloakError
from medcloak.io.images import write_png
from medcloak.keys import Key
from medcloak.obfuscation.batch import obfuscate_tree, read_batch_manifest
from medcloak.obfuscation.cpu_pin import check_pinned, pin_environment
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.vae import VAEConfig

ray = pytest.importorskip("ray", reason="the 'scale' extra (ray[data]) is not installed")
from medcloak.obfuscation.ray_engine import ObfuscateActor, obfuscate_tree_ray  # noqa: E402

SECRET = bytes(range(7, 39))
N_FRAMES = 64
SIZE = 32
ISA = "avx2"


def secret_forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.urlsafe_b64encode(secret).rstrip(b"=")]


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except the manifest (outputs, by relpath)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.jsonl"}


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for the module (2 CPUs, no dashboard), torn down after."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """64 synthetic frames as PNGs + one corrupt file, a key file and a fitted (small) VAE."""
    from medcloak.synth import generate

    root = tmp_path_factory.mktemp("ray")
    src = root / "in"
    frames = generate(N_FRAMES, size=SIZE, seed=3).frames
    for i, f in enumerate(frames):
        write_png(src / f"p{i % 4}" / f"frame{i:03d}.png", f)
    (src / "p0" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    key_file = root / "hospital.key"
    Key(SECRET).save(key_file)
    obf = Obfuscator(Key(SECRET), config=ObfuscationConfig(image_size=SIZE, vae=VAEConfig(
        base_channels=8, latent_channels=4, downsamples=2, residual_units=1, epochs=1, batch_size=16)))
    obf.fit(generate(32, size=SIZE, seed=4).frames.astype(np.float32), progress=False)
    model = obf.save(root / "model")
    return {"root": root, "src": src, "key_file": key_file, "model": model}


@pytest.fixture(scope="module")
def local_ref(setup, tmp_path_factory):
    """The local engine's output (2 spawned workers, pinned to the same instruction set)."""
    out = tmp_path_factory.mktemp("local") / "out"
    saved = dict(os.environ)
    os.environ.update(pin_environment(ISA))  # the spawned workers start with the pin
    try:
        s = obfuscate_tree(setup["src"], out, key=Key.load(setup["key_file"]), model_dir=setup["model"], workers=2,
                           batch_size=4, progress=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert (s.done, s.failed, s.total) == (N_FRAMES, 1, N_FRAMES + 1)
    return out


def test_ray_writes_the_local_bytes_reports_the_corrupt_input_and_never_ships_the_key(
        ray_cluster, setup, local_ref, tmp_path, monkeypatch):
    shipped = []  # everything handed to Ray: the rows, and map_batches' arguments (actor constructor)
    real_from_items, real_map_batches = ray.data.from_items, ray.data.Dataset.map_batches

    def spy_from_items(items, **kw):
        shipped.append(items)
        return real_from_items(items, **kw)

    def spy_map_batches(self, fn, **kw):
        shipped.append((fn, kw))
        return real_map_batches(self, fn, **kw)

    monkeypatch.setattr(ray.data, "from_items", spy_from_items)
    monkeypatch.setattr(ray.data.Dataset, "map_batches", spy_map_batches)
    out = tmp_path / "out"
    s = obfuscate_tree_ray(setup["src"], out, key_file=setup["key_file"], model_dir=setup["model"], workers=2,
                           batch_size=4, cpu_isa=ISA, progress=False)
    assert (s.done, s.failed, s.skipped, s.total) == (N_FRAMES, 1, 0, N_FRAMES + 1)

    # same names, same bytes, frame by frame (SHA-256 of every output equal), nothing else
    ray_files, ref_files = files(out), files(local_ref)
    assert len(ray_files) == N_FRAMES and ray_files == ref_files

    # the corrupt input: reported with its path (hospital), pseudonymous in the manifest, as locally
    assert len(s.errors) == 1 and s.errors[0][0] == "p0/corrupt.png"
    ray_recs, loc_recs = read_batch_manifest(out / "manifest.jsonl"), read_batch_manifest(local_ref / "manifest.jsonl")
    bad = [r for r in ray_recs if r["status"] == "error"]
    assert len(bad) == 1 and "corrupt" not in json.dumps(bad[0])
    strip = {"engine", "cpu"}
    assert sorted(json.dumps({k: v for k, v in r.items() if k not in strip}, sort_keys=True) for r in ray_recs) == \
        sorted(json.dumps(r, sort_keys=True) for r in loc_recs)
    assert all(r["engine"] == "ray" and r["cpu"]["isa_profile"] == ISA and r["cpu"]["aten_cpu_capability"] == "AVX2"
               for r in ray_recs)

    # the key: not in what Ray was given (rows, actor constructor arguments), outputs, manifest, logs
    blob = ray.cloudpickle.dumps(shipped)
    assert str(setup["key_file"]).encode() in blob  # the actors get the key's path ...
    for form in secret_forms(SECRET):  # ... and never its bytes
        assert form not in blob
        for data in [*ray_files.values(), (out / "manifest.jsonl").read_bytes()]:
            assert form not in data
    logs = Path(tempfile.gettempdir()) / "ray" / "session_latest" / "logs"
    assert logs.is_dir()
    for p in (q for q in logs.rglob("*") if q.is_file()):
        data = p.read_bytes()
        assert not any(form in data for form in secret_forms(SECRET)), p

    # a rerun resumes: nothing to do
    again = obfuscate_tree_ray(setup["src"], out, key_file=setup["key_file"], model_dir=setup["model"], workers=2,
                               batch_size=4, cpu_isa=ISA, progress=False)
    assert (again.done, again.skipped, again.failed) == (0, N_FRAMES, 1)


class FailingActor(ObfuscateActor):
    """Raises on its third batch (after k = 2 batches done)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        if self.calls > 2:
            # give the driver time to consume (and record) the batches already done: on a loaded machine
            # Ray otherwise surfaces the failure before any finished batch reached the manifest
            time.sleep(3)
            raise RuntimeError("injected worker failure")
        return super().__call__(batch)


def test_worker_failing_after_k_batches_then_rerun_gives_every_frame_once(ray_cluster, setup, local_ref, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors cannot import this test module
    out = tmp_path / "out"
    with pytest.raises(MedcloakError, match="the Ray run stopped .*injected worker failure.*rerun to resume"):
        obfuscate_tree_ray(setup["src"], out, key_file=setup["key_file"], model_dir=setup["model"], workers=2,
                           batch_size=4, cpu_isa=ISA, progress=False, actor_cls=FailingActor)
    first = read_batch_manifest(out / "manifest.jsonl")
    n_first = sum(r["status"] == "ok" for r in first)
    assert 0 < n_first < N_FRAMES, "the failure did not land mid-run"

    s = obfuscate_tree_ray(setup["src"], out, key_file=setup["key_file"], model_dir=setup["model"], workers=2,
                           batch_size=4, cpu_isa=ISA, progress=False)
    assert (s.done + s.skipped, s.failed) == (N_FRAMES, 1) and s.skipped == n_first
    assert files(out) == files(local_ref)  # no frame lost, corrupted, or written twice under another name
    recs = read_batch_manifest(out / "manifest.jsonl")
    ok_items = [r["item"] for r in recs if r["status"] == "ok"]
    assert len(ok_items) == len(set(ok_items)) == N_FRAMES  # every frame recorded once
    assert sum(r["frames"] for r in recs if r["status"] == "ok") == N_FRAMES


_PIN_PROBE = r"""
import hashlib, sys, numpy as np, torch
from medcloak.keys import Key
from medcloak.obfuscation.cpu_pin import check_pinned
from medcloak.obfuscation.pipeline import Obfuscator
from medcloak.synth import generate
torch.set_num_threads(1)
cap = check_pinned(sys.argv[2])
obf = Obfuscator.load(sys.argv[1], Key(bytes(range(7, 39))))
x = generate(64, size=32, seed=9).frames.astype(np.float32)
vae = b"".join(obf.vae_stage(x[i:i + 1]).tobytes() for i in range(len(x)))
out = b"".join(obf.obfuscate(x[i:i + 1]).tobytes() for i in range(len(x)))
print(cap, hashlib.sha256(vae).hexdigest(), hashlib.sha256(out).hexdigest())
"""


def test_cpu_pinning_reaches_torch_and_decides_the_vae_arithmetic(setup):
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2" not in flags:
        pytest.skip("needs an x86 CPU with AVX2")

    def probe(profile: str) -> list[str]:
        env = {**os.environ, **pin_environment(profile)}
        res = subprocess.run([sys.executable, "-c", _PIN_PROBE, str(setup["model"]), profile], env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return res.stdout.split()

    scalar, vector, vector_again = probe("default"), probe("avx2"), probe("avx2")
    assert (scalar[0], vector[0]) == ("DEFAULT", "AVX2")  # the pin took effect in torch
    assert vector == vector_again  # a pinned run repeats bit for bit
    # the instruction set changes the VAE's floats (rounding): without a pin, nodes with other
    # CPUs would write other bytes wherever a value sits at a quantisation boundary
    assert scalar[1] != vector[1]
    # in this process torch has already chosen its instruction set: a later pin is refused, not ignored
    with pytest.raises(MedcloakError, match="pinned to default"):
        check_pinned("default")


def test_medcloak_and_the_local_engine_never_import_ray_and_a_missing_extra_is_one_line(tmp_path):
    """Also: the local engine pinned with --cpu-isa records the pin in its manifest."""
    code = r"""
import sys
from pathlib import Path
import numpy as np
import medcloak
from medcloak.cli import main
from medcloak.io.images import write_png
from medcloak.keys import Key
from medcloak.obfuscation.batch import obfuscate_tree
root = Path(sys.argv[1])
write_png(root / "in" / "a.png", np.zeros((8, 8)))
Key(b"k" * 32).save(root / "k.key")
assert obfuscate_tree(root / "in", root / "out", key=Key.load(root / "k.key"), progress=False).ok
assert main(["obfuscate", str(root / "in"), str(root / "out3"), "--key", str(root / "k.key"), "--cpu-isa", "avx2",
             "--no-progress"]) == 0  # the local engine, pinned: recorded in the manifest
import json
rec = json.loads((root / "out3" / "manifest.jsonl").read_text().splitlines()[0])
assert rec["cpu"]["isa_profile"] == "avx2" and rec["cpu"]["env"]["ATEN_CPU_CAPABILITY"] == "avx2", rec
assert "ray" not in sys.modules, "the local engine imported ray"
sys.modules["ray"] = None  # as if the 'scale' extra were not installed
code = main(["obfuscate", str(root / "in"), str(root / "out2"), "--key", str(root / "k.key"), "--engine", "ray",
             "--no-progress"])
print("exit", code)
"""
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "exit 2" in res.stdout
    assert "the Ray engine needs the 'scale' extra: pip install 'medcloak[scale]'" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out2").exists()
