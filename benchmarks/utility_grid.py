"""The utility grid (issue "utility", items 4-5): accuracy, SSIM and direct-view Dice per setting.

For every setting of :func:`medcloak.study.grid.default_configs` (originals; the keyed map at
L in {256, 64, 16} after each of two VAE settings and alone; two classifier sizes; the
level-embedding lever), one classifier is trained with the ONE default
:class:`~medcloak.learn.recipe.Recipe` on a patient-wise split of the semi-synthetic LCA/RCA set,
and the row records test accuracy (95 % bootstrap CI), ROC-AUC, SSIM(original, obfuscated) and
the T0 direct-view vessel Dice: a segmentation U-Net trained on the ATTACKER's own frames and
masks (another seed: other patients), obfuscated with the same public setting under many of the
attacker's own keys (:func:`medcloak.attacks.direct_view.train_direct_view`), applied to the
victim's obfuscated test frames, scored at the threshold the attacker chose on its own held-out
frames, catheter pixels ignored. T0 depends on the obfuscation only, so rows that differ only in
the classifier share one T0.

For ``vae-then-map`` the attacker fits its OWN VAE of the same public setting on its own frames;
with the mean latent the pipeline's output is ``map(vae_stage(x))``, so T0 trains on the
attacker's VAE-stage frames mapped under its keys (exactly what the pipeline would output).

Run (writes CSV/JSON/samples to --out-dir and the figure to --fig; rows are appended as they
finish, so an interrupted run keeps what it measured)::

    MEDCLOAK_DEVICE=auto .venv/bin/python benchmarks/utility_grid.py \\
        --out-dir docs/results --fig docs/img/utility-grid-128.png
    .venv/bin/python benchmarks/utility_grid.py --plot-only --out-dir docs/results \\
        --fig docs/img/utility-grid-128.png          # redraw the figure from the CSV

On 2 CPU cores the 128 px grid takes hours; it was run on a GPU (see docs/results/README or
the JSON's ``machine``). ``--quick`` is a 32 px smoke run for checking the script.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024, help="victim frames")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-attacker", type=int, default=512, help="attacker's own frames for T0")
    p.add_argument("--vae-epochs", type=int, default=20)
    p.add_argument("--t0-steps", type=int, default=1500)
    p.add_argument("--t0-copies", type=int, default=4)
    p.add_argument("--levels", default="256,64,16")
    p.add_argument("--models", default="small,wide")
    p.add_argument("--no-embedding", action="store_true", help="skip the level-embedding rows")
    p.add_argument("--latents", default="mean", help="VAE latents: mean, sampled or mean,sampled")
    p.add_argument("--select", default=None, help="keep only settings whose name matches this regex "
                   "(originals are always kept)")
    p.add_argument("--recipe", action="append", default=[], metavar="FIELD=JSON",
                   help="override a Recipe field for BOTH sides, e.g. --recipe patience=12 (repeatable)")
    p.add_argument("--no-t0", action="store_true", help="skip the T0 direct-view attack (utility only)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--out-dir", default="docs/results")
    p.add_argument("--name", default=None, help="file stem (default utility-grid-SIZE)")
    p.add_argument("--fig", default=None, help="figure PNG (default OUT_DIR/utility-grid-SIZE.png)")
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from the CSV and samples")
    p.add_argument("--quick", action="store_true", help="32 px smoke run (few frames, short schedules)")
    return p.parse_args(argv)


def _read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv=None) -> int:
    args = _args(argv)
    if args.quick:
        args.n, args.size, args.n_attacker, args.vae_epochs, args.t0_steps = 96, 32, 48, 2, 60
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"utility-grid-{args.size}"
    csv_path, json_path, npz_path = out / f"{stem}.csv", out / f"{stem}.json", out / f"{stem}-samples.npz"
    fig_path = Path(args.fig) if args.fig else out / f"{stem}.png"

    from medcloak.report.utility_figure import privacy_utility_figure

    title = (f"Utility vs privacy, semi-synthetic LCA/RCA, {args.size} px "
             f"(one recipe; T0 = attacker's segmentation net)")
    if args.plot_only:
        rows = _read_rows(csv_path)
        samples = dict(np.load(npz_path)) if npz_path.exists() else None
        privacy_utility_figure(rows, fig_path, samples=samples, title=title)
        print(f"figure: {fig_path} ({len(rows)} rows)")
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from medcloak.attacks.direct_view import score_direct_view, train_direct_view
    from medcloak.attacks.reconstruction import MapScheme, attacker_key
    from medcloak.attacks.unet import NetConfig
    from medcloak.device import training_device
    from medcloak.study.grid import default_configs, default_vae_settings, study_key, utility_grid
    from medcloak.learn.recipe import Recipe
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
    from medcloak.synth import generate

    t_start = time.perf_counter()
    device = str(training_device())
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "torch": torch.__version__, "device": device,
               "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
               "threads": torch.get_num_threads()}
    print(f"[grid] device {device}; generating {args.n} victim + {args.n_attacker} attacker frames "
          f"at {args.size} px", file=sys.stderr, flush=True)
    victim = generate(args.n, size=args.size, seed=args.seed, progress=False)
    attacker = generate(args.n_attacker, size=args.size, seed=7919, progress=False)
    vae_settings = default_vae_settings(epochs=args.vae_epochs)
    levels = tuple(int(v) for v in args.levels.split(","))
    models = tuple(args.models.split(","))
    configs = default_configs(levels=levels, vaes=tuple(vae_settings), models=models,
                              embedding=not args.no_embedding, latents=tuple(args.latents.split(",")))
    if args.select:
        import re

        configs = [c for c in configs if c.order == "original" or re.search(args.select, c.name)]
    # T0 first needs the obfuscated test frames, so order the work: cheap rows first is not
    # needed; keep the default order (originals, then each model's VAE and map-only rows).
    net = NetConfig(channels=(16, 32, 64), steps=args.t0_steps, lr=3e-3, batch_size=16)
    attacker_stage: dict[tuple, np.ndarray] = {}
    t0_cache: dict[tuple, dict] = {}

    attacker_vae: dict[str, Obfuscator] = {}

    def attacker_frames(vae: str | None, latent: str) -> np.ndarray:
        """The attacker's own frames after its own VAE of the public setting. With the sampled
        latent the noise comes from attacker key 0 (one draw per frame, then mapped under many
        keys): a simplification that can only make T0 weaker than an attacker who redraws it."""
        if vae is None:
            return attacker.frames
        if vae not in attacker_vae:
            o = Obfuscator(attacker_key(7919, 0), config=ObfuscationConfig(levels=256, order="vae-then-map",
                                                                           vae=vae_settings[vae]))
            n_val = max(1, len(attacker.frames) // 10)
            o.fit(attacker.frames[n_val:], attacker.frames[:n_val], progress=False)
            attacker_vae[vae] = o
        if (vae, latent) not in attacker_stage:
            attacker_stage[(vae, latent)] = attacker_vae[vae].with_options(latent=latent).vae_stage(attacker.frames)
        return attacker_stage[(vae, latent)]

    def direct_view(cfg, obf_test, masks_test, ignore_test) -> float:
        k = (cfg.order, cfg.levels, cfg.vae, cfg.latent)
        if k not in t0_cache:
            t = time.perf_counter()
            frames = attacker_frames(cfg.vae, cfg.latent)
            scheme = MapScheme(levels=int(cfg.levels))
            dv = train_direct_view(scheme, frames, attacker.masks, net=net, copies=args.t0_copies, seed=7919,
                                   fitted=scheme.fit(frames, seed=7919), progress=False)
            sc = score_direct_view(dv, obf_test, masks_test, ignore=ignore_test)
            t0_cache[k] = {"victim": sc, "heldout": {k2: v for k2, v in dv.heldout.items() if k2 != "curve"},
                           "threshold": dv.threshold, "seconds": time.perf_counter() - t}
            print(f"[grid] T0 {k}: Dice {sc['dice']:.3f} (held-out {dv.heldout.get('dice', float('nan')):.3f}) "
                  f"{t0_cache[k]['seconds']:.0f} s", file=sys.stderr, flush=True)
        return t0_cache[k]["victim"]["dice"]

    rows: list[dict] = []
    fields: list[str] = []

    def on_row(row: dict) -> None:
        nonlocal fields
        k = (row["order"], row["levels"], row["vae"], row["latent"])
        row = dict(row)
        if k in t0_cache:
            row["t0_ap"] = t0_cache[k]["victim"].get("ap")
            row["t0_heldout_dice"] = t0_cache[k]["heldout"].get("dice")
        rows.append(row)
        if not fields:
            fields = list(row) + [f for f in ("t0_ap", "t0_heldout_dice") if f not in row]
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k2: ("" if v is None else v) for k2, v in r.items()})
        print(json.dumps({k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in row.items()
                          if k2 in ("config", "accuracy", "ssim", "direct_view_dice", "epochs", "mean_epoch_seconds")}),
              flush=True)

    recipe = Recipe()
    for item in args.recipe:
        field, _, value = item.partition("=")
        recipe = recipe.with_(**{field: json.loads(value)})
    samples: dict = {}
    utility_grid(victim, seed=args.seed, recipe=recipe, configs=configs, vae_settings=vae_settings,
                 key=study_key(args.seed), n_boot=1000, direct_view=None if args.no_t0 else direct_view, progress=False,
                 callback=on_row, samples=samples)
    np.savez_compressed(npz_path, **{k: v for k, v in samples.items()})
    meta = {"command": " ".join(sys.argv), "machine": machine, "seconds": time.perf_counter() - t_start,
            "data": {"n": args.n, "size": args.size, "seed": args.seed, "n_attacker": args.n_attacker,
                     "provenance": "semi-synthetic (medcloak.synth)"},
            "recipe": recipe.to_dict(), "vae_settings": {k: v.to_dict() for k, v in vae_settings.items()},
            "t0_net": net.to_dict(), "t0_copies": args.t0_copies,
            "t0": {f"{k[0]}/L{k[1]}/{k[2]}/{k[3]}": v for k, v in t0_cache.items()},
            "targets": {"accuracy": 0.90, "within_points_of_original": 5, "ssim_max": 0.10, "t0_dice_max": 0.30},
            "rows": rows}
    json_path.write_text(json.dumps(meta, indent=1, default=float) + "\n")
    privacy_utility_figure(rows, fig_path, samples=samples, title=title)
    print(f"[grid] {len(rows)} rows in {meta['seconds']:.0f} s -> {csv_path}, {fig_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
