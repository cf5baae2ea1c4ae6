"""The [target] search, stage 1: which settings can the cloud learn at all? (a utility screen)

The target asks for view accuracy >= 0.90 on obfuscated frames AND attacks that gain nothing.
Every setting of the measured frontier (docs/results/frontier-64.*) stayed at chance on the view
task, so utility is the binding constraint: this screen trains the cloud's classifier on each
candidate setting (same frames, patient-wise split, one recipe object for original and
obfuscated, one key per setting) and writes a CSV. Settings that reach the utility bar go on to
stage 2, every attack of the study plus the scheme-specific ones under >= 5 victim keys, with

    medcloak compare --preset docs/results/target-search-64.toml --out runs/target-search

(the TOML lists the survivors; see docs/results/target-search.md for what was run and found).

    python benchmarks/target_search.py --out docs/results/target-screen-64.csv [--only LABEL,...]

Costs about 1 min per setting on 2 CPU cores (64 px, 256 frames, at most 40 epochs).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

#: (label, scheme, scheme options, classifier family, classifier options): the levers of [target].
CANDIDATES = [
    ("paper L256", "paper", {"levels": 256}, "small", {}),
    ("paper L16 onehot", "paper", {"levels": 16}, "small", {"input_mode": "level-embedding", "levels": 16}),
    ("paper L8 onehot", "paper", {"levels": 8}, "small", {"input_mode": "level-embedding", "levels": 8}),
    ("map only L16 onehot", "paper", {"levels": 16, "order": "map-only"}, "small",
     {"input_mode": "level-embedding", "levels": 16}),
    ("map only L8 onehot", "paper", {"levels": 8, "order": "map-only"}, "small",
     {"input_mode": "level-embedding", "levels": 8}),
    ("map only L4 onehot", "paper", {"levels": 4, "order": "map-only"}, "small",
     {"input_mode": "level-embedding", "levels": 4}),
    ("blur s0.5", "blur", {"sigma": 0.5}, "small", {}),
    ("blur s1", "blur", {"sigma": 1.0}, "small", {}),
    ("blur s1.5", "blur", {"sigma": 1.5}, "small", {}),
    ("pixelate b4", "pixelate", {"cell": 4}, "small", {}),
    ("pixelate b4 eps4", "pixelate", {"cell": 4, "epsilon": 4.0}, "small", {}),
    ("blockwise p16", "blockwise", {"block": 16}, "small", {}),
    ("blockwise p8", "blockwise", {"block": 8}, "small", {}),
    ("blockwise+map p16 L16 onehot", "blockwise", {"block": 16, "levels": 16}, "small",
     {"input_mode": "level-embedding", "levels": 16}),
    ("svd", "svd", {}, "small", {}),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="CSV to write (a .json beside it)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--patience", type=int, default=12)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--only", default="", help="comma-separated labels (default: all)")
    args = ap.parse_args(argv)

    import torch

    from medcloak.keys import Key
    from medcloak.learn.compare import frameset_splits, train_and_evaluate
    from medcloak.learn.models import ClassifierConfig
    from medcloak.learn.recipe import Recipe
    from medcloak.obfuscation.scheme import make_scheme
    from medcloak.study.config import preset
    from medcloak.study.compare import Setting
    from medcloak.synth import generate

    torch.set_num_threads(1)
    base = preset("demo")
    fs = generate(args.frames, size=args.size, seed=0).split_by_patient(seed=0)
    recipe = Recipe(max_epochs=args.epochs, patience=args.patience, batch_size=base.batch_size, lr=base.lr, seed=0)
    key = Key(hashlib.sha256(b"medcloak target-search screen key (not a secret)").digest())  # reproducible
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    t = time.perf_counter()
    res, met = train_and_evaluate(frameset_splits(fs), recipe=recipe, model="small", n_boot=1000, seed=0,
                                  progress=False)
    a = met["accuracy"]
    rows = [{"label": "originals", "scheme": "none", "options": "{}", "classifier": "small", "classifier_options": "{}",
             "view_acc": a["value"], "view_acc_low": a["ci_low"], "view_acc_high": a["ci_high"], "epochs": res.epochs,
             "best_epoch": res.best_epoch, "seconds": round(time.perf_counter() - t, 1)}]
    print(f"{'originals':<30} {a['value']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}] ({res.epochs} ep)", flush=True)
    for label, scheme_name, opts, family, copts in CANDIDATES:
        if only and label not in only:
            continue
        cfg = Setting(label, scheme_name, opts, family, copts).study_config(base)
        t = time.perf_counter()
        scheme = make_scheme(cfg.scheme, cfg.scheme_config())
        options = {"val_target": fs.subset("val").clean} if cfg.scheme == "paper" else {}
        scheme.fit(fs.subset("train"), key, val=fs.subset("val"), progress=False, **options)
        obf = np.asarray(scheme.apply(fs.frames), dtype=np.float32)
        model = ClassifierConfig(model=family, **copts)
        res, met = train_and_evaluate(frameset_splits(fs.with_frames(obf)), recipe=recipe, model=model,
                                      n_boot=1000, seed=0, progress=False)
        a = met["accuracy"]
        rows.append({"label": label, "scheme": scheme_name, "options": json.dumps(opts, sort_keys=True),
                     "classifier": family, "classifier_options": json.dumps(copts, sort_keys=True),
                     "view_acc": a["value"], "view_acc_low": a["ci_low"], "view_acc_high": a["ci_high"],
                     "epochs": res.epochs, "best_epoch": res.best_epoch,
                     "seconds": round(time.perf_counter() - t, 1)})
        print(f"{label:<30} {a['value']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}] ({res.epochs} ep, "
              f"{rows[-1]['seconds']} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    meta = {"frames": args.frames, "size": args.size, "recipe": recipe.to_dict(), "split_seed": 0, "keys": 1,
            "command": "python benchmarks/target_search.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
