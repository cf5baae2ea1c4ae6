"""Run every overhead benchmark and write ``benchmarks/results.json`` and ``benchmarks/RESULTS.md``.

Each benchmark runs in its own process (its thread settings and memory do not leak into the
next) and writes its JSON; this script merges them, writes the Markdown table (date, machine:
CPU model from /proc/cpuinfo, cores, torch version, threads) and prints it at the end.

Benchmarks (issue "bench"; 0. from issue 17):

0. ``obfuscate_e2e.py`` -- ``medcloak obfuscate`` end to end (CLI, start-up included) against the
   plain Pillow loop, 1,000 frames, 1 and 2 workers, every network-free scheme, the VAE's FLOP
   rate against one thread's matmul peak, and the code before issue 17 timed in the same run;
1. ``obfuscation_throughput.py`` -- frames/s of obfuscate vs a plain read/resize/write pass,
   128/256/512 px, 1 and 2 workers, with a per-stage breakdown;
2. ``peak_memory.py`` -- peak RSS of ``obfuscate_tree`` on 1,000 vs 10,000 frames;
3. ``training_overhead.py`` -- classifier epoch time on obfuscated / original frames;
4. ``vae_fit_time.py`` -- VAE fitting seconds per epoch at 128 and 256 px.

Usage::

    python benchmarks/run_all.py                  # full run (about 10-15 min on 2 cores), or: make bench
    python benchmarks/run_all.py --quick --out-dir /tmp/b    # seconds: proves the scripts work
    python benchmarks/run_all.py --only throughput memory
    python benchmarks/run_all.py --only e2e --merge   # re-measure one benchmark, keep the others' figures
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, now  # noqa: E402

SCRIPTS = {
    "e2e": ("obfuscate_e2e.py", ["--repeats", "3", "--scaling-repeats", "4"],
            ["--frames", "8", "--schemes", "map-only", "--no-baseline", "--workers", "1", "2", "--stage-frames", "2",
             "--flop-frames", "2", "--fit-frames", "8", "--fit-epochs", "1", "--control-seconds", "0.3"]),
    "ceiling": ("scaling_ceiling.py", ["--frames", "1000", "--rounds", "4"],
                ["--frames", "12", "--rounds", "1", "--schemes", "pixelate"]),
    "throughput": ("obfuscation_throughput.py", [],
                   ["--sizes", "32", "--frames", "8", "--repeats", "1", "--breakdown-frames", "4",
                    "--input-size", "48", "--workers", "1", "--fit-frames", "8", "--fit-epochs", "1"]),
    "memory": ("peak_memory.py", [], ["--frames", "20", "60", "--size", "32"]),
    "training": ("training_overhead.py", [], ["--n", "48", "--size", "32", "--epochs", "2", "--repeats", "2"]),
    "vae_fit": ("vae_fit_time.py", [], ["--sizes", "32", "--n", "16", "--epochs", "1", "--threads", "1"]),
}

HE_CONTEXT = ("For scale (quoted from the issue, not measured here): homomorphic-encryption inference "
              "with TenSEAL costs about 2 s per encrypted 28x28 MNIST image, ~1000x plain inference.")


def run(names: list[str], *, quick: bool, tmp: Path) -> dict[str, dict]:
    docs = {}
    for name in names:
        script, full, small = SCRIPTS[name]
        out = tmp / f"{name}.json"
        cmd = [sys.executable, str(HERE / script), *(small if quick else full), "--out", str(out)]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark {name} failed with exit code {proc.returncode}")
        docs[name] = json.loads(out.read_text())
        print(f"=== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return docs


def _f(x, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def markdown(doc: dict) -> str:
    m = doc["machine"]
    b = doc["benchmarks"]
    gpu = ("none: no GPU was lent to the benchmark session and `torch.cuda.is_available()` is False; "
           "every figure is a CPU figure" if not m["cuda_available"] else
           "available but not used: these benchmarks measure the CPU path")
    lines = [
        "# medcloak overhead benchmarks",
        "",
        f"- date: {doc['date']}" + (" (**quick smoke run: sizes too small to quote**)" if doc["quick"] else ""),
        f"- machine: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"load average at start {m['load_average_1_5_15min']}",
        f"- software: Python {m['python']}, torch {m['torch']} (oneDNN {'on' if m['mkldnn'] else 'off'}), "
        f"numpy {m['numpy']}",
        f"- GPU: {gpu}",
        "- threads: obfuscation workers run one torch thread each (as `medcloak obfuscate`); classifier "
        "training runs on one thread, VAE fitting on one thread and on all usable cores (see each table)",
        f"- reproduce: `python benchmarks/run_all.py` (or `make bench`); total {doc['seconds']:.0f} s",
    ]
    if doc.get("merged_from"):
        mf = doc["merged_from"]
        kept: dict = {}  # (date, machine) -> benchmarks measured then
        for name in mf["benchmarks"]:
            m = (doc.get("measured") or {}).get(name) or {"date": mf.get("date"), "machine": mf.get("machine")}
            kept.setdefault((m.get("date"), m.get("machine")), []).append(name)
        runs = "; ".join(f"{', '.join(names)} measured on {date} (machine: {mach or 'as above'})"
                         for (date, mach), names in sorted(kept.items(), key=lambda kv: str(kv[0][0])))
        lines.append(f"- merged (`--merge`): {runs}, kept from earlier runs; the others are from this run")
    lines += [
        "",
        HE_CONTEXT,
    ]
    for name in sorted(k for k in b if k.startswith("e2e")):  # e2e, and extra runs kept as e2e_<what>
        lines += _e2e_markdown(b[name], extra=name != "e2e")
    if "ceiling" in b:
        lines += _ceiling_markdown(b["ceiling"], b.get("e2e"))
    if "throughput" in b:
        t = b["throughput"]
        lines += ["", "## 1. Obfuscation throughput (frames/s)", "",
                  f"Inputs: {t['input']['files']} {t['input']['size']}x{t['input']['size']} {t['input']['format']} "
                  f"files ({t['input']['source']}); plain = read + resize + write PNG; obfuscate = the same + "
                  "`Obfuscator.obfuscate` (default VAE fitted at 128 px, weights shared by all sizes; vae-then-map, "
                  "256 levels); best of "
                  f"{t['repeats']} alternating passes, workers started before the clock. `obfuscate_tree` = "
                  "`medcloak obfuscate` end to end (hashes, fsynced manifest, worker start-up inside the clock); "
                  "\"w/o start-up\" subtracts the time of a one-file run.",
                  "", "| px | workers | frames | plain | obfuscate | obfuscate / plain | obfuscate_tree | "
                  "obfuscate_tree w/o start-up | its ratio to plain |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in t["sizes"]:
            for r in s["runs"]:
                lines.append(f"| {s['size']} | {r['workers']} | {s['frames']} | {_f(r['plain_fps'], 1)} | "
                             f"{_f(r['obfuscate_fps'], 1)} | **{_f(r['ratio_obfuscate_over_plain'])}** | "
                             f"{_f(r['obfuscate_tree_fps'], 1)} | {_f(r['obfuscate_tree_fps_excl_startup'], 1)} | "
                             f"{_f(r['ratio_tree_excl_startup_over_plain'])} |")
        lines += ["", "Target: obfuscate / plain >= 0.5 at 256 px.", "",
                  "Per-frame cost, ms (one process, one torch thread):", "",
                  "| px | decode | resize | VAE | mapping | encode+write | total | plain total | "
                  "plain encode+write | PNG kB plain / obfuscated | "
                  "VAE NCHW b1 (before) | VAE channels-last b1 (now) | VAE channels-last b8 | levels flipped by b8 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in t["sizes"]:
            bd = s["breakdown"]
            ms = bd["obfuscate_ms_per_frame"]
            v = list(bd["vae_variants_ms_per_frame"].values())
            flips = list(bd["levels_flipped_vs_now"].values())
            lines.append(f"| {s['size']} | {_f(ms['decode'])} | {_f(ms['resize'])} | {_f(ms['VAE'])} | "
                         f"{_f(ms['mapping'], 3)} | {_f(ms['encode+write'])} | {_f(bd['obfuscate_total_ms'])} | "
                         f"{_f(bd['plain_total_ms'])} | {_f(bd['plain_ms_per_frame']['encode+write'])} | "
                         f"{bd['png_bytes_per_frame']['plain'] / 1e3:.0f} / {bd['png_bytes_per_frame']['obfuscated'] / 1e3:.0f} | "
                         f"{_f(v[0])} | {_f(v[1])} | {_f(v[2])} | "
                         f"{100 * flips[1]:.3f} % |")
        lines += ["", "Mapping vs a memory copy of the same float32 frame:", "",
                  "| px | mapping ms | GB/s | memcpy ms | GB/s |", "|---:|---:|---:|---:|---:|"]
        for s in t["sizes"]:
            bd = s["breakdown"]
            lines.append(f"| {s['size']} | {_f(bd['mapping_ms_per_frame'], 3)} | {_f(bd['mapping_gb_per_s'])} | "
                         f"{_f(bd['memcpy_ms_per_frame'], 3)} | {_f(bd['memcpy_gb_per_s'])} |")
    if "memory" in b:
        mm = b["memory"]
        lines += ["", "## 2. Peak memory of `obfuscate_tree` (RSS)", "",
                  f"{mm['size']}x{mm['size']} PNG frames, {mm['workers']} worker(s), each run in a fresh process "
                  "(`VmHWM` of /proc/self/status).", "", "| run | frames | peak MiB | seconds |", "|---|---:|---:|---:|",
                  f"| load model + obfuscate 1 frame | 1 | {_f(mm['floor']['peak_mib'], 1)} | "
                  f"{_f(mm['floor']['seconds'], 1)} |"]
        for r in mm["runs"]:
            lines.append(f"| obfuscate_tree | {r['frames']} | {_f(r['peak_mib'], 1)} | {_f(r['seconds'], 1)} |")
        lines += ["", f"Growth from {mm['runs'][0]['frames']} to {mm['runs'][1]['frames']} frames: "
                  f"**{mm['growth_mib']:+.1f} MiB** (ratio {mm['ratio_large_over_small']:.3f})."]
    if "training" in b:
        tr = b["training"]
        lines += ["", "## 3. Cloud training overhead", "",
                  f"`train_classifier`, model `{tr['model']}`, one Recipe object for both sides, "
                  f"{tr['frames']['train']} training frames at {tr['frames']['size']} px, {tr['threads']} torch "
                  f"thread(s), {len(tr['runs']['original'])} alternating runs per side; fastest epoch after the "
                  "first of each run (median in the last column).", "",
                  "| frames | s / epoch (fastest) | s / epoch (median) |", "|---|---:|---:|",
                  f"| original | {_f(tr['epoch_seconds']['original'])} | {_f(tr['median_epoch_seconds']['original'])} |",
                  f"| obfuscated | {_f(tr['epoch_seconds']['obfuscated'])} | "
                  f"{_f(tr['median_epoch_seconds']['obfuscated'])} |", "",
                  f"Ratio obfuscated / original: **{tr['ratio_obfuscated_over_original']:.3f}** (target <= 1.05; "
                  f"ratio of medians {tr['ratio_of_medians']:.3f})."]
    if "vae_fit" in b:
        v = b["vae_fit"]
        lines += ["", "## 4. VAE fitting time (default VAEConfig)", "",
                  f"{v['sizes'][0]['frames']} frames, batch {v['config']['batch_size']}, fastest of "
                  f"{v['config']['epochs']} epochs.",
                  "", f"| px | torch threads | s / epoch | ms / frame | minutes for {v['default_epochs']} epochs x "
                  "1,000 frames |", "|---:|---:|---:|---:|---:|"]
        for r in v["sizes"]:
            lines.append(f"| {r['size']} | {r['threads']} | {_f(r['seconds_per_epoch'])} | {_f(r['ms_per_frame'], 1)} | "
                         f"{_f(r['default_fit_1000_frames_minutes'], 1)} |")
    return "\n".join(lines) + "\n"


ISSUE17_BEFORE = {  # quoted from issue 17 (2-core machine, 240 frames of 512 px in, 256 px out, 1 worker)
    "paper VAE, 256 px": "0.26 (27 vs 106 frames/s; 2 workers 28 frames/s)",
}


def _ceiling_markdown(c: dict, e2e: dict | None) -> list[str]:
    scaling = (e2e or {}).get("scaling_2_over_1") or {}
    by_scheme = {k.split(",")[0]: v for k, v in scaling.items()}
    lines = ["", "## 0b. The ceiling of 2 workers: per-frame work alone, no start-up, no output files", "",
             f"Run of {c['date']} on {c['machine']['cpu_model']}, load average "
             f"{[round(x, 2) for x in c['load_at_start']]} at start, "
             f"{c['seconds']:.0f} s: `python benchmarks/scaling_ceiling.py --frames {c['legs'][0]['frames']} "
             f"--rounds {c['rounds']}`. Two processes started and warmed up before the clock run the batch "
             "worker's own code (decode from the page cache, the scheme, PNG / .npy encoding, SHA-256, naming) "
             "with an output writer that drops the bytes; one process does all frames, or two do half each, "
             "rounds alternating. Beside it, `obfuscate`'s 2 / 1 ratio from section 0 (whole command).", "",
             "| leg | 2 / 1, best / best | 2 / 1, each round: median [min-max] | CPU ms per frame, 1 / 2 workers "
             "| `obfuscate` 2 / 1 (section 0): best / best, round median |",
             "|---|---:|---:|---:|---:|"]
    for r in c["legs"]:
        s = by_scheme.get(r["leg"])
        cli = f"{_f(s['obfuscate'])}, {_f(s['obfuscate_round_median'])}" if s and "obfuscate_round_median" in s else ""
        lines.append(f"| {r['leg']} | {_f(r['ratio_best'])} | {_f(r['ratio_round_median'])} "
                     f"[{_f(r['ratio_round_min'])}-{_f(r['ratio_round_max'])}] | {_f(r['ms_per_frame_1'])} / "
                     f"{_f(r['ms_per_frame_2'])} | {cli} |")
    return lines


def _e2e_markdown(e: dict, *, extra: bool = False) -> list[str]:
    m = e["machine"]
    prev_when = f" ({e['previous']['date'][:16]})" if e.get("previous") else ""
    title = (f"### 0a. {e.get('title') or 'Another run of the same benchmark'}" if extra else
             "## 0. `medcloak obfuscate` end to end vs the plain Pillow loop (issue 17)")
    lines = ["", title, "",
             f"Run of {e['date']} on {m['cpu_model']}, {m['usable_cores']} usable cores, load average "
             f"{e['load_at_start']} at start and {e['load_at_end']} at the end "
             "(**other jobs shared the cores unless the load is below 0.5**; 2-worker figures need 2 free cores); "
             f"{e['seconds']:.0f} s in all. Inputs: {e['input']['files']} files, 512x512 8-bit PNG "
             f"({e['input']['source']}). *plain* = `Image.open(p).convert(\"L\")` [+ `.resize((256, 256), "
             "Image.BILINEAR)`] + `.save(out)` in a fresh Python process; *obfuscate* = `python -m medcloak obfuscate "
             "IN OUT --key K --workers W ...` (start-up, SHA-256s, names file and manifest inside the clock). The VAE "
             "(fitted at 128 px, run at 256 px) is compared with plain at 256 px; the network-free schemes keep the "
             "512 px size and are compared with plain without the resize. obfuscate writes PNGs with its default "
             "`--png fast` (zlib level 1; the same pixels as `--png compat`, the earlier bytes). BEFORE rows run the same command on the "
             "code before issue 17, in the same run. Best of "
             f"{e['repeats']} alternating run(s)" + (
                 "; a leg's 1- and 2-worker runs interleave (same minutes), the disk is synced before every "
                 "clock starts, and outputs are kept until the end (deleting 1,000 files made the next run's file "
                 "creations slower on this no-journal ext4: freed inodes are skipped for 60-300 s)"
                 if e.get("interleaved") else "") + (
                 f"; the 2 / 1 worker ratios use {e['scaling_repeats']} more round(s) of obfuscate alone, 1 and 2 "
                 "workers interleaved" if e.get("scaling_repeats") else "") + ".", "",
             "| leg | workers | frames | plain fps | obfuscate fps | obfuscate / plain | load (1 min) | "
             f"ratio in the previous run{prev_when} | ratio before (issue 17) |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in e["legs"]:
        old = ISSUE17_BEFORE.get(r["leg"], "") if r.get("workers") == 1 else ""
        prev = (e.get("previous") or {}).get("ratios", {}).get(f"{r['leg']} | {r.get('workers', '')}")
        lines.append(f"| {r['leg']} | {r.get('workers', '')} | {r['frames']} | {_f(r['plain_fps'], 1)} | "
                     f"{_f(r['obfuscate_fps'], 1)} | **{_f(r['ratio'])}** | {r['obfuscate']['load_before'][0]} | "
                     f"{'' if prev is None else _f(prev)} | {old} |")
    lines += ["", "Targets: >= 0.9 for the map and every network-free scheme, >= 0.5 for the VAE at 256 px "
              "(1 worker, 1,000 frames); 2 workers >= 1.8 x 1 worker.", "",
              f"| leg | plain 2 / 1 workers | obfuscate 2 / 1 workers (best / best) | obfuscate, each round's 2 / 1: "
              f"median [min-max] | obfuscate 2 / 1 in the previous run{prev_when} "
              "| obfuscate runs, s, in round order: 1 worker / 2 workers |",
              "|---|---:|---:|---:|---:|---|"]
    prev_scaling = (e.get("previous") or {}).get("scaling_2_over_1") or {}
    runs = {(r["leg"], r.get("workers")): r.get("obfuscate_rounds") or r["obfuscate"].get("all_seconds", [])
            for r in e["legs"]}
    for k, v in e["scaling_2_over_1"].items():
        p = prev_scaling.get(k, {}).get("obfuscate")
        spread = " / ".join(", ".join(f"{x:.2f}" for x in runs.get((k, w), [])) for w in (1, 2))
        rounds = (f"{_f(v['obfuscate_round_median'])} [{_f(v['obfuscate_round_min'])}-"
                  f"{_f(v['obfuscate_round_max'])}], {v['obfuscate_rounds']} rounds"
                  if "obfuscate_round_median" in v else "")
        lines.append(f"| {k} | {_f(v['plain'])} | {_f(v['obfuscate'])} | {rounds} | {'' if p is None else _f(p)} "
                     f"| {spread} |")
    ctl = {k: v for k, v in e["scaling_2_over_1"].items() if "control_round_median" in v}
    if ctl:
        c = e.get("control") or {}
        lines += ["", "The machine's own 2 / 1, measured beside every round (a control, not medcloak): "
                  f"{c.get('units', '?')} units of numpy look-ups, zlib level 1 and Python arithmetic on a 512 px frame "
                  f"(about {c.get('seconds', 4.0):g} s in one process), in fresh interpreters, no files; or the same units split over 2 "
                  "processes started together. Each round's control ran right after that "
                  "round's obfuscate runs. *obfuscate / control*: each round's obfuscate 2 / 1 over that round's "
                  "control 2 / 1, median: 1.00 means obfuscate scaled as well as pure arithmetic did in the same "
                  "minutes.", "",
                  "| leg | control 2 / 1, each round: median [min-max] | control rounds >= 1.8 | control best / best "
                  "| obfuscate 2 / 1, round median | obfuscate / control, median of rounds |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {k} | {_f(v['control_round_median'])} [{_f(v['control_round_min'])}-{_f(v['control_round_max'])}]"
                  f" | {v['control_rounds_at_1_8']} of {v['obfuscate_rounds']} | {_f(v['control_best'])} | "
                  f"{_f(v['obfuscate_round_median'])} | {_f(v['obfuscate_over_control_median'])} |"
                  for k, v in ctl.items()]
    cpu = {k: v for k, v in e["scaling_2_over_1"].items() if "cpu_bound" in v}
    if cpu:
        lines += ["", "CPU time of the obfuscate rounds (user + system of the command and its workers, "
                  "`RUSAGE_CHILDREN`). *cores, 1 worker*: CPU / wall of the 1-worker runs (median); above 1 where "
                  "the writer threads and the kernel's write-back ran on the idle second core. *CPU 2 / 1*: the "
                  "2-worker run's CPU over the 1-worker run's (median of rounds). *fixed*: a one-file run, best of 3 "
                  "(start-up, listing, manifest, exit). *CPU bound* = T1 / (fixed + (C1 - fixed) / 2) for the best "
                  "1-worker round (T1 s wall, C1 s CPU): the 2 / 1 ratio two cores could reach if a 2-worker run "
                  "needed no more CPU than one worker and only the fixed part stayed serial. A model, not a "
                  "limit: CPU time drifts with the machine like wall time (a leg whose CPU 2 / 1 is below 1 spent "
                  "less CPU with two workers than with one, and such a leg can beat its figure); read it as how much "
                  "of the gap the 1-worker run's use of the second core explains.", "",
                  "| leg | cores, 1 worker | CPU 2 / 1 | fixed, s | CPU bound of 2 / 1 | obfuscate 2 / 1 (best / best) |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {k} | {_f(v['cores_1'])} | {_f(v['cpu_2_over_1'])} | {_f(v['fixed_seconds'])} | "
                  f"{_f(v['cpu_bound'])} | {_f(v['obfuscate'])} |" for k, v in cpu.items()]
    st = e["stages"]
    lines += ["", f"Per-frame cost, ms (one process, one torch thread, {st['frames']} frames; the VAE path sums to "
              f"{_f(st['vae_path_total_ms'], 1)} ms, the plain 256 px loop to {_f(st['plain_256_total_ms'], 1)} ms; "
              "PNG kB " + ", ".join(f"{k} {v:.0f}" for k, v in st["png_kB"].items()) + "):", "",
              "| stage | ms / frame |", "|---|---:|"]
    lines += [f"| {k} | {_f(v)} |" for k, v in st["ms_per_frame"].items()]
    f = e["vae_flops"]
    lines += ["", f"VAE forward pass at 256 px: {f['vae_gflop_per_frame']:.3f} GFLOP per frame "
              f"(`torch.utils.flop_counter`), {_f(f['vae_ms_per_frame'])} ms -> {_f(f['vae_gflop_per_s'], 1)} GFLOP/s "
              f"= **{100 * f['vae_share_of_peak']:.0f} %** of the peak of one thread "
              f"({_f(f['peak_matmul_gflop_per_s_1_thread'], 1)} GFLOP/s, 2048x2048 float32 matmul, best of 5); "
              "target >= 50 %."]
    return lines


def merge(doc: dict, old: dict, names: list[str]) -> dict:
    """Keep the benchmarks of ``old`` (an earlier results.json) that this run (``names``) did not
    measure, each with the date and machine it was measured on; a new ``e2e`` run also gets the old
    ratios beside it (``previous``)."""
    # extra runs of the end-to-end benchmark (e2e_<what>) go with a new e2e run: its legs replace them
    stale = set(names) | ({k for k in old["benchmarks"] if k.startswith("e2e_")} if "e2e" in names else set())
    doc["merged_from"] = {"date": old.get("date"), "benchmarks": sorted(set(old["benchmarks"]) - stale),
                          "machine": (old.get("machine") or {}).get("cpu_model")}
    # when each kept benchmark was measured: a chain of merges must not restamp it with the date
    # of the run that only carried it along
    old_mf = old.get("merged_from") or {}
    old_measured = old.get("measured") or {}
    carried = {"date": old_mf.get("date"), "machine": old_mf.get("machine")}  # a results.json before "measured"
    for k in doc["merged_from"]["benchmarks"]:
        doc["measured"][k] = old_measured.get(k) or (carried if k in old_mf.get("benchmarks", []) else
                                                     {"date": old.get("date"), "machine": doc["merged_from"]["machine"]})
    if "e2e" in names and "e2e" in old["benchmarks"] and "e2e" in doc["benchmarks"]:  # the old ratios, beside the new
        o = old["benchmarks"]["e2e"]
        doc["benchmarks"]["e2e"]["previous"] = {
            "date": o.get("date"), "ratios": {f"{r['leg']} | {r.get('workers', '')}": r["ratio"] for r in o["legs"]},
            "scaling_2_over_1": o.get("scaling_2_over_1")}
    doc["benchmarks"] = {**{k: v for k, v in old["benchmarks"].items() if k not in stale}, **doc["benchmarks"]}
    return doc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: proves every script works, numbers meaningless")
    ap.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="run only these benchmarks")
    ap.add_argument("--out-dir", default=str(HERE), help="where results.json and RESULTS.md go (default benchmarks/)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other benchmarks of the existing results.json (each keeps its own run's figures)")
    args = ap.parse_args(argv)
    from medcloak.io.atomic import atomic_write_text

    names = args.only or list(SCRIPTS)
    started = time.perf_counter()
    doc = {"date": now(), "machine": machine(), "quick": args.quick, "benchmarks": {}}
    with tempfile.TemporaryDirectory(prefix="medcloak-bench-all-") as tmp:
        doc["benchmarks"] = run(names, quick=args.quick, tmp=Path(tmp))
    doc["seconds"] = time.perf_counter() - started
    out = Path(args.out_dir)
    here = {"date": doc["date"], "machine": (doc.get("machine") or {}).get("cpu_model")}
    doc["measured"] = {k: here for k in doc["benchmarks"]}
    if args.merge and (out / "results.json").exists():
        merge(doc, json.loads((out / "results.json").read_text()), names)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")
    md = markdown(doc)
    atomic_write_text(out / "RESULTS.md", md)
    print("\n" + "=" * 100 + "\n" + md + "=" * 100)
    print(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'}")
    return doc


if __name__ == "__main__":
    main()
