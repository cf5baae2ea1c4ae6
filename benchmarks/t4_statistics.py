"""T4 on semi-synthetic frames: full attack vs naive spectral prototype, map-only obfuscation."""
import sys, time, numpy as np, torch
torch.set_num_threads(1)
from medcloak.synth import generate
from medcloak import metrics as M
from medcloak.obfuscation.mapping import quantise, apply_table
from medcloak.attacks.statistics import ciphertext_only_attack

n, size = int(sys.argv[1]), int(sys.argv[2])
d = generate(n, size=size, seed=0, backgrounds=sys.argv[3] if len(sys.argv) > 3 else "auto")
x, masks = d.frames, d.masks
prior = np.broadcast_to(x.mean(0), x.shape)
print(f"n={n} size={size} clean vessel_recovery={M.vessel_recovery(x, masks):.3f}  prior: corr={M.pixel_correlation(prior, x):.3f} ssim={M.ssim(prior, x):.3f} dice={M.vessel_recovery(prior, masks):.3f}")
NAIVE = dict(weighting="counts", refine=False, iterations=0, scale="linear", polarity="auto")
for L in (256, 64, 32):
    for seed in (1, 2, 3):
        table = np.random.default_rng(seed).integers(0, L, size=L)
        ob = apply_table(x, table, out_levels=L)
        row = [f"L={L:3d} key={seed}", f"obf: ssim={M.ssim(ob, x):.3f} dice={M.vessel_recovery(ob, masks):.3f}"]
        for name, cfg in (("naive", NAIVE), ("T4", {})):
            t = time.time()
            rec = ciphertext_only_attack(ob, levels=L, **cfg)
            row.append(f"{name}: corr={M.pixel_correlation(rec, x):+.3f} ssim={M.ssim(rec, x):.3f} dice={M.vessel_recovery(rec, masks):.3f} ({time.time()-t:.0f}s)")
        print(" | ".join(row), flush=True)
