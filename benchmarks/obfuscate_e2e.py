"""`medcloak obfuscate` end to end against the plain Pillow loop a user would write (issue 17).

One command, one run, the same input files for every leg:

* **inputs**: ``--frames`` 8-bit PNGs of 512x512 semi-synthetic angiograms
  (:func:`medcloak.synth.generate`, 8 frames, each file shifted so no two are alike);
* **plain** (the yardstick): the simplest loop a user writes with Pillow, in a fresh Python
  process (start-up inside the clock): ``Image.open(p).convert("L")``, ``.resize((256, 256),
  Image.BILINEAR)`` for the 256 px legs (no resize for the native-size legs), ``.save(out, "PNG")``;
  with 2 workers the files are split over a 2-process pool;
* **obfuscate**: ``python -m medcloak obfuscate IN OUT --key K [--model M | --scheme S] --workers W``
  as a user runs it (start-up, input and output SHA-256s, names file and manifest inside the
  clock); the paper's VAE (fitted once, at 128 px, on 64 other frames, 5 epochs; its weights
  serve 256 px, the size of its model folder) writes 256 px outputs, like plain at 256 px; the
  schemes without a network (``paper`` map-only, ``blockwise``, ``pixelate``, ``blur``; ``svd``
  and ``randenc`` output real values and write ``--format npy``) keep the native 512 px, so they
  are compared with the plain loop without the resize (the same output geometry); with
  ``--vae-engines fp32 bf16`` (the default) the same VAE weights also run as a ``bf16``-engine model
  folder (``ObfuscationConfig.engine``: other arithmetic, other outputs, its own fingerprint), a leg
  of its own;
* **baseline** (``--baseline COMMIT``, default the commit before issue 17's changes): the same
  ``obfuscate`` command run with that commit's ``src`` (``git archive``), for the VAE and the
  map, 1 worker: the old and new ratios come from the same run;
* **stages** (one process, one torch thread): milliseconds per frame of every stage of the
  obfuscate path (decode, resize, VAE, map, PNG encode with ``--png fast`` (the default) and
  ``compat`` (the earlier bytes), SHA-256, write+fsync) and of the plain
  loop (decode+convert, resize, encode+write), on ``--stage-frames`` files;
* **VAE FLOP rate**: FLOPs of one 256 px forward pass (``torch.utils.flop_counter``) over its
  measured time (channels-last, batch 1, one thread, as ``obfuscate`` runs it), against the
  machine's peak measured by a 2048x2048 float32 matrix multiply on one thread (best of 5).

Legs alternate (plain, obfuscate, plain, ...) and the best of ``--repeats`` is kept; a leg's 1- and
2-worker runs interleave (every repeat runs both), so its scaling ratio compares runs of the same
minutes, and ``--scaling-repeats`` adds rounds of obfuscate alone (1 and 2 workers) for that ratio,
reported as best / best and as the median and range of the rounds' own ratios; ``os.sync()`` runs
before every clock starts (the plain loop's unsynced files must not be
written back inside the next command's time) and no run's outputs are deleted before the end (see
``Legs._discard``: on ext4 without a journal, freshly freed inodes slow down file creation); every
run's seconds, CPU seconds (user + system of the command and the workers it waited for) and the
load averages before and after it are kept in the JSON. With 1 and 2 workers, a leg also times a
one-file run (its fixed cost) and reports what the 1-worker run's CPU time allows 2 workers to
gain (:func:`scaling`: a model, stated as one). 2-worker figures
only mean something on a quiet machine with at least 2 free cores; as a check of that, every round
also runs a **control** (``--control-seconds``, default 4 s in one process): numpy look-ups, zlib
and Python arithmetic, no files, in 1 process and in 2 started together (half each), so
each leg's 2 / 1 sits beside the machine's own 2 / 1 measured in the same minutes (on 2026-12-02
two hand-run jobs like it gave 1.07-2.64 between rounds, medians 1.61 and 1.71, and this one in the
01:55 UTC run reached 1.8 in 32 of 56 rounds: the VM's two vCPUs did not always deliver two cores).

Usage::

    python benchmarks/obfuscate_e2e.py --repeats 3 --scaling-repeats 4 --out e2e.json  # ~60 min, 2 quiet cores
    python benchmarks/obfuscate_e2e.py --schemes --no-baseline --repeats 3 --scaling-repeats 4  # the VAE legs alone
    python benchmarks/obfuscate_e2e.py --frames 8 --schemes map-only --no-baseline --workers 1 \
        --stage-frames 2 --flop-frames 2 --fit-frames 8 --fit-epochs 1                              # smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import (  # noqa: E402
    BENCH_KEY, Timer, at_size, fitted_obfuscator, input_frames, load_average, machine, now, print_rows, shifted_pngs,
    write_json,
)

BASELINE = "b5bee8f"  # main before issue 17's changes
SIZE = 256
FIT_SIZE = 128
MIN_FREE = 8 << 30  # bytes left free on the work folder's disk before the trash is emptied mid-run
NETWORK_FREE = [("map-only", ["--scheme", "paper"], "png"), ("blockwise", ["--scheme", "blockwise"], "png"),
                ("pixelate", ["--scheme", "pixelate"], "png"), ("blur", ["--scheme", "blur"], "png"),
                ("svd", ["--scheme", "svd"], "npy"), ("randenc", ["--scheme", "randenc"], "npy")]

PLAIN = r"""
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from PIL import Image

def loop(args):
    paths, out, size = args
    for p in paths:
        im = Image.open(p).convert("L")
        if size:
            im = im.resize((size, size), Image.BILINEAR)
        im.save(os.path.join(out, os.path.basename(p)))
    return len(paths)

if __name__ == "__main__":
    src, out, size, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    os.makedirs(out, exist_ok=True)
    paths = sorted(str(p) for p in Path(src).iterdir())
    if workers == 1:
        n = loop((paths, out, size))
    else:
        chunks = [(paths[i:i + 8], out, size) for i in range(0, len(paths), 8)]
        with ProcessPoolExecutor(workers) as pool:
            n = sum(pool.map(loop, chunks))
    assert n == len(paths)
"""

# The machine's own 2 / 1 (a control, not medcloak): the same arithmetic in 1 process, or split over
# 2 processes started together; no file I/O; a fresh interpreter each, start-up inside the clock.
CONTROL = r"""
import sys, zlib
import numpy as np

a = (np.arange(512 * 512, dtype=np.uint32) * 2654435761 % 251).astype(np.uint8).reshape(512, 512)
lut = np.arange(256, dtype=np.uint8)[::-1].copy()
s = 0
for i in range(int(sys.argv[1])):
    b = lut[a ^ (i & 255)]
    s += len(zlib.compress(b.tobytes(), 1)) + sum(j * j for j in range(3000))
"""


def _timed(cmd: list[str], env: dict, more: list[list[str]] = ()) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the commands and the worker processes they
    waited for, from ``RUSAGE_CHILDREN``) of one command, or of it and ``more`` started together
    (wall time until the last one ends; their output is read one command after the other, so only
    the first may print much)."""
    import resource

    # the previous command's files reach the disk before this clock starts: the plain loop leaves
    # ~200 MB of dirty pages (it never fsyncs), whose writeback otherwise lands on the next command
    os.sync()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in (cmd, *more)]
    errors = [p.communicate()[1] for p in procs]
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for c, p, err in zip((cmd, *more), procs, errors):
        if p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(c)}\n{err[-2000:]}")
    return seconds, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


class Legs:
    """Runs the plain loop and ``medcloak obfuscate`` as subprocesses and keeps every timing."""

    def __init__(self, work: Path, key_file: Path, src: Path):
        self.work, self.key_file = work, key_file
        self.env = {**os.environ, "PYTHONPATH": str(src)}
        _compile(src)
        self.plain_py = work / "plain_loop.py"
        self.plain_py.write_text(PLAIN)
        self.control_py = work / "control.py"
        self.control_py.write_text(CONTROL)
        self.control_units = 0  # set by calibrate_control(); 0: no control runs
        self.n = 0
        self.trash_emptied = 0

    def _out(self) -> Path:
        self.n += 1
        return self.work / f"out{self.n}"

    def _discard(self, *paths: Path) -> None:
        """Move a run's output (folder and names file) out of the way without deleting it.

        On ext4 without a journal (this machine's root file system), creating a file skips every
        inode freed in the last 60-300 s, one by one (``recently_deleted`` in ``fs/ext4/ialloc.c``),
        so deleting the 1,000 files of one run made the next run's file creations slower, and more so
        with 2 processes creating files side by side (``recently_deleted`` led the kernel profile of a
        2-worker run). Outputs go to ``trash/`` and are deleted at the end; only when the free space
        falls below ``MIN_FREE`` is the trash emptied during the run, followed by a 300 s pause,
        recorded in the JSON (``trash_emptied``). Every path is moved before the trash may go (a
        names file moved after it crashed a run that had emptied the trash).
        """
        trash = self.work / "trash"
        trash.mkdir(exist_ok=True)
        for p in paths:
            if p.exists():
                p.rename(trash / p.name)
        if shutil.disk_usage(self.work).free < MIN_FREE:
            shutil.rmtree(trash)
            self.trash_emptied += 1
            time.sleep(300)

    def plain(self, in_dir: Path, *, size: int, workers: int) -> dict:
        out = self._out()
        before = load_average()
        s, cpu = _timed([sys.executable, str(self.plain_py), str(in_dir), str(out), str(size), str(workers)], self.env)
        self._discard(out)
        return {"seconds": s, "cpu_seconds": cpu, "load_before": before, "load_after": load_average()}

    def obfuscate(self, in_dir: Path, extra: list[str], *, workers: int, fmt: str = "png",
                  env: dict | None = None) -> dict:
        out = self._out()
        before = load_average()
        cmd = [sys.executable, "-m", "medcloak", "obfuscate", str(in_dir), str(out), "--key", str(self.key_file),
               "--workers", str(workers), "--format", fmt, "--no-progress", *extra]
        s, cpu = _timed(cmd, env or self.env)
        self._discard(out, Path(f"{out}.names.jsonl"))
        return {"seconds": s, "cpu_seconds": cpu, "load_before": before, "load_after": load_average()}

    def calibrate_control(self, seconds: float = 4.0) -> dict:
        """Units of the control job that take about ``seconds`` in one process, start-up included
        (from runs of 0 and 200 units, best of 2 each)."""
        probe = 200
        t0, t1 = (min(_timed([sys.executable, str(self.control_py), str(n)], self.env)[0] for _ in range(2))
                  for n in (0, probe))
        self.control_units = max(8, int(probe * (seconds - t0) / max(t1 - t0, 1e-3)))
        return {"units": self.control_units, "seconds": seconds, "start_seconds": t0, "probe_units": probe,
                "probe_seconds": t1}

    def control(self, *, workers: int) -> dict:
        """One run of the control job (no files written): ``workers`` processes started together,
        each doing its share of the units; wall time until the last one ends."""
        before = load_average()
        share = [self.control_units // workers + (i < self.control_units % workers) for i in range(workers)]
        first, *rest = ([sys.executable, str(self.control_py), str(n)] for n in share)
        s, cpu = _timed(first, self.env, rest)
        return {"seconds": s, "cpu_seconds": cpu, "load_before": before, "load_after": load_average()}

    def one_file(self, in_dir: Path, extra: list[str], *, fmt: str = "png", repeats: int = 3, **_kw) -> float:
        """Best of ``repeats`` runs of the same command on one file of ``in_dir``, 1 worker: the
        fixed cost of a run (start-up, scheme or model loading, listing, manifest, exit)."""
        one = self.work / f"one_{in_dir.name}"
        if not one.exists():
            one.mkdir()
            first = min(p for p in in_dir.iterdir() if p.is_file())
            shutil.copy2(first, one / first.name)
        return min(self.obfuscate(one, extra, workers=1, fmt=fmt)["seconds"] for _ in range(repeats))


def _best(runs: list[dict]) -> dict:
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "all_seconds": [round(r["seconds"], 3) for r in runs]}


def pair(legs: Legs, n: int, plain_kw: dict, obf_kw: dict, repeats: int) -> dict:
    """Best of ``repeats`` alternating runs of plain and obfuscate on the same files."""
    return pairs(legs, n, plain_kw, obf_kw, repeats, [None])[None]


def pairs(legs: Legs, n: int, plain_kw: dict, obf_kw: dict, repeats: int, workers: list,
          scaling_repeats: int = 0) -> dict:
    """:func:`pair` for several worker counts, interleaved: each repeat runs every worker count
    (plain and obfuscate alternating, the order reversed every other repeat), so the 2 / 1 worker
    ratios compare runs of the same minutes, not of two moments ten minutes apart on a machine
    whose speed drifts by 10 %. ``None`` keeps the worker count of the keyword arguments.

    ``scaling_repeats`` more rounds then run obfuscate alone for every worker count (order reversed
    every other round): the workers' scaling of a 3-8 s leg swung by 1.6-1.9 between the rounds of
    one run, so it is judged on ``repeats + scaling_repeats`` rounds (``obfuscate_rounds``, one
    entry per round, in order); the obfuscate / plain ratios use the first ``repeats`` only.

    With several worker counts and a calibrated control (:meth:`Legs.control`), every round also runs
    the control job for every worker count, right after that round's obfuscate runs
    (``control_rounds``): the machine's own 2 / 1 in the same minutes.
    """
    plains: dict = {w: [] for w in workers}
    obfs: dict = {w: [] for w in workers}
    controls: dict = {w: [] for w in workers}
    with_control = len(workers) > 1 and None not in workers and legs.control_units > 0

    def control_round(r: int) -> None:
        if with_control:
            for w in (workers if r % 2 == 0 else workers[::-1]):
                controls[w].append(legs.control(workers=w))

    for r in range(repeats):
        for w in (workers if r % 2 == 0 else workers[::-1]):
            wk = {} if w is None else {"workers": w}
            order = ("plain", "obf") if r % 2 == 0 else ("obf", "plain")
            for what in order:
                if what == "plain":
                    plains[w].append(legs.plain(**{**plain_kw, **wk}))
                else:
                    obfs[w].append(legs.obfuscate(**{**obf_kw, **wk}))
        control_round(r)
    more: dict = {w: [] for w in workers}
    for r in range(scaling_repeats):
        for w in (workers if (repeats + r) % 2 == 0 else workers[::-1]):
            more[w].append(legs.obfuscate(**{**obf_kw, **({} if w is None else {"workers": w})}))
        control_round(repeats + r)
    out = {}
    for w in workers:
        p, o = _best(plains[w]), _best(obfs[w])
        out[w] = {"frames": n, "plain": p, "obfuscate": o, "plain_fps": n / p["seconds"],
                  "obfuscate_fps": n / o["seconds"], "ratio": p["seconds"] / o["seconds"],
                  "obfuscate_rounds": [round(x["seconds"], 3) for x in obfs[w] + more[w]],
                  "obfuscate_rounds_cpu": [round(x["cpu_seconds"], 3) for x in obfs[w] + more[w]]}
        if controls[w]:
            out[w]["control_rounds"] = [round(x["seconds"], 3) for x in controls[w]]
    return out


def scaling(one: dict, two: dict, fixed: float | None = None) -> dict:
    """2 / 1 workers for plain (best of its runs) and obfuscate: the best of all rounds of each, and
    each round's own ratio (1 and 2 workers ran in the same minutes) with their median and range.

    With the CPU time of the rounds, also what the 1-worker run itself allows (a model, stated as
    one): ``cores_1`` is the 1-worker run's CPU / wall time (above 1 where threads and the kernel's
    write-back use the idle second core), ``cpu_2_over_1`` the extra CPU two workers spend, and
    ``cpu_bound`` = T1 / (F + (C1 - F) / 2): the most two cores can gain if a 2-worker run needed no
    more CPU than the best 1-worker round (C1 seconds in T1) and only its fixed cost F (``fixed``:
    a one-file run's seconds) stayed serial.
    """
    r1, r2 = one["obfuscate_rounds"], two["obfuscate_rounds"]
    per = sorted(a / b for a, b in zip(r1, r2))
    out = {"plain": two["plain_fps"] / one["plain_fps"], "obfuscate": min(r1) / min(r2),
           "obfuscate_rounds": len(per), "obfuscate_round_median": statistics.median(per),
           "obfuscate_round_min": per[0], "obfuscate_round_max": per[-1]}
    k1, k2 = one.get("control_rounds"), two.get("control_rounds")
    if k1 and k2 and len(k1) == len(r1) == len(k2):
        ctl = [a / b for a, b in zip(k1, k2)]
        rel = sorted((a / b) / c for a, b, c in zip(r1, r2, ctl))
        ctl = sorted(ctl)
        out.update({"control_round_median": statistics.median(ctl), "control_round_min": ctl[0],
                    "control_round_max": ctl[-1], "control_best": min(k1) / min(k2),
                    "obfuscate_over_control_median": statistics.median(rel),
                    "control_rounds_at_1_8": sum(c >= 1.8 for c in ctl)})
    c1, c2 = one.get("obfuscate_rounds_cpu"), two.get("obfuscate_rounds_cpu")
    if c1 and c2:
        out["cores_1"] = statistics.median(c / t for c, t in zip(c1, r1))
        out["cpu_2_over_1"] = statistics.median(b / a for a, b in zip(c1, c2))
        if fixed is not None:
            i = r1.index(min(r1))
            out["fixed_seconds"] = fixed
            out["cpu_bound"] = r1[i] / (fixed + (c1[i] - fixed) / 2)
    return out


# ------------------------------------------------------------------------------ stages


def stages(paths: list[Path], model_dir: Path, work: Path) -> dict:
    """Milliseconds per frame of each stage, one process, one torch thread (the new code)."""
    import hashlib

    import torch
    from PIL import Image

    from medcloak.io.arrays import resize
    from medcloak.io.images import png_bytes
    from medcloak.io.load import read_frames
    from medcloak.keys import Key
    from medcloak.obfuscation.batch_worker import DurableWriter
    from medcloak.obfuscation.scheme import load_scheme, make_scheme

    torch.set_num_threads(1)
    key = Key(BENCH_KEY)
    vae = load_scheme(model_dir, key)
    mp = make_scheme("paper", {"order": "map-only"}).fit(None, key)
    out = work / "stages"
    out.mkdir()
    t = Timer()
    n = len(paths)
    x0 = resize(read_frames(paths[0])[0].pixels, SIZE)
    vae.apply_codes(x0[None])  # warm-up: network built, oneDNN kernels chosen
    for i, p in enumerate(paths):
        with t("plain: decode+convert"):
            im = Image.open(p).convert("L")
            im.load()
        with t("plain: resize"):
            im2 = im.resize((SIZE, SIZE), Image.BILINEAR)
        with t("plain: encode+write 256"):
            im2.save(out / f"p{i}.png")
        with t("plain: encode+write 512"):
            im.save(out / f"q{i}.png")
        with t("decode"):
            x = np.stack([f.pixels for f in read_frames(p)])
        with t("resize"):
            xs = np.stack([resize(f, SIZE) for f in x])
        with t("VAE"):
            v = vae.obfuscator.vae_stage(xs)
        with t("map 256 (to PNG codes)"):
            codes = vae.obfuscator.mapping.codes(v)
        with t("map-only 512 (to PNG codes)"):
            codes512 = mp.apply_codes(x)
        with t("PNG encode 256 (fast, the default)"):
            data = png_bytes(codes[0], encoding="fast")
        with t("PNG encode 256 (compat, the earlier bytes)"):
            png_bytes(codes[0], encoding="compat")
        with t("PNG encode 512 (map-only, fast)"):
            data512 = png_bytes(codes512[0], encoding="fast")
        with t("PNG encode 512 (map-only, compat)"):
            png_bytes(codes512[0], encoding="compat")
        with t("SHA-256 in+out"):
            hashlib.sha256(p.read_bytes()).hexdigest()
            hashlib.sha256(data).hexdigest()
        with t("write+fsync (waited)"):
            w = DurableWriter()
            w.write(out / f"o{i}.png", data)
            w.close()
        (out / f"m{i}.png").write_bytes(data512)
    ms = {k: t.ms(k, n) for k in t.total}
    obf256 = sum(ms[k] for k in ("decode", "resize", "VAE", "map 256 (to PNG codes)", "PNG encode 256 (fast, the default)",
                                 "SHA-256 in+out", "write+fsync (waited)"))
    plain256 = sum(ms[k] for k in ("plain: decode+convert", "plain: resize", "plain: encode+write 256"))
    return {"frames": n, "ms_per_frame": ms, "vae_path_total_ms": obf256, "plain_256_total_ms": plain256,
            "png_kB": {"plain 256": np.mean([(out / f"p{i}.png").stat().st_size for i in range(n)]) / 1e3,
                       "VAE 256": np.mean([(out / f"o{i}.png").stat().st_size for i in range(n)]) / 1e3,
                       "plain 512": np.mean([(out / f"q{i}.png").stat().st_size for i in range(n)]) / 1e3,
                       "map-only 512": np.mean([(out / f"m{i}.png").stat().st_size for i in range(n)]) / 1e3},
            "load_after": load_average()}


def flop_rate(model_dir: Path, frames: int = 24) -> dict:
    """VAE GFLOP per 256 px frame, its GFLOP/s as obfuscate runs it, and one thread's matmul peak."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from medcloak.keys import Key
    from medcloak.obfuscation.scheme import load_scheme
    from medcloak.obfuscation.vae import reconstruct

    torch.set_num_threads(1)
    obf = load_scheme(model_dir, Key(BENCH_KEY)).obfuscator
    net = obf._inference_model()
    x = np.random.default_rng(0).random((1, SIZE, SIZE), dtype=np.float32)
    with FlopCounterMode(display=False) as fc:
        reconstruct(net, x, batch_size=1, channels_last=True)
    flops = fc.get_total_flops()
    xs = np.random.default_rng(1).random((max(frames, 1), SIZE, SIZE), dtype=np.float32)
    reconstruct(net, xs[:2], batch_size=1, channels_last=True)
    best_vae = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        reconstruct(net, xs, batch_size=1, channels_last=True)
        best_vae = min(best_vae, (time.perf_counter() - t0) / len(xs))
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best_mm = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best_mm = min(best_mm, time.perf_counter() - t0)
    peak = 2 * 2048**3 / best_mm / 1e9
    rate = flops / best_vae / 1e9
    return {"vae_gflop_per_frame": flops / 1e9, "vae_ms_per_frame": best_vae * 1e3, "vae_gflop_per_s": rate,
            "peak_matmul_gflop_per_s_1_thread": peak, "vae_share_of_peak": rate / peak, "load_after": load_average()}


# ------------------------------------------------------------------------------ main


def _subset(paths: list[Path], folder: Path) -> Path:
    folder.mkdir()
    for p in paths:
        os.link(p, folder / p.name)
    return folder


def _compile(src: Path) -> None:
    """Byte-compile a measured tree as an installed package would be (``pip install`` does; an
    editable install under PYTHONDONTWRITEBYTECODE, as on the 2-core machine, compiles ~30 modules
    again in every process)."""
    import compileall

    compileall.compile_dir(str(src), quiet=2)


def _baseline_src(commit: str, work: Path) -> Path | None:
    dest = work / f"baseline-{commit}"
    dest.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", commit, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"baseline {commit} unavailable ({exc}); skipped", flush=True)
        return None
    _compile(dest / "src")
    return dest / "src"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000, help="files for the VAE, map-only and plain legs")
    ap.add_argument("--scheme-frames", type=int, default=1000, help="files for the other network-free schemes")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs per leg (best kept)")
    ap.add_argument("--scaling-repeats", type=int, default=0,
                    help="further rounds of obfuscate alone per leg, 1 and 2 workers interleaved, for the 2 / 1 "
                         "worker ratio (judged on all rounds: best of each, and the median of the rounds' ratios)")
    ap.add_argument("--vae-engines", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                    help="VAE inference engines timed, each a leg (fp32 always runs: stages and FLOP rate use it)")
    ap.add_argument("--schemes", nargs="*", default=[n for n, _e, _f in NETWORK_FREE],
                    help="network-free schemes to time (default all)")
    ap.add_argument("--control-seconds", type=float, default=4.0,
                    help="length of the machine control job in one process (run every round with 1 and 2 "
                         "processes, no files: the machine's own 2 / 1 in the same minutes; 0 = no control)")
    ap.add_argument("--stage-frames", type=int, default=48)
    ap.add_argument("--flop-frames", type=int, default=24, help="frames timed for the VAE's FLOP rate")
    ap.add_argument("--fit-frames", type=int, default=64, help="frames the VAE is fitted on (at 128 px)")
    ap.add_argument("--fit-epochs", type=int, default=5)
    ap.add_argument("--baseline", default=BASELINE, help="commit whose src is timed as 'before' (1 worker)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="scratch folder (default: a temporary folder, removed at the end)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    from medcloak.keys import Key

    started = time.perf_counter()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="medcloak-e2e-"))
    doc = {"benchmark": "obfuscate_e2e", "date": now(), "machine": machine(), "load_at_start": load_average(),
           "frames": args.frames, "scheme_frames": args.scheme_frames, "repeats": args.repeats, "size": SIZE,
           "scaling_repeats": args.scaling_repeats, "interleaved": True}
    try:
        paths, source = shifted_pngs(work / "in", args.frames, seed=args.seed)
        doc["input"] = {"files": len(paths), "size": 512, "format": "8-bit PNG", "source": source}
        scheme_in = _subset(paths[: args.scheme_frames], work / "in_schemes")
        key_file = work / "bench.key"
        Key(BENCH_KEY).save(key_file)
        train, _ = input_frames(args.fit_frames, FIT_SIZE, seed=args.seed + 1)
        t0 = time.perf_counter()
        obf256 = at_size(fitted_obfuscator(train, epochs=args.fit_epochs), SIZE)
        model_dir = obf256.save(work / "model256")
        doc["vae_fit_seconds"] = time.perf_counter() - t0
        print(f"obfuscate e2e: {len(paths)} x 512 px PNG ({source}); VAE fitted in {doc['vae_fit_seconds']:.0f} s",
              flush=True)
        legs = Legs(work, key_file, HERE.parent / "src")
        if args.control_seconds > 0 and len(args.workers) > 1:
            doc["control"] = legs.calibrate_control(args.control_seconds)
        rows = doc["legs"] = []

        fixed: dict = {}

        def leg(name: str, n: int, plain_kw: dict, obf_kw: dict) -> None:
            by_w = pairs(legs, n, plain_kw, obf_kw, args.repeats, list(args.workers), args.scaling_repeats)
            if len(args.workers) > 1:
                fixed[name] = legs.one_file(**obf_kw)
            for w in args.workers:
                r = {"leg": name, "workers": w, **by_w[w]}
                rows.append(r)
                print(f"  {name:28s} {w} worker(s), {n} frames: plain {r['plain_fps']:.1f} fps, "
                      f"obfuscate {r['obfuscate_fps']:.1f} fps, ratio {r['ratio']:.2f} "
                      f"(runs {r['obfuscate']['all_seconds']} s; load {load_average()})", flush=True)

        leg("paper VAE, 256 px", len(paths), dict(in_dir=work / "in", size=SIZE),
            dict(in_dir=work / "in", extra=["--model", str(model_dir)]))
        if "bf16" in args.vae_engines:
            bf16_dir = obf256.with_options(engine="bf16").save(work / "model256_bf16")
            leg("paper VAE, bf16 engine, 256 px", len(paths), dict(in_dir=work / "in", size=SIZE),
                dict(in_dir=work / "in", extra=["--model", str(bf16_dir)]))
        for name, extra, fmt in [s for s in NETWORK_FREE if s[0] in args.schemes]:
            n = len(paths) if name == "map-only" else args.scheme_frames
            in_dir = work / "in" if name == "map-only" else scheme_in
            leg(f"{name}, native 512 px" + (" (npy)" if fmt == "npy" else ""), n,
                dict(in_dir=in_dir, size=0), dict(in_dir=in_dir, extra=extra, fmt=fmt))
        if not args.no_baseline:
            src = _baseline_src(args.baseline, work)
            if src is not None:
                env = {**legs.env, "PYTHONPATH": str(src)}
                for name, extra, size in (("paper VAE, 256 px", ["--model", str(model_dir)], SIZE),
                                          ("map-only, native 512 px", ["--scheme", "paper"], 0)):
                    r = {"leg": f"BEFORE ({args.baseline}): {name}", "workers": 1,
                         **pair(legs, len(paths), dict(in_dir=work / "in", size=size, workers=1),
                                dict(in_dir=work / "in", extra=extra, workers=1, env=env), args.repeats)}
                    rows.append(r)
                    print(f"  {r['leg']:28s}: plain {r['plain_fps']:.1f} fps, obfuscate {r['obfuscate_fps']:.1f} fps, "
                          f"ratio {r['ratio']:.2f} (load {load_average()})", flush=True)
        # scaling: 2 workers over 1, for plain and obfuscate
        by = {(r["leg"], r.get("workers")): r for r in rows}
        doc["scaling_2_over_1"] = {
            name: scaling(by[(name, 1)], by[(name, 2)], fixed.get(name))
            for name in dict.fromkeys(r["leg"] for r in rows) if (name, 1) in by and (name, 2) in by}
        doc["trash_emptied"] = legs.trash_emptied
        doc["stages"] = stages(paths[: args.stage_frames], model_dir, work)
        doc["vae_flops"] = flop_rate(model_dir, args.flop_frames)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    doc["load_at_end"] = load_average()
    doc["seconds"] = time.perf_counter() - started
    report(doc)
    if args.out:
        write_json(args.out, doc)
    return doc


def report(doc: dict) -> None:
    rows = [[r["leg"], r.get("workers", ""), r["frames"], r["plain_fps"], r["obfuscate_fps"], r["ratio"],
             str(r["obfuscate"]["load_before"][0])] for r in doc["legs"]]
    print_rows("obfuscate end to end vs plain Pillow loop (frames/s, start-up included)",
               ["leg", "workers", "frames", "plain", "obfuscate", "ratio", "load"], rows)
    rows = [[k, v["plain"], v["obfuscate"], v.get("obfuscate_round_median", ""), v.get("obfuscate_round_min", ""),
             v.get("obfuscate_round_max", ""), v.get("control_round_median", ""),
             v.get("obfuscate_over_control_median", ""), v.get("cores_1", ""), v.get("cpu_2_over_1", ""),
             v.get("fixed_seconds", ""), v.get("cpu_bound", "")] for k, v in doc["scaling_2_over_1"].items()]
    print_rows("2 workers / 1 worker (frames/s)",
               ["leg", "plain", "obfuscate (best/best)", "round median", "round min", "round max",
                "control median", "obf/control", "cores (1 worker)", "CPU 2/1", "fixed s", "CPU bound"], rows)
    print_rows("stages, ms per frame", ["stage", "ms"], [[k, v] for k, v in doc["stages"]["ms_per_frame"].items()])
    f = doc["vae_flops"]
    print(f"\nVAE {f['vae_gflop_per_frame']:.3f} GFLOP/frame, {f['vae_ms_per_frame']:.1f} ms -> "
          f"{f['vae_gflop_per_s']:.1f} GFLOP/s = {100 * f['vae_share_of_peak']:.0f} % of the one-thread matmul peak "
          f"{f['peak_matmul_gflop_per_s_1_thread']:.1f} GFLOP/s; total {doc['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
