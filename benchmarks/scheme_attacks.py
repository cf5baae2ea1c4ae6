"""The scheme-specific attacks (issue 14) on small semi-synthetic victims: one Markdown table.

Run by hand (a few minutes on 2 CPU cores at 32 px)::

    PYTHONPATH=src .venv/bin/python benchmarks/scheme_attacks.py --size 32 --n 128

Every victim: ``--n`` frames of the generator (seed 0), a quarter of the patients are the
attacked test frames, a fresh key, the cloud holds every released frame (the jigsaw and matching
pools). Rows: T1-secret (curve over 1/3/10/100 leaked pairs), jigsaw, matching, beside the prior.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def victim(scheme: str, cfg, *, size: int, n: int, seed: int = 0):
    from medcloak import synth
    from medcloak.attacks.runner import AttackVictim
    from medcloak.keys import Key
    from medcloak.obfuscation.scheme import make_scheme

    data = synth.generate(n, size=size, seed=seed)
    pids = np.asarray(data.patient_ids)
    test_p = set(np.unique(pids)[::4].tolist())
    data.split = np.where([p in test_p for p in pids], "test", "train")
    s = make_scheme(scheme, cfg).fit(None, Key.generate())
    return AttackVictim.from_frameset(data, s, obfuscated=s.apply(data.frames), pool_ciphertexts=True)


def cases():
    from medcloak.obfuscation.blockwise import BlockwiseConfig as B
    from medcloak.obfuscation.pixelate import PixelateConfig as P
    from medcloak.obfuscation.randenc import RandEncConfig as R
    from medcloak.obfuscation.svd import SVDConfig as S

    return [
        ("blockwise", B(block=8), ("T1-secret", "jigsaw")),
        ("blockwise", B(block=8, shuffle=False, flip=False), ("jigsaw",)),
        ("blockwise", B(block=8, shuffle=False, flip=False, levels=16), ("jigsaw",)),
        ("blockwise", B(block=8, levels=16), ("T1-secret", "jigsaw")),
        ("svd", S(), ("T1-secret",)),
        ("svd", S(rank=8), ("T1-secret",)),
        ("pixelate", P(cell=8, mix=True), ("T1-secret",)),
        ("randenc", R(patch=8, width=256, depth=0, shuffle=False), ("T1-secret", "matching")),
        ("randenc", R(patch=8, width=64), ("T1-secret", "matching")),
        ("randenc", R(patch=8, width=256), ("T1-secret",)),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--n-attacker", type=int, default=256)
    a = p.parse_args(argv)
    from medcloak.attacks.runner import AttackConfig, run_attacks

    config = AttackConfig(n_attacker=a.n_attacker)
    print("| scheme | config | attack | variant | SSIM | vessel Dice | re-ID@1 | prior SSIM | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scheme, cfg, threats in cases():
        t = time.perf_counter()
        v = victim(scheme, cfg, size=a.size, n=a.n)
        res = run_attacks(v, threats, config=config, progress=False)
        cfg_s = ", ".join(f"{k}={x}" for k, x in cfg.to_dict().items())
        for r in res.rows:
            if r["threat"] in ("prior", "obfuscated"):
                continue
            f = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
            print(f"| {scheme} | {cfg_s} | {r['threat']} | {r['variant']} | {f(r['ssim'])} | {f(r['vessel_dice'])} "
                  f"| {f(r['reid_top1'])} | {f(r['prior_ssim'])} | {r['seconds']} |")
        for k, why in res.meta.get("not_applicable", {}).items():
            print(f"| {scheme} | {cfg_s} | {k} | not applicable: {why} | | | | | |")
        print(f"<!-- {scheme} done in {time.perf_counter() - t:.0f} s, {len(v.test_originals)} test frames -->",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
