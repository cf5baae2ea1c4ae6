"""How much of the image and of the vessels the VAE keeps (run by hand, not in tests).

Generates the semi-synthetic set, splits it by patient (70 / 15 / 15 %), trains the VAE on the
train split with the default :class:`~medcloak.obfuscation.vae.VAEConfig` (or overrides), and
reports on the validation split:

- SSIM / PSNR of the mean-latent reconstruction vs the noise-free ``clean`` frames (the
  target: quantum noise is not something the VAE should or can reproduce) and vs the noisy input;
- the same with standard-normal latent noise (what the keyed pipeline does; the noise here is
  a fixed-seed stand-in, not key material);
- vessel Dice of :func:`medcloak.metrics.vessel_map` of the reconstruction against the
  generator's visible-lumen masks (``FrameSet.masks``, catheter ignored), next to the ceiling
  (the same filter on the clean frames) and the noisy input, and the agreement of the
  reconstruction's vessel map with the clean frame's;
- seconds per epoch.

Usage::

    python benchmarks/vae_fidelity.py --out vae_fidelity.json
    python benchmarks/vae_fidelity.py --n 256 --set epochs=3     # a quick smoke run

Targets (issue "core", item 3): SSIM vs clean >= 0.85, vessel Dice >= 0.80 at 128x128.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

from medcloak import metrics
from medcloak.io.atomic import atomic_write_text
from medcloak.io.dataset import Record, split_patients
from medcloak.obfuscation.vae import VAEConfig, latent_shape, reconstruct, train_vae
from medcloak.synth import generate


def _override(cfg: VAEConfig, items: list[str]) -> VAEConfig:
    d = cfg.to_dict()
    for item in items:
        key, _, value = item.partition("=")
        d[key] = json.loads(value)
    return VAEConfig.from_dict(d)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="frames to generate")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0, help="data and split seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override a VAEConfig field")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    data = generate(args.n, size=args.size, seed=args.seed)
    t_gen = time.perf_counter() - t0
    recs = [Record(str(i), lab, pid) for i, (lab, pid) in enumerate(zip(data.labels, data.patient_ids))]
    split = np.array([r.split for r in split_patients(recs, seed=args.seed)])
    tr, va = split == "train", split == "val"
    cfg = _override(VAEConfig(), args.set)
    print(f"{args.n} frames {args.size}px (generated in {t_gen:.0f} s): train {tr.sum()}, val {va.sum()}; "
          f"config {json.dumps(cfg.to_dict())}", file=sys.stderr)

    def log(row: dict) -> None:
        print(f"epoch {row['epoch']:3d}  loss {row['train_loss']:.5f}  val {row['val_loss']:.5f}  "
              f"ssim(clean) {row['val_ssim']:.4f}  {row['seconds']:.1f} s", file=sys.stderr, flush=True)

    model, history = train_vae(data.frames[tr], data.frames[va], cfg, val_target=data.clean[va],
                               progress=False, callback=log)
    frames, clean, masks = data.frames[va], data.clean[va], data.masks[va]
    cath = data.catheter[va]  # a dark tube that is not a vessel: counted neither way
    recon = reconstruct(model, frames)
    noise = np.random.default_rng(12345).standard_normal(
        (len(frames), *latent_shape(cfg, args.size, args.size))).astype(np.float32)
    recon_noisy = reconstruct(model, frames, noise=noise)
    clean_map = metrics.vessel_map(clean)
    result = {
        "config": cfg.to_dict(),
        "data": {"n": args.n, "size": args.size, "seed": args.seed, "train": int(tr.sum()), "val": int(va.sum())},
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "ssim_vs_clean": metrics.ssim(recon, clean),
        "ssim_vs_noisy": metrics.ssim(recon, frames),
        "ssim_noisy_input_vs_clean": metrics.ssim(frames, clean),
        "psnr_vs_clean_db": metrics.psnr(recon, clean),
        "psnr_vs_noisy_db": metrics.psnr(recon, frames),
        "latent_noise": {
            "ssim_vs_clean": metrics.ssim(recon_noisy, clean),
            "vessel_dice": metrics.vessel_recovery(recon_noisy, masks, ignore=cath),
        },
        "vessel_dice": metrics.vessel_recovery(recon, masks, ignore=cath),
        "vessel_dice_ceiling_clean": metrics.vessel_dice(clean_map, masks, ignore=cath),
        "vessel_dice_noisy_input": metrics.vessel_recovery(frames, masks, ignore=cath),
        "vessel_map_agreement_recon_vs_clean": metrics.vessel_dice(metrics.vessel_map(recon), clean_map,
                                                                   ignore=cath),
        "targets": {"ssim_vs_clean": 0.85, "vessel_dice": 0.80},
        "history": history,
    }
    summary = {k: v for k, v in result.items() if k not in ("history", "config", "data")}
    print(json.dumps(summary, indent=1))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
