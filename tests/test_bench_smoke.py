"""Benchmarks run end to end at trivial sizes (no timing asserts), and the VAE speed-up keeps
``medcloak obfuscate`` byte-identical whatever the number of workers or batch mates."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medcloak.io.images import write_png
from medcloak.keys import Key
from medcloak.obfuscation.batch import obfuscate_tree
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.vae import VAE, VAEConfig, reconstruct

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = VAEConfig(base_channels=4, latent_channels=2, downsamples=2, residual_units=0, epochs=1, batch_size=4)
KEY = Key(b"\x44" * 32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    return np.clip(0.2 + 0.5 * xx * yy + 0.2 * rng.random((10, 32, 32)), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def obf(frames):
    o = Obfuscator(KEY, config=ObfuscationConfig(vae=TINY, latent="sampled"))
    o.fit(frames, progress=False)
    return o


def test_channels_last_reconstruct_agrees_and_is_deterministic(frames):
    model = VAE(TINY).eval()
    fast = VAE(TINY).eval()
    fast.load_state_dict(model.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    ref = reconstruct(model, frames, batch_size=1)
    cl = reconstruct(fast, frames, batch_size=1, channels_last=True)
    assert np.abs(cl - ref).max() < 1e-5  # same network, another memory layout
    assert np.array_equal(cl, reconstruct(fast, frames, batch_size=1, channels_last=True))
    # the caller's model is not converted by the pipeline's fast path
    assert model.encoder[0].conv.weight.is_contiguous()


def test_obfuscate_same_bytes_whatever_batch_mates_and_position(obf, frames):
    y = obf.obfuscate(frames)
    for i in (0, 3, 9):
        assert np.array_equal(obf.obfuscate(frames[i]), y[i])  # alone
        mates = np.concatenate([frames[::-1], frames[i : i + 1]])  # last of a reversed stack
        assert np.array_equal(obf.obfuscate(mates)[-1], y[i])
    # the channels-last inference copy is made once and is not the fitted model itself
    fast = obf._inference_model()
    assert obf._inference_model() is fast and fast is not obf.model


def test_vae_tree_byte_identical_for_1_and_2_workers(obf, frames, tmp_path):
    src = tmp_path / "in"
    rng = np.random.default_rng(1)
    for i in range(6):
        write_png(src / f"f{i}.png", rng.random((40, 40)))  # resized to 32 by the batch runner
    model = obf.save(tmp_path / "model")
    one = obfuscate_tree(src, tmp_path / "w1", key=KEY, model_dir=model, workers=1, progress=False)
    from medcloak.obfuscation import batch_worker

    here, real = [], batch_worker._InProcess.run  # tasks run by this process (the pool's run in its own)

    def counted(self, task, record):
        here.append(len(task))
        return real(self, task, record)

    batch_worker._InProcess.run = counted
    try:
        two = obfuscate_tree(src, tmp_path / "w2", key=KEY, model_dir=model, workers=2, batch_size=1, progress=False)
    finally:
        batch_worker._InProcess.run = real
    assert one.ok and two.ok and one.done == two.done == 6
    # 2 workers = a 1-process pool (2 tasks in flight) + this process, which took the others
    assert 1 <= len(here) <= 4 and batch_worker.STATE == {}
    from medcloak.obfuscation.naming import pseudonym_name

    for i in range(6):
        name = pseudonym_name(KEY, f"f{i}.png", 0, "png")
        a, b = (tmp_path / "w1" / name).read_bytes(), (tmp_path / "w2" / name).read_bytes()
        assert a == b


def _bench_module(name: str):
    import importlib

    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def test_e2e_discard_moves_the_names_file_too_when_the_trash_must_be_emptied(tmp_path, monkeypatch):
    # a run on a nearly full disk empties the trash mid-run; the names file moved after that crashed the benchmark
    e2e = _bench_module("obfuscate_e2e")
    monkeypatch.setattr(e2e, "MIN_FREE", 1 << 62)
    monkeypatch.setattr(e2e.time, "sleep", lambda s: None)
    legs = e2e.Legs.__new__(e2e.Legs)
    legs.work, legs.trash_emptied = tmp_path, 0
    out = tmp_path / "out1"
    (out / "00").mkdir(parents=True)
    (out / "00" / "a.png").write_bytes(b"x")
    names = tmp_path / "out1.names.jsonl"
    names.write_text("{}\n")
    legs._discard(out, names, tmp_path / "out1.absent")
    assert not out.exists() and not names.exists() and legs.trash_emptied == 1


@pytest.mark.slow
def test_every_benchmark_runs_at_a_trivial_size_and_the_table_is_written(tmp_path):
    run_all = _bench_module("run_all")
    docs = {}
    for name, (script, _full, quick) in run_all.SCRIPTS.items():
        if name == "vae_fit":
            continue  # run below through run_all, in its own process
        out = tmp_path / f"{name}.json"
        docs[name] = _bench_module(script[:-3]).main([*quick, "--out", str(out)])
        assert json.loads(out.read_text())["benchmark"] == docs[name]["benchmark"]
    t = docs["throughput"]["sizes"][0]
    run = t["runs"][0]
    assert run["plain_fps"] > 0 and run["obfuscate_fps"] > 0 and run["obfuscate_tree_fps"] > 0
    assert run["ratio_obfuscate_over_plain"] == pytest.approx(run["obfuscate_fps"] / run["plain_fps"])
    bd = t["breakdown"]
    assert set(bd["obfuscate_ms_per_frame"]) == {"decode", "resize", "VAE", "mapping", "encode+write"}
    assert sum(bd["obfuscate_share"].values()) == pytest.approx(1.0)
    assert 0 <= min(bd["levels_flipped_vs_now"].values()) and max(bd["levels_flipped_vs_now"].values()) < 0.5
    mem = docs["memory"]
    assert [r["frames"] for r in mem["runs"]] == [20, 60]
    # the child's own peak (VmHWM), not the parent's inherited high-water mark: above the floor's imports
    assert all(10 < r["peak_mib"] for r in mem["runs"]) and mem["floor"]["frames"] == 0
    sc = docs["e2e"]["scaling_2_over_1"]["map-only, native 512 px"]  # CPU time of every round, and the model's bound
    assert sc["cores_1"] > 0 and sc["cpu_2_over_1"] > 0 and sc["fixed_seconds"] > 0 and sc["cpu_bound"] > 0
    assert all(r["obfuscate"]["cpu_seconds"] > 0 for r in docs["e2e"]["legs"])
    # the machine's own 2 / 1 ran beside every round: one control run per worker count and round
    assert sc["control_round_min"] > 0 and sc["obfuscate_over_control_median"] > 0
    one = next(r for r in docs["e2e"]["legs"] if r["workers"] == 1)
    assert len(one["control_rounds"]) == len(one["obfuscate_rounds"]) and docs["e2e"]["control"]["units"] >= 8
    ce = docs["ceiling"]  # the worker's own code with the output dropped: 1 and 2 processes, every frame done
    assert [r["leg"] for r in ce["legs"]] == ["plain Pillow (decode, convert, encode)", "pixelate"]
    assert all(r["frames"] == 12 and r["ratio_best"] > 0 and r["ms_per_frame_1"] > 0 for r in ce["legs"])
    tr = docs["training"]
    assert tr["ratio_obfuscated_over_original"] > 0 and len(tr["runs"]["obfuscated"][0]["epoch_seconds"]) == 2

    merged = run_all.main(["--quick", "--only", "vae_fit", "--out-dir", str(tmp_path)])
    assert json.loads((tmp_path / "results.json").read_text())["benchmarks"].keys() == {"vae_fit"}
    assert merged["benchmarks"]["vae_fit"]["sizes"][0]["seconds_per_epoch"] > 0
    merged["benchmarks"].update(docs)
    md = run_all.markdown(merged)
    for needle in (merged["machine"]["cpu_model"], "GPU", "torch", "threads", "quick smoke run", "| 32 |",
                   "Peak memory", "Ratio obfuscated / original", "VAE fitting", "The ceiling of 2 workers",
                   "CPU bound of 2 / 1", "The machine's own 2 / 1"):
        assert needle in md


def test_e2e_scaling_sets_each_round_beside_the_machine_control_of_the_same_round():
    e2e = _bench_module("obfuscate_e2e")
    one = {"plain_fps": 10.0, "obfuscate_rounds": [10.0, 12.0, 10.0], "control_rounds": [3.0, 3.0, 3.0]}
    two = {"plain_fps": 19.0, "obfuscate_rounds": [5.0, 8.0, 6.25], "control_rounds": [1.5, 2.0, 1.6]}
    v = e2e.scaling(one, two)
    assert v["obfuscate_round_median"] == pytest.approx(1.6)  # rounds: 2.0, 1.5, 1.6
    assert v["control_round_median"] == pytest.approx(1.875)  # rounds: 2.0, 1.5, 1.875
    assert v["control_round_min"] == pytest.approx(1.5) and v["control_rounds_at_1_8"] == 2
    # per round obfuscate / control: 1.0, 1.0, 0.853: a round where the machine itself gave 1.5 is not held against it
    assert v["obfuscate_over_control_median"] == pytest.approx(1.0)
    assert "control_round_median" not in e2e.scaling({**one, "control_rounds": []}, two)


def test_merge_keeps_what_was_not_rerun_and_drops_extra_e2e_runs_everywhere():
    run_all = _bench_module("run_all")
    e2e_old = {"date": "d0", "legs": [{"leg": "map-only", "workers": 1, "ratio": 2.0}], "scaling_2_over_1": {}}
    old = {"date": "d1", "machine": {"cpu_model": "M1"}, "benchmarks": {"e2e": e2e_old, "e2e_vae_engines": {},
                                                                        "memory": {"x": 1}},
           "merged_from": {"date": "d0", "benchmarks": ["memory"], "machine": "M0"},
           "measured": {"memory": {"date": "d0", "machine": "M0"}, "e2e_vae_engines": {"date": "d1", "machine": "M1"}}}
    doc = {"date": "d2", "benchmarks": {"e2e": {"legs": []}}, "measured": {"e2e": {"date": "d2", "machine": "M2"}}}
    run_all.merge(doc, old, ["e2e"])
    assert set(doc["benchmarks"]) == {"e2e", "memory"}
    # the extra run replaced by the new e2e run is not said to be kept, in the header's two sources
    assert doc["merged_from"]["benchmarks"] == ["memory"] and set(doc["measured"]) == {"e2e", "memory"}
    assert doc["measured"]["memory"] == {"date": "d0", "machine": "M0"}  # not restamped by the carrying run
    assert doc["benchmarks"]["e2e"]["previous"]["ratios"] == {"map-only | 1": 2.0}
