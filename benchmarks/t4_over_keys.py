"""T4 over victim keys, with and without restarts, on a finished study's VAE outputs (issue 14).

Usage (a study folder of the paper scheme with order vae-then-map, e.g. the demo preset)::

    PYTHONPATH=src .venv/bin/python benchmarks/t4_over_keys.py STUDY_DIR [N_KEYS] [RESTARTS,...]

Draws ``N_KEYS`` fresh 256-level keyed tables (keys hashed from a label: measurement keys,
protecting nothing), maps the study's stored VAE outputs of EVERY frame with each (what the cloud
would hold under that key), runs :func:`~medcloak.attacks.statistics.ciphertext_only_attack` on
all of them pooled with each ``restarts`` value (attacker seed 7919) and scores SSIM on the test
frames. Prints each key's SSIM, then mean, range, keys below 0.4 and seconds per key.

Measured 2026-12-01 on the demo study (384 frames of 64 px pooled, 48 test frames; 2 CPU cores
shared with other jobs), ``t4_over_keys.py runs/demo 5 1,8``::

    restarts=1: SSIM mean 0.416 min 0.016 max 0.631 below0.4 2  57.6 s/key
    restarts=8: SSIM mean 0.554 min 0.279 max 0.636 below0.4 1  162.6 s/key

Per key (restarts 1 / 8): 0.210 / 0.609, 0.603 / 0.613, 0.620 / 0.636, 0.631 / 0.631,
0.016 / 0.279. The last key with 16 restarts: 0.55 (147 s on an idle core).
"""

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from medcloak import metrics as M
from medcloak.attacks.statistics import ciphertext_only_attack
from medcloak.keys import Key
from medcloak.obfuscation.mapping import apply_table, draw_table

study = Path(sys.argv[1])
n_keys = int(sys.argv[2]) if len(sys.argv) > 2 else 5
restarts = [int(r) for r in (sys.argv[3] if len(sys.argv) > 3 else "1,8").split(",")]
fs = np.load(study / "stages" / "data" / "frameset.npz")
vae = np.load(study / "stages" / "obfuscate" / "obfuscated.npz")["vae"]
test = fs["split"] == "test"
orig = fs["frames"][test]
res = {r: [] for r in restarts}
secs = dict.fromkeys(restarts, 0.0)
for k in range(n_keys):
    key = Key(hashlib.sha256(f"measure/t4/{k}".encode()).digest())
    obf = apply_table(vae, draw_table(key, levels=256), out_levels=256)
    for r in restarts:
        t = time.perf_counter()
        rec = ciphertext_only_attack(obf, levels=256, restarts=r, seed=7919)[test]
        secs[r] += time.perf_counter() - t
        res[r].append(M.ssim(rec, orig))
    print(k, {r: round(res[r][-1], 3) for r in restarts}, flush=True)
for r in restarts:
    a = np.array(res[r])
    print(f"restarts={r}: SSIM mean {a.mean():.3f} min {a.min():.3f} max {a.max():.3f} "
          f"below0.4 {(a < 0.4).sum()}  {secs[r] / n_keys:.1f} s/key")
