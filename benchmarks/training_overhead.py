"""Cloud training overhead: epoch time on obfuscated vs original frames (issue "bench", 3).

Generates semi-synthetic frames (LCA vs RCA), splits them patient-wise
(:func:`medcloak.io.dataset.split_patients`, 80 / 20 % train / val), obfuscates them with an
obfuscator fitted for 5 epochs on the training frames (default VAE architecture, ``vae-then-map``, 256 levels), and trains
the cloud's classifier (:func:`medcloak.learn.train_classifier`, ``"small"`` model) with **one
and the same** :class:`~medcloak.learn.recipe.Recipe` object on the original and on the
obfuscated frames, alternating, ``--repeats`` times each, for a fixed number of epochs (early
stopping off). The epoch time of a side is the fastest of its epochs after the first (warm-up)
over all its runs (the minimum is the estimate least disturbed by other load on a shared
machine; the medians are in the JSON too). The ratio obfuscated / original is the overhead
(target <= 1.05): the cloud trains an ordinary network on ordinary float frames, so it should be 1.

One torch thread by default: on a shared machine several OpenMP threads wait for each other
whenever one is descheduled (measured here: 2 threads under a load of 4 made VAE training 7x
slower than 1 thread), which would swamp the ratio; ``--threads`` changes it.

Usage::

    python benchmarks/training_overhead.py --out training.json
    python benchmarks/training_overhead.py --n 48 --size 32 --epochs 2 --repeats 1     # smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fitted_obfuscator, machine, now, print_rows, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="frames to generate (train + val)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="small")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: all usable cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)

    import torch

    threads = args.threads or len(os.sched_getaffinity(0))
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(args, threads)
    finally:
        torch.set_num_threads(saved_threads)


def _run(args, threads: int) -> dict:
    from medcloak.io.dataset import Record, split_patients
    from medcloak.learn import train_classifier
    from medcloak.learn.recipe import Recipe
    from medcloak.synth import generate

    started = time.perf_counter()
    data = generate(args.n, size=args.size, seed=args.seed)
    recs = split_patients([Record(f"{i}.png", lab, pid) for i, (lab, pid) in
                           enumerate(zip(data.labels, data.patient_ids))], seed=args.seed, fractions=(0.8, 0.2, 0.0))
    split = np.array([r.split for r in recs])
    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    labels = np.array(data.labels)
    obf = fitted_obfuscator(data.frames[tr], seed=args.seed)
    t0 = time.perf_counter()
    obfuscated = obf.obfuscate(data.frames)
    obf_s = time.perf_counter() - t0
    sets = {"original": data.frames, "obfuscated": obfuscated}
    recipe = Recipe(max_epochs=args.epochs, patience=args.epochs + 1, lr_patience=args.epochs + 1, seed=args.seed)
    print(f"training overhead: {len(tr)} train / {len(va)} val frames at {args.size}px, model {args.model}, "
          f"{args.epochs} epochs x {args.repeats} repeats, {threads} torch threads", flush=True)
    runs: dict[str, list[dict]] = {k: [] for k in sets}
    for r in range(args.repeats):
        for name in sets if r % 2 == 0 else reversed(list(sets)):
            x = sets[name]
            res = train_classifier(x[tr], labels[tr], x[va], labels[va], recipe=recipe, model=args.model,
                                   progress=False)
            secs = [row["seconds"] for row in res.history]
            steady = secs[1:] if len(secs) > 1 else secs
            runs[name].append({"epoch_seconds": secs, "median_epoch_seconds": float(np.median(steady)),
                               "min_epoch_seconds": float(min(steady)), "final_val_acc": res.history[-1]["val_acc"]})
            print(f"  {name:10s} repeat {r}: epochs {', '.join(f'{x:.2f}' for x in secs)} s", flush=True)
    best = {k: min(run["min_epoch_seconds"] for run in v) for k, v in runs.items()}
    medians = {k: float(np.median([run["median_epoch_seconds"] for run in v])) for k, v in runs.items()}
    doc = {
        "benchmark": "training_overhead", "date": now(), "machine": machine(), "threads": threads,
        "frames": {"train": int(len(tr)), "val": int(len(va)), "size": args.size}, "model": args.model,
        "recipe": recipe.to_dict() if hasattr(recipe, "to_dict") else repr(recipe),
        "obfuscation_seconds_all_frames": obf_s, "runs": runs,
        "epoch_seconds": best, "ratio_obfuscated_over_original": best["obfuscated"] / best["original"],
        "median_epoch_seconds": medians,
        "ratio_of_medians": medians["obfuscated"] / medians["original"],
        "seconds": time.perf_counter() - started,
    }
    report(doc)
    if args.out:
        write_json(args.out, doc)
    return doc


def report(doc: dict) -> None:
    rows = [[k, doc["epoch_seconds"][k], doc["median_epoch_seconds"][k]] for k in ("original", "obfuscated")]
    print_rows(f"Classifier epoch time ({doc['frames']['train']} frames at {doc['frames']['size']}px, "
               f"{doc['threads']} threads); ratio obfuscated/original {doc['ratio_obfuscated_over_original']:.3f}",
               ["frames", "s/epoch (fastest)", "s/epoch (median)"], rows)


if __name__ == "__main__":
    main()
