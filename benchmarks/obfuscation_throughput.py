"""Obfuscation throughput vs a plain export pass, with a per-stage cost breakdown (issue "bench", 1).

For each frame size S (128, 256, 512 px) and 1 and 2 worker processes, the same input files
(8-bit PNGs of 512x512 semi-synthetic angiograms) go through one export loop twice:

* **plain**: ``medcloak.io.load.read_frames`` -> ``medcloak.io.arrays.resize`` to S ->
  ``medcloak.io.images.write_png`` (what any export of frames to a cloud does anyway);
* **obfuscate**: the same, plus ``Obfuscator.obfuscate`` (default VAE architecture,
  ``vae-then-map``, 256 levels) between resize and write. The VAE is fitted once, at 128 px on
  64 other frames for 5 epochs (enough for realistic output, which matters: PNG encoding of
  the output is part of the cost), and its weights serve every size (fully convolutional).

Frames per second of both are measured in the same run (alternating, best of ``--repeats``),
and their ratio obfuscate/plain is the figure of merit (target >= 0.5 at 256 px). Worker
processes (``spawn``, one torch thread each, like ``medcloak obfuscate``) are started and load
the model before the clock starts. The product path ``obfuscate_tree`` (``medcloak
obfuscate``: also hashes every input and output, appends and fsyncs a manifest line per file
and starts its workers inside the clock) is timed on the same files, and once on one file: that
run's time estimates the start-up, excluded in the "without start-up" figure
``(n - 1) / (T(n) - T(1))``.

The breakdown (one process, one torch thread) splits one frame's cost into decode, resize, VAE,
mapping, encode+write, and compares VAE variants: the default NCHW layout at batch size 1 (the
pipeline before this benchmark), channels-last at batch size 1 (the pipeline now) and
channels-last at batch size 8 (with the fraction of output levels it would flip, which is why
the pipeline does not batch). The mapping's speed is compared to a plain memory copy.

Usage::

    python benchmarks/obfuscation_throughput.py --out throughput.json
    python benchmarks/obfuscation_throughput.py --sizes 64 --frames 16 --repeats 1   # smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH_KEY, Timer, at_size, fitted_obfuscator, input_frames, machine, now, print_rows, write_json,
)

DEFAULT_FRAMES = {128: 240, 256: 160, 512: 48}
INPUT_SIZE = 512  # side of the input PNGs (a typical XA matrix); --input-size changes it
CHUNK = 8
FIT_SIZE = 128  # the VAE is fitted once at this size; its weights serve every size

# ------------------------------------------------------------------------------ the export loop

_W: dict = {}


def _init(models: dict[int, str], barrier=None) -> None:
    """Per process: one torch thread (as ``medcloak obfuscate``) and every size's model, loaded
    once; then a warm-up outside the clock (lazy imports of skimage and PIL plugins, oneDNN
    kernel set-up for every frame size)."""
    import torch

    from medcloak.io.arrays import resize
    from medcloak.io.images import write_png
    from medcloak.keys import Key
    from medcloak.obfuscation.pipeline import Obfuscator

    torch.set_num_threads(1)
    _W.clear()
    _W.update({size: Obfuscator.load(d, Key(BENCH_KEY)) for size, d in models.items()})
    with tempfile.TemporaryDirectory() as tmp:
        for size, obf in list(_W.items()):
            x = resize(np.full((size + 4, size + 4), 0.5, np.float32), size)
            write_png(Path(tmp) / "warm.png", obf.obfuscate(x), bits=8)
    if barrier is not None:
        barrier.wait(timeout=600)  # every worker is up and warm before the first timed task


def _export(task: tuple[list[str], str, int, bool]) -> int:
    """read -> resize -> [obfuscate] -> write PNG for every frame of every file; returns frames."""
    from medcloak.io.arrays import resize
    from medcloak.io.images import write_png
    from medcloak.io.load import read_frames

    paths, out_dir, size, obfuscate = task
    obf = _W[size] if obfuscate else None
    n = 0
    for p in paths:
        for j, fr in enumerate(read_frames(p)):
            x = resize(fr.pixels, size)
            if obf is not None:
                x = obf.obfuscate(x)
            write_png(Path(out_dir) / f"{Path(p).stem}_{j}.png", x, bits=8)
            n += 1
    return n


def _ready(_: int) -> int:
    return os.getpid()


class Exporter:
    """The export loop on ``workers`` processes (``spawn``; 1: in this process), models loaded
    and workers started before any clock."""

    def __init__(self, models: dict[int, str], workers: int):
        import torch

        self.workers = workers
        self.pool = None
        self._threads = torch.get_num_threads()
        if workers == 1:
            _init(models)
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            barrier = ctx.Barrier(workers)
            self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(models, barrier))
            list(self.pool.map(_ready, range(workers)))  # returns once the barrier has let them all go

    def seconds(self, paths: list[Path], out_dir: Path, *, size: int, obfuscate: bool) -> float:
        """Seconds to export ``paths`` to ``out_dir`` at ``size`` px."""
        out_dir.mkdir(parents=True, exist_ok=True)
        tasks = [([str(p) for p in paths[i : i + CHUNK]], str(out_dir), size, obfuscate)
                 for i in range(0, len(paths), CHUNK)]
        t0 = time.perf_counter()
        n = sum(map(_export, tasks)) if self.pool is None else sum(self.pool.map(_export, tasks))
        seconds = time.perf_counter() - t0
        assert n == len(paths)
        return seconds

    def close(self) -> None:
        import torch

        if self.pool is not None:
            self.pool.shutdown()
        torch.set_num_threads(self._threads)


# ------------------------------------------------------------------------------ breakdown


def breakdown(paths: list[Path], obf, out_dir: Path, *, size: int, n: int) -> dict:
    """Per-frame milliseconds of every stage (one process, one torch thread)."""
    import torch

    from medcloak.io.arrays import resize
    from medcloak.io.images import write_png
    from medcloak.io.load import read_frames
    from medcloak.obfuscation.vae import reconstruct

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    t = Timer()
    fast = obf._inference_model()
    xs, vs = [], []
    png_plain = png_obf = 0
    for i in range(n):
        p = paths[i % len(paths)]
        with t("decode"):
            fr = read_frames(p)[0].pixels
        with t("resize"):
            x = resize(fr, size)
        with t("plain: encode+write"):
            write_png(out_dir / f"plain_{i}.png", x, bits=8)
        with t("VAE"):
            v = obf.vae_stage(x[None])
        with t("mapping"):
            y = obf.mapping(v)[0]
        with t("encode+write"):
            write_png(out_dir / f"obf_{i}.png", y, bits=8)
        png_plain += (out_dir / f"plain_{i}.png").stat().st_size
        png_obf += (out_dir / f"obf_{i}.png").stat().st_size
        xs.append(x)
        vs.append(v[0])
    x = np.stack(xs)
    with t("vae_nchw_b1"):  # the pipeline before: default layout, one frame per pass
        nchw = reconstruct(obf.model, x, batch_size=1)
    with t("vae_cl_b1"):
        cl1 = reconstruct(fast, x, batch_size=1, channels_last=True)
    batch = min(8, n)
    with t("vae_cl_b8"):
        cl8 = reconstruct(fast, x, batch_size=batch, channels_last=True)
    assert np.array_equal(cl1, np.stack(vs)), "the pipeline's VAE stage is the channels-last batch-1 pass"
    q = obf.mapping.levels - 1

    def flipped(a: np.ndarray) -> float:
        return float((np.rint(a * q) != np.rint(cl1 * q)).mean())

    # the mapping against a plain memory copy of the same float32 frame
    reps = max(20, 2_000_000 // (size * size))
    frame = np.ascontiguousarray(vs[0])
    buf = np.empty_like(frame)
    t0 = time.perf_counter()
    for _ in range(reps):
        obf.mapping(frame)
    map_s = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        np.copyto(buf, frame)
    copy_s = (time.perf_counter() - t0) / reps
    stages = ["decode", "resize", "VAE", "mapping", "encode+write"]
    obf_ms = {s: t.ms(s, n) for s in stages}
    total = sum(obf_ms.values())
    plain_ms = t.ms("decode", n) + t.ms("resize", n) + t.ms("plain: encode+write", n)
    return {
        "frames": n,
        "obfuscate_ms_per_frame": obf_ms,
        "obfuscate_total_ms": total,
        "obfuscate_share": {s: obf_ms[s] / total for s in stages},
        "plain_ms_per_frame": {"decode": t.ms("decode", n), "resize": t.ms("resize", n),
                               "encode+write": t.ms("plain: encode+write", n)},
        "plain_total_ms": plain_ms,
        "png_bytes_per_frame": {"plain": png_plain / n, "obfuscated": png_obf / n},
        "vae_variants_ms_per_frame": {
            "nchw_batch1 (before)": t.ms("vae_nchw_b1", n),
            "channels_last_batch1 (now)": t.ms("vae_cl_b1", n),
            f"channels_last_batch{batch}": t.ms("vae_cl_b8", n),
        },
        "levels_flipped_vs_now": {"nchw_batch1 (before)": flipped(nchw), f"channels_last_batch{batch}": flipped(cl8)},
        "max_abs_diff_vs_now": {"nchw_batch1 (before)": float(np.abs(nchw - cl1).max()),
                                f"channels_last_batch{batch}": float(np.abs(cl8 - cl1).max())},
        "mapping_ms_per_frame": map_s * 1e3,
        "memcpy_ms_per_frame": copy_s * 1e3,
        "mapping_gb_per_s": frame.nbytes / map_s / 1e9,
        "memcpy_gb_per_s": frame.nbytes / copy_s / 1e9,
    }


# ------------------------------------------------------------------------------ main


def _write_inputs(folder: Path, n: int, *, side: int, seed: int) -> tuple[list[Path], str]:
    from medcloak.io.images import write_png

    unique, source = input_frames(8, side, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.roll(unique[i % len(unique)], 3 * (i // len(unique)), axis=1)  # no two files alike
        p = folder / f"frame{i:05d}.png"
        write_png(p, img, bits=8)
        paths.append(p)
    return paths, source


def _link_subset(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        os.link(p, folder / p.name)


def run_all_sizes(counts: dict[int, int], paths: list[Path], work: Path, *, workers_list, repeats: int,
                  breakdown_frames: int, fit_frames: int, fit_epochs: int, seed: int) -> list[dict]:
    from medcloak.keys import Key
    from medcloak.obfuscation.batch import obfuscate_tree

    results, obfs, models = {}, {}, {}
    fit_size = min(FIT_SIZE, max(4, min(counts) // 4 * 4))
    train, _ = input_frames(fit_frames, fit_size, seed=seed + 1)  # not the timed frames
    t0 = time.perf_counter()
    fitted = fitted_obfuscator(train, epochs=fit_epochs)
    fit_s = time.perf_counter() - t0
    for size, n in counts.items():
        obfs[size] = at_size(fitted, size)
        results[size] = {"size": size, "frames": n, "runs": [],
                         "model": {"fit_size": fit_size, "fit_frames": fit_frames, "fit_epochs": fit_epochs,
                                   "fit_seconds": fit_s}}
        models[size] = str(obfs[size].save(work / f"model{size}"))
        _link_subset(paths[:n], work / f"tree_in{size}")
    for workers in workers_list:
        exporter = Exporter(models, workers)
        try:
            for size, n in counts.items():
                best = {False: float("inf"), True: float("inf")}
                for r in range(repeats):
                    for obfuscate in (False, True) if r % 2 == 0 else (True, False):
                        out = work / f"out{size}_{workers}_{int(obfuscate)}_{r}"
                        best[obfuscate] = min(best[obfuscate], exporter.seconds(paths[:n], out, size=size,
                                                                                obfuscate=obfuscate))
                        shutil.rmtree(out)
                results[size]["runs"].append({"workers": workers, "plain_fps": n / best[False],
                                              "obfuscate_fps": n / best[True],
                                              "ratio_obfuscate_over_plain": best[False] / best[True],
                                              "plain_seconds": best[False]})
        finally:
            exporter.close()
        for size, n in counts.items():
            tree_s = {}
            for m, in_dir in ((1, work / "in" / paths[0].name), (n, work / f"tree_in{size}")):
                out = work / f"tree_out{size}_{workers}_{m}"
                t0 = time.perf_counter()
                summary = obfuscate_tree(in_dir, out, key=Key(BENCH_KEY), model_dir=models[size], workers=workers,
                                         fmt="png", batch_size=CHUNK, progress=False)
                tree_s[m] = time.perf_counter() - t0
                assert summary.ok and summary.done == m, summary.line()
                shutil.rmtree(out)
            row = results[size]["runs"][-1]
            row["obfuscate_tree_fps"] = n / tree_s[n]
            row["ratio_tree_over_plain"] = row["plain_seconds"] / tree_s[n]
            # start-up (model load, worker processes) estimated by a one-file run, then excluded
            row["obfuscate_tree_one_file_seconds"] = tree_s[1]
            steady = (n - 1) / max(tree_s[n] - tree_s[1], 1e-9)
            row["obfuscate_tree_fps_excl_startup"] = steady
            row["ratio_tree_excl_startup_over_plain"] = steady / row["plain_fps"]
            del row["plain_seconds"]
            print(f"  {size:4d} px, {workers} worker(s): plain {row['plain_fps']:.1f} fps, obfuscate "
                  f"{row['obfuscate_fps']:.1f} fps, ratio {row['ratio_obfuscate_over_plain']:.2f}; "
                  f"obfuscate_tree {row['obfuscate_tree_fps']:.1f} fps ({steady:.1f} without start-up)", flush=True)
    for size, n in counts.items():
        results[size]["breakdown"] = breakdown(paths, obfs[size], work / f"breakdown{size}", size=size,
                                               n=min(breakdown_frames, n))
    return [results[s] for s in counts]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--frames", type=int, default=None, help="frames per size (default 240/160/48 for 128/256/512)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per mode (best one kept)")
    ap.add_argument("--breakdown-frames", type=int, default=24)
    ap.add_argument("--fit-frames", type=int, default=64, help="frames the VAE is fitted on (at 128 px)")
    ap.add_argument("--fit-epochs", type=int, default=5)
    ap.add_argument("--input-size", type=int, default=INPUT_SIZE, help="side of the input PNGs, px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="scratch folder (default: a new temporary folder, removed at the end)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    counts = {s: args.frames or DEFAULT_FRAMES.get(s, 64) for s in args.sizes}
    work = Path(args.workdir or tempfile.mkdtemp(prefix="medcloak-bench-"))
    started = time.perf_counter()
    try:
        paths, source = _write_inputs(work / "in", max(counts.values()), side=args.input_size, seed=args.seed)
        doc = {"benchmark": "obfuscation_throughput", "date": now(), "machine": machine(),
               "input": {"files": len(paths), "size": args.input_size, "format": "8-bit PNG", "source": source},
               "workers": args.workers, "repeats": args.repeats, "sizes": []}
        print(f"obfuscation throughput: {args.input_size}px PNG inputs ({source}); frames per size {counts}", flush=True)
        doc["sizes"] = run_all_sizes(counts, paths, work, workers_list=args.workers, repeats=args.repeats,
                                     breakdown_frames=args.breakdown_frames, fit_frames=args.fit_frames,
                                     fit_epochs=args.fit_epochs, seed=args.seed)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    doc["seconds"] = time.perf_counter() - started
    report(doc)
    if args.out:
        write_json(args.out, doc)
    return doc


def report(doc: dict) -> None:
    rows = []
    for s in doc["sizes"]:
        for r in s["runs"]:
            rows.append([s["size"], r["workers"], s["frames"], r["plain_fps"], r["obfuscate_fps"],
                         r["ratio_obfuscate_over_plain"], r["obfuscate_tree_fps"], r["obfuscate_tree_fps_excl_startup"]])
    print_rows("Obfuscation throughput (frames/s)", ["px", "workers", "frames", "plain", "obfuscate", "ratio",
                                                     "obfuscate_tree", "tree w/o start-up"], rows)
    rows = []
    for s in doc["sizes"]:
        b = s["breakdown"]
        ms = b["obfuscate_ms_per_frame"]
        v = list(b["vae_variants_ms_per_frame"].values())
        rows.append([s["size"], ms["decode"], ms["resize"], ms["VAE"], ms["mapping"], ms["encode+write"],
                     b["obfuscate_total_ms"], b["plain_total_ms"], v[0], v[1], v[2]])
    print_rows("Per-frame cost, ms (1 process, 1 thread)",
               ["px", "decode", "resize", "VAE", "mapping", "enc+write", "total", "plain", "VAE nchw b1",
                "VAE cl b1", "VAE cl b8"], rows)


if __name__ == "__main__":
    main()
