"""Frames/s of ``medcloak obfuscate --engine ray`` against the local engine, in one run (issue 16, 5).

The same N input PNGs (128 px semi-synthetic angiograms, ``medcloak.synth.generate``) are
obfuscated end to end (``obfuscate_tree``: input hashes, pseudonymous names, PNG outputs, an
fsynced manifest line per file) with the default VAE architecture fitted briefly at 128 px:

* **local**, 1 and 2 workers: the in-process loop and the ``spawn`` process pool;
* **ray**, 1 and 2 actors: :func:`medcloak.obfuscation.ray_engine.obfuscate_tree_ray` on a local
  Ray cluster (``ray.init(num_cpus=2)``) started once, before the clock (its start is timed apart).

The driver's serial work per file (input SHA-256, two fsynced JSON lines), which bounds any
cluster's rate, is timed apart. Each configuration is timed on N files and on 1 file; ``(N - 1) / (T(N) - T(1))`` is its
steady rate without the start-up (pool, actors, model load), and ``T(1)`` its start-up. The
per-frame overhead Ray adds is ``(T_ray(N) - T_ray(1) - T_local(N) + T_local(1)) / (N - 1)`` at
the same number of workers; it is negative where the Ray driver's own work (hashing, manifest)
overlaps the actors' while the local single-worker loop does both in turn, so Ray's own cost is
also measured directly: rows shaped like the engine's carried through a pool of no-op actors
and back (``ray no-op ms/frame``, N rows minus 1 row). Rounds alternate local and ray so background load hits both alike;
the best of ``--repeats`` rounds is kept. The 1-minute load average is recorded before and after
every timed run (this machine is shared: treat the numbers as such).

The process pins the CPU instruction set (``--cpu-isa``, default avx2) before torch starts, so
the local and the Ray engine run the same arithmetic; every run's outputs are compared by
SHA-256 with the first run's (a benchmark that wrote other bytes would be timing something else).

Usage::

    python benchmarks/scale.py                       # 320 frames, 2 rounds (about 4 min on 2 cores)
    python benchmarks/scale.py --frames 16 --repeats 1 --fit-epochs 1 --out /tmp/scale.json  # smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _hashes(out: Path) -> dict[str, str]:
    from medcloak.obfuscation.batch_worker import sha256_file

    return {p.relative_to(out).as_posix(): sha256_file(p) for p in sorted(out.rglob("*.png"))}


def driver_ms_per_file(src: Path) -> float:
    """The driver's serial work per file, which no number of nodes shortens: hash the input
    (resume and the names file need it) and append two fsynced JSON lines (manifest, names)."""
    from medcloak.obfuscation.batch_worker import sha256_file

    files = sorted(p for p in src.rglob("*") if p.is_file())
    line = (b'{"item": "0123456789abcdef", "outputs": ["ab/abcdef0123456789.png"], "output_sha256": ["'
            + b"0" * 64 + b'"], "status": "ok", "key_fingerprint": "' + b"0" * 64 + b'"}\n')
    log = src.parent / "driver-cost.jsonl"
    t = time.perf_counter()
    with open(log, "ab") as fh:
        for p in files:
            sha256_file(p)
            for _ in range(2):
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
    secs = time.perf_counter() - t
    log.unlink()
    return 1e3 * secs / len(files)


class NoopActor:
    """An actor that answers each row without reading or writing anything (Ray's own cost)."""

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        return {"result": np.array(['{"status": "ok"}'] * len(batch["rel"]), dtype=object)}


def ray_noop_seconds(ray, n: int, workers: int, batch_size: int) -> float:
    """Seconds for Ray Data to carry ``n`` rows shaped like the engine's through a pool of
    ``workers`` no-op actors and back to the driver (pool start included)."""
    rows = [{"rel": f"s{i % 8}/frame{i:05d}.png", "stem": "", "in_sha": "0" * 64} for i in range(n)]
    t = time.perf_counter()
    ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-n // batch_size)))
    out = ds.map_batches(NoopActor, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                         compute=ray.data.ActorPoolStrategy(size=min(workers, n)), udf_modifying_row_count=False)
    got = sum(len(b["result"]) for b in out.iter_batches(batch_size=None, batch_format="numpy"))
    assert got == n
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=320)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--fit-frames", type=int, default=64)
    ap.add_argument("--fit-epochs", type=int, default=5)
    ap.add_argument("--cpu-isa", default="avx2")
    ap.add_argument("--out", default=str(HERE / "results" / "scale.json"))
    args = ap.parse_args(argv)

    from medcloak.obfuscation.cpu_pin import pin_process

    pin = pin_process(args.cpu_isa)  # before any torch work: local workers inherit it, Ray actors get it
    from _common import BENCH_KEY, fitted_obfuscator, input_frames, machine, now, print_rows, write_json

    import ray

    from medcloak.io.images import write_png
    from medcloak.keys import Key
    from medcloak.obfuscation.batch import obfuscate_tree
    from medcloak.obfuscation.ray_engine import obfuscate_tree_ray

    started = now()
    mach = machine()
    tmp = Path(tempfile.mkdtemp(prefix="medcloak-scale-"))
    try:
        frames, source = input_frames(args.frames, args.size, seed=1)
        src, one = tmp / "in", tmp / "one"
        for i, f in enumerate(frames):
            write_png(src / f"s{i % 8}" / f"frame{i:05d}.png", f)
        write_png(one / "frame.png", frames[0])
        key_file = tmp / "bench.key"
        Key(BENCH_KEY).save(key_file)
        fit, _ = input_frames(args.fit_frames, args.size, seed=2)
        t0 = time.perf_counter()
        model = fitted_obfuscator(fit, epochs=args.fit_epochs).save(tmp / "model")
        fit_s = time.perf_counter() - t0
        print(f"{args.frames} frames at {args.size} px ({source}); model fitted in {fit_s:.0f} s; "
              f"pinned {pin['isa_profile']} ({pin['aten_cpu_capability']})", flush=True)

        driver_ms = driver_ms_per_file(src)
        t0 = time.perf_counter()
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
        ray_start_s = time.perf_counter() - t0

        def run(engine: str, workers: int, inp: Path, tag: str) -> dict:
            out = tmp / f"out-{tag}"
            shutil.rmtree(out, ignore_errors=True)
            load0 = _load()
            t = time.perf_counter()
            if engine == "local":
                s = obfuscate_tree(inp, out, key=Key.load(key_file), model_dir=model, workers=workers,
                                   batch_size=args.batch_size, progress=False)
            else:
                s = obfuscate_tree_ray(inp, out, key_file=key_file, model_dir=model, workers=workers,
                                       batch_size=args.batch_size, cpu_isa=args.cpu_isa, progress=False)
            secs = time.perf_counter() - t
            assert s.ok and s.done == s.total, s.line()
            return {"seconds": secs, "load_1min_before": load0, "load_1min_after": _load(), "out": out}

        reference: dict[str, str] = {}
        best: dict[tuple[str, int, str], dict] = {}
        same_bytes = True
        for rep in range(args.repeats):
            for workers in args.workers:
                for engine in (("local", "ray") if rep % 2 == 0 else ("ray", "local")):
                    for what, inp in (("n", src), ("1", one)):
                        r = run(engine, workers, inp, f"{engine}{workers}{what}")
                        if what == "n":
                            h = _hashes(r["out"])
                            reference = reference or h
                            same_bytes &= h == reference
                        k = (engine, workers, what)
                        if k not in best or r["seconds"] < best[k]["seconds"]:
                            best[k] = {key: v for key, v in r.items() if key != "out"}
                        print(f"  round {rep + 1}: {engine} w{workers} {'N' if what == 'n' else '1'} file(s): "
                              f"{r['seconds']:.2f} s (load {r['load_1min_before']} -> {r['load_1min_after']})",
                              flush=True)
        noop: dict[int, dict] = {}
        for workers in args.workers:
            tn = min(ray_noop_seconds(ray, args.frames, workers, args.batch_size) for _ in range(args.repeats))
            t1 = min(ray_noop_seconds(ray, 1, workers, args.batch_size) for _ in range(args.repeats))
            noop[workers] = {"seconds_n": tn, "seconds_one": t1,
                             "ms_per_frame": 1e3 * (tn - t1) / (args.frames - 1)}
            print(f"  no-op actors w{workers}: {tn:.2f} s for {args.frames} rows, {t1:.2f} s for 1 "
                  f"-> {noop[workers]['ms_per_frame']:.2f} ms/frame", flush=True)
        ray.shutdown()

        n = args.frames
        rows, table = [], []
        for workers in args.workers:
            row = {"workers": workers}
            for engine in ("local", "ray"):
                tn, t1 = best[(engine, workers, "n")]["seconds"], best[(engine, workers, "1")]["seconds"]
                row[engine] = {"seconds_n": tn, "seconds_one_file": t1, "fps": n / tn,
                               "fps_excl_startup": (n - 1) / (tn - t1) if tn > t1 else None, "startup_seconds": t1,
                               "load_1min": [best[(engine, workers, "n")]["load_1min_before"],
                                             best[(engine, workers, "n")]["load_1min_after"]]}
            row["ratio_ray_over_local"] = row["ray"]["fps"] / row["local"]["fps"]
            steady = (row["ray"]["fps_excl_startup"], row["local"]["fps_excl_startup"])
            row["ratio_ray_over_local_excl_startup"] = steady[0] / steady[1] if None not in steady else None
            lo, ra = row["local"], row["ray"]
            row["ray_overhead_ms_per_frame"] = 1e3 * ((ra["seconds_n"] - ra["seconds_one_file"])
                                                      - (lo["seconds_n"] - lo["seconds_one_file"])) / (n - 1)
            row["ray_noop_ms_per_frame"] = noop[workers]["ms_per_frame"]
            row["ray_noop"] = noop[workers]
            rows.append(row)
            table.append([workers, lo["fps"], ra["fps"], row["ratio_ray_over_local"], lo["fps_excl_startup"],
                          ra["fps_excl_startup"], row["ratio_ray_over_local_excl_startup"],
                          row["ray_overhead_ms_per_frame"], row["ray_noop_ms_per_frame"], lo["startup_seconds"],
                          ra["startup_seconds"]])
        doc = {"benchmark": "scale", "date": started, "machine": mach, "frames": n, "size": args.size,
               "input_source": source, "batch_size": args.batch_size, "repeats": args.repeats,
               "cpu_pin": pin, "ray_version": ray.__version__, "ray_cluster_start_seconds": ray_start_s,
               "vae_fit_seconds": fit_s,
               "driver_ms_per_file": driver_ms, "same_bytes_all_runs": bool(same_bytes), "rows": rows,
               "load_1min_end": _load()}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, doc)
        print_rows(f"obfuscate_tree, {n} frames at {args.size} px, frames/s (best of {args.repeats}); "
                   f"load at start {mach['load_average_1_5_15min']}",
                   ["workers", "local", "ray", "ray/local", "local w/o start", "ray w/o start", "ratio",
                    "ray-local ms/frame", "ray no-op ms/frame", "local start s", "ray start s"], table)
        print(f"Ray cluster start {ray_start_s:.1f} s (outside the clock); driver's serial work "
              f"{driver_ms:.2f} ms/file (input SHA-256 + 2 fsynced lines); same bytes in every run: {same_bytes}; "
              f"wrote {args.out}")
        return 0 if same_bytes else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
