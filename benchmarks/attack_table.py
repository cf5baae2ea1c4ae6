"""The measured attack table for the default obfuscation (VAE, then a keyed 256-level map).

Run by hand (it trains a victim VAE, an attacker VAE and six attack networks)::

    .venv/bin/python benchmarks/attack_table.py --out runs/attack_table          # final: 128x128
    .venv/bin/python benchmarks/attack_table.py --quick --out runs/attack_table_64   # 64x64

Writes ``results.json``, ``results.csv``, ``grid.png``, ``table.md``, ``t0.json`` and
``victim_test.npz`` to ``--out`` and prints the Markdown table: T0-T4 and the prior with SSIM,
PSNR, vessel Dice, re-identification top-1/5 and each score's difference to the prior; T1 over
the number of leaked pairs; then T0's own report (``t0.json``, also ``results.json`` meta
``"t0"``): the threshold the attacker chose on its held-out frames, its held-out curve, and
threshold-free scores (average precision, best-threshold Dice) on its held-out frames and on the
victim's test frames, beside the prevalence (AP of a guess) and the ceiling (hand-made vessel map
of the clean test frames vs the masks).

Default (the final run): 128x128 frames, the DEFAULT obfuscation (``ObfuscationConfig()`` with
the default ``VAEConfig()``, all its epochs), attack U-Nets of (16, 32, 64) channels, T0 with
early stopping on the attacker's held-out Dice (at most ``--t0-steps``). ``--quick`` is the
64x64 development run (VAE of 8 epochs). Timing on 2 shared CPU cores (``--threads 1``, load
~5): ``--quick`` took 666 s wall (T0 145 s, T1 230 s, T2 94 s, T3 112 s, T4 31 s); the 128x128
default is estimated at about one hour (4x pixels for every network step, VAEs of 20 instead of
8 epochs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/attack_table")
    p.add_argument("--quick", action="store_true",
                   help="64x64 development run: --size 64 and a VAE of 8 epochs unless given")
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (default 128; --quick: 64)")
    p.add_argument("--n", type=int, default=384, help="victim frames (8 per patient; a quarter of patients is test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--levels", type=int, default=256)
    p.add_argument("--order", default="vae-then-map", help="obfuscation order (default: the default config's)")
    p.add_argument("--vae-epochs", type=int, default=None, help="default: VAEConfig().epochs (--quick: 8)")
    p.add_argument("--vae-channels", type=int, default=None, help="default: VAEConfig().base_channels")
    p.add_argument("--steps", type=int, default=400, help="optimisation steps of each inverse network")
    p.add_argument("--t0-steps", type=int, default=1500, help="most T0 steps (early stopping may end sooner)")
    p.add_argument("--t0-copies", type=int, default=4, help="keys per attacker frame for T0")
    p.add_argument("--n-attacker", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--threats", default="T0,T1,T2,T3,T4")
    args = p.parse_args(argv)
    size = args.size or (64 if args.quick else 128)
    vae_epochs = args.vae_epochs or (8 if args.quick else None)

    import torch

    torch.set_num_threads(args.threads)
    from unittest import mock

    from medcloak import metrics
    from medcloak.attacks import direct_view
    from medcloak.report.attack_grid import attack_grid
    from medcloak.attacks.runner import AttackConfig, run_attacks, synthetic_victim
    from medcloak.attacks.unet import NetConfig
    from medcloak.obfuscation.pipeline import ObfuscationConfig
    from medcloak.obfuscation.vae import VAEConfig

    t0 = time.perf_counter()
    vae = VAEConfig()
    if vae_epochs is not None:
        vae = dataclasses.replace(vae, epochs=vae_epochs)
    if args.vae_channels is not None:
        vae = dataclasses.replace(vae, base_channels=args.vae_channels)
    ocfg = ObfuscationConfig(levels=args.levels, order=args.order, vae=None if args.order == "map-only" else vae)
    victim = synthetic_victim(size=size, n=args.n, seed=args.seed, obfuscation=ocfg, progress=True)
    t_victim = time.perf_counter() - t0
    net = NetConfig(channels=(16, 32, 64), steps=args.steps, lr=3e-3, batch_size=16)
    config = AttackConfig(net=net, t0_net=dataclasses.replace(net, steps=args.t0_steps), t0_copies=args.t0_copies,
                          n_attacker=args.n_attacker, n_cross=args.n_attacker)
    # keep the trained T0 (the runner scores only its Dice) for its threshold and threshold-free scores
    trained_t0 = []
    train_t0 = direct_view.train_direct_view

    def keep_t0(*a, **kw):
        trained_t0.append(train_t0(*a, **kw))
        return trained_t0[-1]

    with mock.patch.object(direct_view, "train_direct_view", keep_t0):
        res = run_attacks(victim, tuple(args.threats.split(",")), config=config, progress=True)
    ignore = getattr(victim, "test_ignore", None)  # the catheter, counted neither way
    t0_report = {"ceiling_dice": metrics.vessel_dice(metrics.vessel_map(victim.test_originals), victim.test_masks,
                                                     ignore=ignore)}
    if trained_t0:
        dv = trained_t0[-1]
        t0_report.update(heldout=dv.report(),
                         victim=direct_view.score_direct_view(dv, victim.test_obfuscated, victim.test_masks,
                                                           ignore=ignore),
                         prior_dice=res.row("prior")["vessel_dice"])
    res.meta["t0"] = t0_report
    res.meta["victim_fit_seconds"] = round(t_victim, 1)
    res.meta["obfuscation"] = ocfg.to_dict()
    res.meta["command"] = " ".join(["benchmarks/attack_table.py", *(argv if argv is not None else sys.argv[1:])])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import numpy as np

    np.savez_compressed(out / "victim_test.npz", originals=victim.test_originals,
                        obfuscated=victim.test_obfuscated, masks=victim.test_masks)  # for re-scoring
    res.to_json(out / "results.json")
    res.to_csv(out / "results.csv")
    attack_grid(res.images, out / "grid.png", masks=res.masks)
    table = res.table()
    t0_text = json.dumps(res.to_dict()["meta"]["t0"], indent=1)
    (out / "t0.json").write_text(t0_text + "\n")
    (out / "table.md").write_text(table + "\n")
    print(table)
    print("T0 report:", t0_text)
    print(json.dumps({k: res.meta[k] for k in ("description", "n_test", "n_victim_train", "n_attacker", "seconds",
                                               "victim_fit_seconds")}, indent=1))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
