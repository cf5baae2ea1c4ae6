"""VAE fitting time per epoch at 128 and 256 px, default VAEConfig (issue "bench", 4).

Generates ``--n`` semi-synthetic frames at the largest size (others are resized from them with
:func:`medcloak.io.arrays.resize`) and trains the VAE
(:func:`medcloak.obfuscation.vae.train_vae`, default :class:`~medcloak.obfuscation.vae.VAEConfig`
except ``epochs``) without validation, on one torch thread and on all usable cores. Reported
per size and thread count: seconds per epoch (fastest epoch), milliseconds per training frame,
and the implied time of a full default fit (``VAEConfig().epochs`` epochs) on 1,000 frames.
On a shared machine the multi-thread figure suffers most (OpenMP threads wait for each other
whenever one is descheduled).

Usage::

    python benchmarks/vae_fit_time.py --out vae_fit.json
    python benchmarks/vae_fit_time.py --sizes 32 --n 16 --epochs 1    # smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import input_frames, machine, now, print_rows, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--n", type=int, default=64, help="training frames")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 0], help="torch thread counts (0: all usable cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)

    import torch

    from medcloak.io.arrays import resize
    from medcloak.obfuscation.vae import VAEConfig, train_vae

    started = time.perf_counter()
    top = max(args.sizes)
    frames, source = input_frames(args.n, top, seed=args.seed)
    default = VAEConfig()
    config = replace(default, epochs=args.epochs)
    thread_counts = [t or len(os.sched_getaffinity(0)) for t in args.threads]
    print(f"VAE fit time: {args.n} frames ({source}), sizes {args.sizes}, {args.epochs} epochs, "
          f"torch threads {thread_counts}", flush=True)
    rows = []
    saved_threads = torch.get_num_threads()
    try:
        for size in args.sizes:
            x = frames if size == top else np.stack([resize(f, size) for f in frames])
            for threads in thread_counts:
                torch.set_num_threads(threads)
                _, history = train_vae(x, None, config, progress=False)
                secs = [h["seconds"] for h in history]
                per_epoch = float(min(secs))
                row = {"size": size, "threads": threads, "frames": args.n, "epoch_seconds": secs,
                       "seconds_per_epoch": per_epoch, "ms_per_frame": 1e3 * per_epoch / args.n,
                       "default_fit_1000_frames_minutes": per_epoch / args.n * 1000 * default.epochs / 60}
                rows.append(row)
                print(f"  {size:4d} px, {threads} thread(s): {per_epoch:.2f} s/epoch "
                      f"({row['ms_per_frame']:.1f} ms/frame)", flush=True)
    finally:
        torch.set_num_threads(saved_threads)
    doc = {"benchmark": "vae_fit_time", "date": now(), "machine": machine(), "threads": thread_counts,
           "config": config.to_dict(), "default_epochs": default.epochs, "input_source": source, "sizes": rows,
           "seconds": time.perf_counter() - started}
    report(doc)
    if args.out:
        write_json(args.out, doc)
    return doc


def report(doc: dict) -> None:
    rows = [[r["size"], r["threads"], r["frames"], r["seconds_per_epoch"], r["ms_per_frame"],
             r["default_fit_1000_frames_minutes"]] for r in doc["sizes"]]
    print_rows(f"VAE fitting (default VAEConfig, batch {doc['config']['batch_size']}; fastest epoch)",
               ["px", "threads", "frames", "s/epoch", "ms/frame", f"min for {doc['default_epochs']} epochs x 1000 frames"],
               rows)


if __name__ == "__main__":
    main()
