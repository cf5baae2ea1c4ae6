"""The measured attack table for the default obfuscation (VAE, then a keyed 256-level map).

Run by hand (it trains a victim VAE, two attacker VAEs and six attack networks)::

    .venv/bin/python benchmarks/attack_table.py --out runs/attack_table

Writes ``results.json``, ``results.csv``, ``grid.png``, ``table.md`` and ``victim_test.npz`` to ``--out`` and prints
the Markdown table: T0-T4 and the prior with SSIM, PSNR, vessel Dice, re-identification top-1/5
and each score's difference to the prior; T1 over the number of leaked pairs.

The defaults are sized for 2 shared CPU cores (about 15 minutes): 64x64 frames, a VAE with the
default architecture but 16 base channels and 8 epochs, attack U-Nets of (16, 32, 64) channels
and a few hundred steps. A fitted VAE of more epochs is smoother, so these numbers are for this
budget, not a bound on what a patient attacker (or a GPU) achieves.
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
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n", type=int, default=384, help="victim frames (8 per patient; a quarter of patients is test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--levels", type=int, default=256)
    p.add_argument("--vae-epochs", type=int, default=8)
    p.add_argument("--vae-channels", type=int, default=16)
    p.add_argument("--steps", type=int, default=400, help="optimisation steps of each inverse network")
    p.add_argument("--t0-steps", type=int, default=500)
    p.add_argument("--n-attacker", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--threats", default="T0,T1,T2,T3,T4")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from medcloak.attacks.figures import attack_grid
    from medcloak.attacks.runner import AttackConfig, run_attacks, synthetic_victim
    from medcloak.attacks.unet import NetConfig
    from medcloak.obfuscation.pipeline import ObfuscationConfig
    from medcloak.obfuscation.vae import VAEConfig

    t0 = time.perf_counter()
    ocfg = ObfuscationConfig(levels=args.levels, vae=VAEConfig(base_channels=args.vae_channels, epochs=args.vae_epochs))
    victim = synthetic_victim(size=args.size, n=args.n, seed=args.seed, obfuscation=ocfg, progress=True)
    t_victim = time.perf_counter() - t0
    net = NetConfig(channels=(16, 32, 64), steps=args.steps, lr=3e-3, batch_size=16)
    config = AttackConfig(net=net, t0_net=dataclasses.replace(net, steps=args.t0_steps),
                          n_attacker=args.n_attacker, n_cross=args.n_attacker)
    res = run_attacks(victim, tuple(args.threats.split(",")), config=config, progress=True)
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
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(json.dumps({k: res.meta[k] for k in ("description", "n_test", "n_victim_train", "n_attacker", "seconds",
                                               "victim_fit_seconds")}, indent=1))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
