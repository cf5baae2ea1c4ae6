"""The ceiling of the vessel score: :func:`medcloak.metrics.vessel_map` on the generator's own frames.

No reconstruction can score a higher vessel Dice against the generator's masks than the hand-made
map of the noise-free frame itself, so this is the ceiling every ``vessel_dice`` in the attack
tables and in ``benchmarks/vae_fidelity.py`` should be read against. For each frame size it
prints the mean Dice over frames of ``vessel_map(x)`` against

- ``visible``: ``FrameSet.masks`` (visible lumen, contrast >= 3 %), catheter ignored -- the
  score the library reports;
- ``full``: ``FrameSet.masks_full`` (all lumen, however faint), catheter ignored;
- ``visible, catheter counted``: the visible lumen with the catheter not ignored,

for ``x`` = the noise-free ``clean`` frames and the noisy detector ``frames``.

Usage::

    python benchmarks/vessel_ceiling.py                     # 256 frames per size, seed 0
    python benchmarks/vessel_ceiling.py --n 512 --seed 3 --out ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from medcloak import metrics
from medcloak.io.atomic import atomic_write_text
from medcloak.synth import generate


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="frames per size")
    ap.add_argument("--seed", type=int, default=0, help="generator seed")
    ap.add_argument("--sizes", default="32,64,128", help="comma-separated frame sides in pixels")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'size':>4} {'input':>6} {'visible':>8} {'full':>6} {'cath.counted':>12} {'map area':>8} "
          f"{'mask area':>9} {'s':>5}")
    for size in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        d = generate(args.n, size=size, seed=args.seed)
        for name in ("clean", "frames"):
            vm = metrics.vessel_map(getattr(d, name))
            row = {
                "size": size,
                "input": name,
                "visible": metrics.vessel_dice(vm, d.masks, ignore=d.catheter),
                "full": metrics.vessel_dice(vm, d.masks_full, ignore=d.catheter),
                "visible_catheter_counted": metrics.vessel_dice(vm, d.masks),
                "map_fraction": float(vm.mean()),
                "mask_fraction": float(d.masks.mean()),
                "seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            print(f"{size:4d} {name:>6} {row['visible']:8.3f} {row['full']:6.3f} "
                  f"{row['visible_catheter_counted']:12.3f} {row['map_fraction']:8.4f} {row['mask_fraction']:9.4f} "
                  f"{row['seconds']:5.1f}", flush=True)
    result = {"n": args.n, "seed": args.seed, "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
