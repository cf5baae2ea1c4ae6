"""Peak memory of ``medcloak obfuscate`` on 1,000 vs 10,000 frames: flat (issue "bench", 2).

Writes 10,000 small 8-bit PNG frames (semi-synthetic angiograms, ``--size`` px, default 64) in
folders of 1,000, fits an obfuscator (default VAE architecture, 5 epochs on 64 other frames), then runs
:func:`medcloak.obfuscation.batch.obfuscate_tree` -- the batch path of ``medcloak obfuscate``,
with its manifest, hashes and resumability -- in a fresh child process on the first folder
(1,000 frames) and on all of them (10,000 frames), one worker (the work runs in the child
itself). Each child reports its own peak resident set size, ``VmHWM`` of ``/proc/self/status``
(not ``ru_maxrss``: Linux carries the parent's high-water mark across fork + exec, so a child of
this script, which has imported torch and fitted a VAE, would inherit the parent's peak). A
third child only loads the model and obfuscates one frame: the floor that imports (torch,
numpy, ...) cost before any work.

Flat means: the 10,000-frame peak is within a few MiB of the 1,000-frame peak.

Usage::

    python benchmarks/peak_memory.py --out memory.json
    python benchmarks/peak_memory.py --frames 50 500 --size 32     # smoke
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_KEY, fitted_obfuscator, input_frames, machine, now, print_rows, write_json  # noqa: E402

PER_FOLDER = 1000


def _vm_hwm_mib() -> float:
    """Peak RSS of this process's own address space (``VmHWM``), MiB; ru_maxrss off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def _child(in_dir: str, out_dir: str, model_dir: str, workers: int) -> None:
    """Run in a fresh process: obfuscate ``in_dir`` (or, with in_dir '-', one frame); print JSON."""
    from medcloak.keys import Key

    t0 = time.perf_counter()
    done = 0
    if in_dir == "-":
        import torch

        from medcloak.obfuscation.pipeline import Obfuscator

        torch.set_num_threads(1)
        obf = Obfuscator.load(model_dir, Key(BENCH_KEY))
        obf.obfuscate(np.zeros(obf.input_size, np.float32))
    else:
        from medcloak.obfuscation.batch import obfuscate_tree

        s = obfuscate_tree(in_dir, out_dir, key=Key(BENCH_KEY), model_dir=model_dir, workers=workers,
                           fmt="png", progress=False)
        if not s.ok:
            raise SystemExit(s.line())
        done = s.done
    print(json.dumps({
        "frames": done,
        "seconds": time.perf_counter() - t0,
        "peak_mib": _vm_hwm_mib(),
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def _run_child(in_dir: str, out_dir: str, model_dir: str, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--child", in_dir, out_dir, model_dir, str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _write_inputs(root: Path, small: int, large: int, size: int, *, seed: int) -> str:
    """``large`` PNG files: the first ``small`` in ``part00``, the others in folders of 1,000."""
    from PIL import Image

    from medcloak.io.images import to_uint

    unique, source = input_frames(8, size, seed=seed)
    for i in range(large):
        folder = root / ("part00" if i < small else f"part{1 + (i - small) // PER_FOLDER:02d}")
        folder.mkdir(parents=True, exist_ok=True)
        img = np.roll(unique[i % len(unique)], i // len(unique), axis=1)
        Image.fromarray(to_uint(img)).save(folder / f"f{i:05d}.png")  # inputs: no need for fsync
    return source


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=4, metavar=("IN", "OUT", "MODEL", "WORKERS"), help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, nargs=2, default=[1000, 10000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--size", type=int, default=64, help="frame side, px (frames are not resized)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="scratch folder (default: a new temporary folder, removed at the end)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return {}
    small, large = args.frames
    if not 0 < small < large:
        raise SystemExit("--frames: need 0 < SMALL < LARGE")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="medcloak-bench-mem-"))
    started = time.perf_counter()
    try:
        print(f"peak memory: {args.size}px frames, {small} vs {large} files, 1 worker", flush=True)
        source = _write_inputs(work / "in", small, large, args.size, seed=args.seed)
        small_in, large_in = work / "in" / "part00", work / "in"
        train, _ = input_frames(64, args.size, seed=args.seed + 1)
        model = str(fitted_obfuscator(train).save(work / "model"))
        floor = _run_child("-", "-", model, 1)
        runs = []
        for n, in_dir in ((small, small_in), (large, large_in)):
            r = _run_child(str(in_dir), str(work / f"out{n}"), model, 1)
            if r["frames"] != n:
                raise RuntimeError(f"expected {n} frames, obfuscated {r['frames']}")
            runs.append(r)
            shutil.rmtree(work / f"out{n}")
            print(f"  {n:6d} frames: peak RSS {r['peak_mib']:.1f} MiB in {r['seconds']:.1f} s", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    doc = {
        "benchmark": "peak_memory", "date": now(), "machine": machine(), "size": args.size,
        "workers": 1, "input_source": source, "floor": floor, "runs": runs,
        "growth_mib": runs[1]["peak_mib"] - runs[0]["peak_mib"],
        "ratio_large_over_small": runs[1]["peak_mib"] / runs[0]["peak_mib"],
        "seconds": time.perf_counter() - started,
    }
    report(doc)
    if args.out:
        write_json(args.out, doc)
    return doc


def report(doc: dict) -> None:
    rows = [["load model + 1 frame", 1, doc["floor"]["peak_mib"], doc["floor"]["seconds"]]]
    rows += [["obfuscate_tree", r["frames"], r["peak_mib"], r["seconds"]] for r in doc["runs"]]
    print_rows(f"Peak RSS ({doc['size']}px frames, {doc['workers']} worker(s)); growth "
               f"{doc['growth_mib']:+.1f} MiB, ratio {doc['ratio_large_over_small']:.3f}",
               ["run", "frames", "peak MiB", "seconds"], rows)


if __name__ == "__main__":
    main()
