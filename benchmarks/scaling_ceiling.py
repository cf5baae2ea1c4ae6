"""How much faster 2 processes get through each scheme's per-frame work than 1 on this machine, with
no start-up and no output files: the ceiling for ``medcloak obfuscate --workers 2``.

Each process runs the batch worker's own code (:func:`medcloak.obfuscation.batch_worker.run_task`:
read and decode the input PNG from the page cache, the scheme, PNG / ``.npy`` encoding, SHA-256,
the naming) with one change: the output writer drops the bytes instead of writing and fsyncing
them. The processes are started, have loaded the scheme and have done a few frames before the clock
starts; then one process does all frames (1 worker) or two do half each (2 workers), rounds
alternating. A plain Pillow pass (decode, convert, encode to memory) is measured the same way, as
the machine's own figure for light work.

If ``obfuscate``'s 2 / 1 ratio in ``obfuscate_e2e.py`` is near this one, what the command adds
(start-up, files, fsync, manifest) costs the scaling little and the rest is the work itself sharing
two cores (caches, memory bandwidth); if it is far below, the command is to blame.

Usage::

    python benchmarks/scaling_ceiling.py --frames 1000 --rounds 5 --out ceiling.json   # ~14 min, 2 quiet cores
    python benchmarks/scaling_ceiling.py --frames 16 --rounds 1 --schemes pixelate      # smoke
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import BENCH_KEY, load_average, machine, now, print_rows, shifted_pngs, write_json  # noqa: E402

SCHEMES = [("map-only", "paper", "png"), ("blockwise", "blockwise", "png"), ("pixelate", "pixelate", "png"),
           ("blur", "blur", "png"), ("svd", "svd", "npy"), ("randenc", "randenc", "npy")]

_W: dict = {}


class _DropWriter:
    """The batch writer's interface; the bytes are dropped (their SHA-256 is still computed)."""

    def __init__(self, *_a, **_k):
        pass

    def write(self, path, data, *, mode=0o644):
        pass

    def wait(self):
        pass

    def close(self):
        pass

    def close_quietly(self):
        pass


def _start(in_root: str, out_root: str, scheme: str, fmt: str) -> int:
    import medcloak.obfuscation.batch_worker as bw
    from medcloak.keys import Key

    bw.DurableWriter = _DropWriter
    bw.init_worker(Key(BENCH_KEY), None, in_root, out_root, fmt, True, scheme)
    _W["bw"] = bw
    return os.getpid()


def _run(task) -> tuple[float, float, int]:
    """Run one task of ``[(rel, spec, sha), ...]``; (wall s, CPU s of this process, frames)."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = _W["bw"].run_task(task)
    frames = sum(r["frames"] for r in res)
    if any(r["status"] != "ok" for r in res):
        raise SystemExit(f"failed: {[r['error'] for r in res if r['status'] != 'ok'][:3]}")
    return time.perf_counter() - t0, time.process_time() - c0, frames


def _plain(paths: list[str]) -> tuple[float, float, int]:
    import io

    from PIL import Image

    t0, c0 = time.perf_counter(), time.process_time()
    for p in paths:
        buf = io.BytesIO()
        Image.open(p).convert("L").save(buf, format="PNG")
    return time.perf_counter() - t0, time.process_time() - c0, len(paths)


def measure(name: str, scheme: str | None, fmt: str, in_root: Path, rels: list[str], rounds: int) -> dict:
    from medcloak.keys import Key
    from medcloak.obfuscation.naming import OutputSpec

    ctx = multiprocessing.get_context("spawn")
    out_root = tempfile.mkdtemp(prefix="medcloak-ceiling-")  # stays empty: nothing is written
    with ctx.Pool(2) as pool:
        # each process loads the scheme: two starts that hold their process for 0.5 s go to both
        pids = set(pool.starmap(_start_slow, [(str(in_root), out_root, scheme, fmt)] * 2, chunksize=1))
        if scheme is None:
            jobs = lambda part: [str(in_root / r) for r in part]  # noqa: E731
            fn = _plain
        else:
            key = Key(BENCH_KEY)
            spec = lambda r: OutputSpec(rel=r, fmt=fmt, key=key, png="fast")  # noqa: E731 - the default encoding
            jobs = lambda part: [(r, spec(r), "") for r in part]  # noqa: E731
            fn = _run
        if len(pids) != 2:
            raise SystemExit(f"{name}: the pool did not start 2 processes ({pids})")
        pool.starmap(fn, [(jobs(rels[:4]),), (jobs(rels[4:8]),)], chunksize=1)  # warm-up
        runs: dict = {1: [], 2: []}
        for r in range(rounds):
            for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                parts = [rels] if w == 1 else [rels[0::2], rels[1::2]]
                t0 = time.perf_counter()
                res = pool.starmap(fn, [(jobs(p),) for p in parts], chunksize=1)
                wall = time.perf_counter() - t0
                done = sum(n for _w, _c, n in res)
                if done != len(rels):
                    raise SystemExit(f"{name}: {done} of {len(rels)} frames done")
                runs[w].append({"seconds": wall, "cpu_seconds": [c for _w, c, _n in res], "frames": done})
    os.rmdir(out_root)  # fails loudly if the dropping writer let a file through
    per_round = sorted(a["seconds"] / b["seconds"] for a, b in zip(runs[1], runs[2]))
    best1, best2 = min(x["seconds"] for x in runs[1]), min(x["seconds"] for x in runs[2])
    cpu1 = min(sum(x["cpu_seconds"]) for x in runs[1])
    cpu2 = min(sum(x["cpu_seconds"]) for x in runs[2])
    return {"leg": name, "frames": len(rels), "one_worker_s": [round(x["seconds"], 3) for x in runs[1]],
            "two_workers_s": [round(x["seconds"], 3) for x in runs[2]], "ratio_best": best1 / best2,
            "ratio_round_median": statistics.median(per_round), "ratio_round_min": per_round[0],
            "ratio_round_max": per_round[-1],
            "ms_per_frame_1": 1e3 * cpu1 / len(rels), "ms_per_frame_2": 1e3 * cpu2 / len(rels)}


def _start_slow(in_root: str, out_root: str, scheme: str | None, fmt: str) -> int:
    pid = os.getpid() if scheme is None else _start(in_root, out_root, scheme, fmt)
    time.sleep(0.5)  # hold this process so that the pool's other one takes the second start
    return pid


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of 1 and 2 workers")
    ap.add_argument("--schemes", nargs="+", default=[n for n, _s, _f in SCHEMES])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    doc = {"benchmark": "scaling_ceiling", "date": now(), "machine": machine(), "rounds": args.rounds,
           "load_at_start": load_average()}
    with tempfile.TemporaryDirectory(prefix="medcloak-ceiling-in-") as tmp:
        in_root = Path(tmp)
        paths, doc["source"] = shifted_pngs(in_root, args.frames, seed=args.seed)
        rels = [p.name for p in paths]
        legs = [("plain Pillow (decode, convert, encode)", None, "png")]
        legs += [(n, s, f) for n, s, f in SCHEMES if n in args.schemes]
        doc["legs"] = []
        for name, scheme, fmt in legs:
            r = measure(name, scheme, fmt, in_root, rels, args.rounds)
            doc["legs"].append(r)
            print(f"  {name:40s} 2/1 best {r['ratio_best']:.2f}, rounds median {r['ratio_round_median']:.2f} "
                  f"[{r['ratio_round_min']:.2f}-{r['ratio_round_max']:.2f}]; CPU ms/frame 1 worker "
                  f"{r['ms_per_frame_1']:.2f}, 2 workers {r['ms_per_frame_2']:.2f}", flush=True)
    doc["load_at_end"] = load_average()
    doc["seconds"] = time.perf_counter() - started
    print_rows("2 workers / 1 worker without start-up or files (per-frame work only)",
               ["leg", "best/best", "round median", "min", "max", "CPU ms/frame 1w", "CPU ms/frame 2w"],
               [[r["leg"], r["ratio_best"], r["ratio_round_median"], r["ratio_round_min"], r["ratio_round_max"],
                 r["ms_per_frame_1"], r["ms_per_frame_2"]] for r in doc["legs"]])
    if args.out:
        write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
