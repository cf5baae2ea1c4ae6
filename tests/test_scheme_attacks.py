"""Scheme-specific attacks of issue 14: T1-secret (read the secret off leaked pairs), jigsaw, matching.

Each attack is proven real on its scheme (weak versions where the full one is out of reach), run
through :func:`medcloak.attacks.runner.run_attacks` so the registry path is exercised, and each
refuses the schemes it is not for. Tiny frames (32 px).
"""

from __future__ import annotations

import numpy as np
import pytest

from medcloak.attacks.base import AttackerData, Knowledge, get_attack
from medcloak.attacks.own import PublicScheme
from medcloak.attacks.runner import AttackConfig, run_attacks, synthetic_victim
from medcloak.obfuscation.blockwise import BlockwiseConfig
from medcloak.obfuscation.pixelate import PixelateConfig
from medcloak.obfuscation.randenc import RandEncConfig
from medcloak.obfuscation.svd import SVDConfig

SIZE = 32
CONFIG = AttackConfig(n_attacker=8)


def _run(scheme, cfg, threat, n=64, seed=0):
    v = synthetic_victim(size=SIZE, n=n, seed=seed, scheme=scheme, obfuscation=cfg, progress=False)
    return v, run_attacks(v, (threat,), config=CONFIG, progress=False)


def _pooled_victim(scheme, cfg, n=128, seed=0):
    """A victim whose cloud holds every released frame (train and test): the jigsaw's pool."""
    from medcloak import synth
    from medcloak.attacks.runner import AttackVictim
    from medcloak.keys import Key
    from medcloak.obfuscation.scheme import make_scheme

    data = synth.generate(n, size=SIZE, seed=seed)
    pids = np.asarray(data.patient_ids)
    test_p = set(np.unique(pids)[::4].tolist())
    data.split = np.where([p in test_p for p in pids], "test", "train")
    s = make_scheme(scheme, cfg).fit(None, Key(bytes(range(32))))  # a fixed key: repeatable numbers
    return AttackVictim.from_frameset(data, s, obfuscated=s.apply(data.frames), pool_ciphertexts=True)


def _rows(res, threat):
    return {r["variant"]: r for r in res.rows if r["threat"] == threat}


def _knowledge(scheme, cfg, **kw):
    z = np.zeros((2, SIZE, SIZE), np.float32)
    return Knowledge(scheme=PublicScheme(scheme, cfg), attacker=AttackerData(z, z > 0), config=CONFIG, size=SIZE, **kw)


# ------------------------------------------------------------------------------ T1-secret


@pytest.mark.parametrize("cfg", [BlockwiseConfig(block=8), BlockwiseConfig(block=8, scramble=False, shuffle=False,
                                                                           flip=False)])
def test_t1_secret_reads_blockwise_permutations_and_flips(cfg):
    _, res = _run("blockwise", cfg, "T1-secret")
    rows = _rows(res, "T1-secret")
    assert len(rows) == 4 and {"n=1", "n=3", "n=10"} <= set(rows)  # the last n is capped at the leak pool
    for r in rows.values():  # exact float values: even one pair pins the secret down
        assert r["ssim"] >= 0.99 and r["reid_top1"] == 1.0


def test_t1_secret_svd_curve_over_pairs():
    _, res = _run("svd", SVDConfig(), "T1-secret")
    rows = _rows(res, "T1-secret")
    assert rows["n=10"]["ssim"] >= 0.9 and rows["n=10"]["reid_top1"] >= 0.9
    assert rows["n=1"]["ssim"] < rows["n=10"]["ssim"] - 0.3  # one pair leaves the signs of Q1, Q2 free


def test_t1_secret_pixelate_mix_recovers_cell_means():
    from medcloak.attacks.secret import SecretKnownPlaintext, cell_means

    v, res = _run("pixelate", PixelateConfig(cell=8, mix=True), "T1-secret")
    k = _knowledge("pixelate", PixelateConfig(cell=8, mix=True), leak_raw=v.obfuscate, leak_pool=v.train_originals)
    truth = cell_means(v.test_originals, 8)
    err = {}
    for n in ("n=1", "n=10"):
        out = SecretKnownPlaintext(n).fit(k)(v.test_obfuscated)
        err[n] = np.abs(cell_means(out, 8) - truth).max()
    assert err["n=10"] > 1e-2 and err["n=1"] > 1e-2  # 16 cells: fewer pairs than cells
    rows = _rows(res, "T1-secret")
    big = max(rows, key=lambda s: int(s[2:]))
    out = SecretKnownPlaintext(big).fit(k)(v.test_obfuscated)
    assert np.abs(cell_means(out, 8) - truth).max() < 1e-3  # >= 16 pairs: M read exactly
    assert rows[big]["ssim"] > rows["n=1"]["ssim"]


def test_t1_secret_randenc_weak_decodes_tokens():
    _, res = _run("randenc", RandEncConfig(patch=8, width=256, depth=0, shuffle=False), "T1-secret", n=96)
    rows = _rows(res, "T1-secret")
    assert rows["n=10"]["ssim"] >= 0.9
    assert rows["n=1"]["ssim"] < rows["n=10"]["ssim"]


def test_t1_secret_blockwise_map_positions_then_level_table():
    res = run_attacks(_pooled_victim("blockwise", BlockwiseConfig(block=8, levels=16)), ("T1-secret",),
                      config=CONFIG, progress=False)
    rows = _rows(res, "T1-secret")
    big = rows[max(rows, key=lambda s: int(s[2:]))]
    # positions come from pooled ciphertext statistics; the pairs give the table (and the curve)
    assert big["reid_top1"] >= 0.9 and big["ssim"] >= 0.7 and big["ssim"] > rows["n=1"]["ssim"]


def test_t1_secret_refuses_other_schemes():
    cls = get_attack("T1-secret")
    leak = dict(leak_raw=lambda x: x, leak_pool=np.zeros((3, SIZE, SIZE), np.float32))
    assert "paper" in cls.applies(_knowledge("paper", None, **leak))
    assert "blur" in cls.applies(_knowledge("blur", None, **leak))
    assert cls.applies(_knowledge("blockwise", BlockwiseConfig(block=8, levels=16), **leak)) is None
    assert "no secret" in cls.applies(_knowledge("pixelate", PixelateConfig(cell=8), **leak))
    assert "leaked pairs" in cls.applies(_knowledge("svd", SVDConfig()))
    assert cls.applies(_knowledge("randenc", RandEncConfig(patch=8), **leak)) is None


# ------------------------------------------------------------------------------ jigsaw


@pytest.mark.parametrize("cfg", [BlockwiseConfig(block=8, shuffle=False, flip=False),
                                 BlockwiseConfig(block=8, shuffle=False, scramble=False)])
def test_jigsaw_weak_blockwise_is_undone(cfg):
    res = run_attacks(_pooled_victim("blockwise", cfg), ("jigsaw",), config=CONFIG, progress=False)
    r = _rows(res, "jigsaw")["all released frames"]
    assert r["ssim"] >= 0.9 and r["reid_top1"] >= 0.9


def test_jigsaw_full_blockwise_up_to_symmetry():
    """Positions, flips and block placement all come back from ciphertexts alone; only the
    square's 8 symmetries and the global flip are left (the attacker's prior picks one)."""
    res = run_attacks(_pooled_victim("blockwise", BlockwiseConfig(block=8)), ("jigsaw",), config=CONFIG,
                      progress=False)
    rows = _rows(res, "jigsaw")
    sym = next(r for k, r in rows.items() if k.startswith("up to symmetry"))
    assert sym["ssim"] >= 0.9 and sym["reid_top1"] >= 0.9


def test_jigsaw_refuses_other_schemes():
    cls = get_attack("jigsaw")
    for name, cfg in (("svd", SVDConfig()), ("randenc", RandEncConfig(patch=8)), ("paper", None)):
        assert "blockwise" in cls.applies(_knowledge(name, cfg))
    assert cls.applies(_knowledge("blockwise", BlockwiseConfig(block=8, levels=16))) is None


# ------------------------------------------------------------------------------ matching

MATCH_CONFIG = AttackConfig(n_attacker=256)


def test_matching_decoder_is_real_when_aligned(monkeypatch):
    """Victim encoder = the attacker's own and alignment = identity: the rest of the pipeline
    (own decoder, slot centring, placement) inverts the tokens."""
    from medcloak import metrics, synth
    from medcloak.attacks import matching
    from medcloak.attacks.own import attacker_key
    from medcloak.attacks.runner import synthetic_attacker
    from medcloak.obfuscation.randenc import RandEncScheme

    cfg = RandEncConfig(patch=8, width=256, depth=0, shuffle=False)
    att = synthetic_attacker(256, size=SIZE, seed=MATCH_CONFIG.attacker_seed)
    k = Knowledge(scheme=PublicScheme("randenc", cfg), attacker=att, config=MATCH_CONFIG, size=SIZE)
    victim = synth.generate(128, size=SIZE, seed=0).frames
    tokens = RandEncScheme(cfg).fit(None, attacker_key(MATCH_CONFIG.attacker_seed, 0)).apply(victim)
    monkeypatch.setattr(matching, "moment_alignment", lambda v, o, **kw: np.eye(v.shape[1]))
    out = get_attack("matching")().fit(k)(tokens)
    assert metrics.ssim(out, victim) >= 0.9


def test_matching_leaks_coarse_layout_of_secret_encoder():
    v = _pooled_victim("randenc", RandEncConfig(patch=8, width=256, depth=0, shuffle=False))
    res = run_attacks(v, ("matching",), config=MATCH_CONFIG, progress=False)
    r = _rows(res, "matching")[""]
    assert r["reid_top1"] >= 3.0 / len(v.test_originals)  # well above chance (1 / n_test)


def test_matching_refuses_other_schemes():
    cls = get_attack("matching")
    for name, cfg in (("svd", SVDConfig()), ("blockwise", BlockwiseConfig(block=8)), ("pixelate", PixelateConfig())):
        assert "randenc" in cls.applies(_knowledge(name, cfg))
    assert cls.applies(_knowledge("randenc", RandEncConfig(patch=8))) is None
