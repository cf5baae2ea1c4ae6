"""Utility of each comparison setting with a longer recipe: the view task, original vs obfuscated.

`medcloak compare --preset frontier` trains every family with the demo study's short recipe (at most
15 epochs, patience 5), with which the ViT and MLP families did not learn even the originals. This
reruns only the utility comparison of chosen settings on the comparison's own cached frames and
releases (nothing refitted, same split, same model family on both sides, ONE recipe object for
both), with a longer recipe, and writes a CSV.

    python benchmarks/frontier_utility.py RUN_DIR --out docs/results/frontier-64-utility-long.csv \
        --epochs 60 --patience 15 [--only "blockwise p8,svd"]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a `medcloak compare --preset frontier` output folder")
    ap.add_argument("--out", type=Path, required=True, help="CSV to write")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=15)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--only", default="", help="comma-separated setting labels (default: every non-CNN setting)")
    args = ap.parse_args(argv)

    import torch

    from medcloak.io.frameset import FrameSet
    from medcloak.learn.compare import compare, frameset_splits
    from medcloak.learn.recipe import Recipe
    from medcloak.study.compare import compare_preset

    torch.set_num_threads(1)
    config = compare_preset("frontier")
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rows = []
    for s in config.settings:
        if (only and s.label not in only) or (not only and s.classifier in ("small", "wide", "densenet")):
            continue
        sdir = args.run_dir / "settings" / s.slug
        data = FrameSet.load(sdir / "stages" / "data" / "frameset.npz")
        with np.load(sdir / "stages" / "obfuscate" / "obfuscated.npz", allow_pickle=False) as z:
            obf = z["obfuscated"]
        cfg = s.study_config(config.base)
        recipe = Recipe(max_epochs=args.epochs, patience=args.patience, lr=args.lr, batch_size=cfg.batch_size,
                        seed=cfg.seed)
        t = time.perf_counter()
        cmp = compare(frameset_splits(data), frameset_splits(data.with_frames(obf)), recipe=recipe,
                      model=cfg.classifier_config(), n_boot=1000, seed=cfg.seed, progress=False)
        row = {"label": s.label, "scheme": s.scheme, "classifier": s.classifier,
               "classifier_options": s.classifier_options, "max_epochs": args.epochs, "patience": args.patience,
               "seconds": round(time.perf_counter() - t, 1)}
        for side, res, met in (("original", cmp.original, cmp.metrics_original),
                               ("obfuscated", cmp.obfuscated, cmp.metrics_obfuscated)):
            a = met["accuracy"]
            row.update({f"{side}_acc": a["value"], f"{side}_acc_low": a["ci_low"], f"{side}_acc_high": a["ci_high"],
                        f"{side}_epochs": res.epochs, f"{side}_best_epoch": res.best_epoch})
        rows.append(row)
        print(f"{s.label:<24} original {row['original_acc']:.3f} ({row['original_epochs']} ep)  obfuscated "
              f"{row['obfuscated_acc']:.3f} [{row['obfuscated_acc_low']:.3f}, {row['obfuscated_acc_high']:.3f}] "
              f"({row['obfuscated_epochs']} ep)  {row['seconds']} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
