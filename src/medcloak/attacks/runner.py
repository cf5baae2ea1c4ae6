"""Run any set of threats on a victim and score them beside the prior.

:func:`run_attacks` is the one entry point the CLI, the study and the benchmarks use::

    victim = synthetic_victim(size=64, n=256, seed=0)
    res = run_attacks(victim, ("T0", "T1", "T2", "T3", "T4"), config=AttackConfig())
    res.to_json("out/results.json"); res.to_csv("out/results.csv")

Every row of :class:`AttackResults` is one attack (T1: one row per number of leaked pairs),
scored on the victim's test frames with :mod:`medcloak.metrics`:

``ssim``, ``psnr``
    reconstruction vs original frame (``None`` for T0, which segments and does not reconstruct);
``vessel_dice``
    reconstructions: :func:`~medcloak.metrics.vessel_recovery` (hand-made vessel map of the
    reconstruction vs the generator's mask); T0: Dice of its thresholded segmentation vs the mask;
``vessel_agreement``
    Dice of the hand-made vessel maps of reconstruction and original (how much of what the filter
    finds in the original it also finds in the reconstruction);
``reid_top1``, ``reid_top5``
    :func:`~medcloak.metrics.reidentification_topk` of reconstructions against the test originals;
``prior_*`` and ``d_*``
    the baseline's score and ``attack - baseline`` (:mod:`medcloak.attacks.prior`): for SSIM and
    PSNR the mean attacker frame; for vessel Dice the **location prior** (the attacker's mean
    vessel mask, thresholded on its own held-out masks); for re-identification **chance**
    (``k / n_test``);
``n_keys``, ``<score>_min``, ``<score>_max``
    attacks whose figure depends on the key the victim drew (:attr:`Attack.per_key
    <medcloak.attacks.base.Attack.per_key>`: T0, its hand-made floor, T4, and the ``obfuscated``
    row) are fitted once and scored under ``AttackConfig.victim_keys`` victim keys -- the
    victim's own and simulated ones (:func:`medcloak.attacks.own.victim_key`, the victim's fitted
    scheme re-keyed): the score columns hold the mean over keys, these columns the number of
    keys and the range (:func:`medcloak.attacks.base.over_keys`); :attr:`AttackResults.meta`
    ``["per_key"]`` lists every key's value. A scheme whose training sees the key cannot be
    re-keyed: its rows have ``n_keys = 1`` and say so in ``note``. Other rows: ``n_keys = 1``.

Three reference rows come first: ``obfuscated`` (the obfuscated frame itself scored as a
reconstruction: the human-perception baseline of SSIM/PSNR, plus the hand-made vessel filter
run on it) and two ``prior`` rows (the mean attacker frame, the location prior).
``T0-handmade`` rows (variant = view name: the Otsu-thresholded hand-made views of
:func:`medcloak.attacks.handmade.handmade_vessel_masks`, scored by Dice against the masks) come
after T0 as its floor.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from medcloak.attacks import prior as _prior
from medcloak.attacks.base import (COLUMNS, SCORES, AttackerData, Knowledge, attack_names, get_attack, make_row,
                                   over_keys, score)
from medcloak.attacks.own import image_like
from medcloak.attacks.reconstruction import cross_domain_sources
from medcloak.attacks.victim import AttackVictim, dataset_victim, synthetic_victim
from medcloak.attacks.unet import NetConfig
from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_text

__all__ = [
    "THREATS",
    "COLUMNS",
    "AttackConfig",
    "AttackVictim",
    "AttackerData",
    "AttackResults",
    "run_attacks",
    "figure_index",
    "synthetic_victim",
    "synthetic_attacker",
    "dataset_victim",
]

#: The built-in threat models, in report order.
THREATS = ("T0", "T1", "T2", "T3", "T4")


@dataclass(frozen=True)
class AttackConfig:
    """Attack settings (the attacker's effort). All experiment randomness comes from the seeds.

    Parameters
    ----------
    net : NetConfig
        Width, depth and schedule of the inverse networks (T1-T3).
    t0_net : NetConfig, optional
        Schedule of the T0 segmentation network (default ``net``).
    t1_n : tuple of int
        Numbers of leaked pairs for the T1 curve (capped at the victim's training frames);
        default 1, 3, 10, 100 (DESIGN.md: "report as a curve over n").
    t1_table : bool
        Give T1's network the level table as a second input channel.
    n_attacker : int
        Attacker's own synthetic angiograms (T0, T2, prior).
    n_cross : int
        Attacker's cross-domain images (T3).
    attacker_seed : int
        Seed of the attacker's own synthetic set (must differ from the victim's: other patients)
        and of the attacker's own keys.
    frames_per_key : int
        T0, T2, T3: a fresh attacker key every this many frames (T2/T3: 0 = one own key, as in
        the paper).
    t0_copies : int
        T0: each attacker frame is obfuscated under this many keys.
    reid_metric : {"ssim", "corr"}
        Similarity of :func:`medcloak.metrics.reidentification_topk`.
    t4_options : dict
        Extra keyword arguments of :func:`medcloak.attacks.statistics.ciphertext_only_attack`
        (its ``seed`` defaults to ``attacker_seed``).
    victim_keys : int
        Victim keys the per-key attacks (T0, its floor, T4) are scored under: the victim's own
        key and ``victim_keys - 1`` simulated ones (1: the victim's key only).
    victim_key_seed : int
        Seed of the simulated victim keys (:func:`medcloak.attacks.own.victim_key`).
    """

    net: NetConfig = field(default_factory=NetConfig)
    t0_net: NetConfig | None = None
    t1_n: tuple[int, ...] = (1, 3, 10, 100)
    t1_table: bool = True
    n_attacker: int = 256
    n_cross: int = 256
    attacker_seed: int = 7919
    frames_per_key: int = 4
    t0_copies: int = 2
    reid_metric: str = "ssim"
    t4_options: dict = field(default_factory=dict)
    victim_keys: int = 5
    victim_key_seed: int = 0

    def __post_init__(self) -> None:
        if int(self.victim_keys) < 1:
            raise MedcloakError(f"victim_keys must be >= 1, got {self.victim_keys}")

    def to_dict(self) -> dict:
        """JSON-serialisable settings."""
        d = asdict(self)
        d["net"] = self.net.to_dict()
        d["t0_net"] = (self.t0_net or self.net).to_dict()
        d["t1_n"] = list(self.t1_n)
        return d


@dataclass
class AttackResults:
    """Scored attacks: :attr:`rows` (dicts with :data:`COLUMNS`), :attr:`meta`,
    :attr:`images` (column name -> float32 (k, H, W): the first test frames, for figures) and
    :attr:`masks` (their vessel masks)."""

    rows: list[dict]
    meta: dict
    images: dict[str, np.ndarray] = field(default_factory=dict)
    masks: np.ndarray | None = None

    def row(self, threat: str, variant: str = "") -> dict:
        """The row of ``threat`` (and ``variant``; default: the first row of that threat)."""
        for r in self.rows:
            if r["threat"] == threat and (not variant or r["variant"] == variant):
                return r
        raise KeyError(f"{threat} {variant}".strip())

    def to_dict(self) -> dict:
        """``{"meta": ..., "columns": [...], "rows": [...]}`` with NaN as ``None``."""
        return {"meta": _clean(self.meta), "columns": list(COLUMNS), "rows": [_clean(r) for r in self.rows]}

    def to_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the rows as CSV with header :data:`COLUMNS` (atomically); empty cell = n/a."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in self.rows:
            w.writerow(["" if _clean(r.get(c)) is None else _fmt(r.get(c)) for c in COLUMNS])
        atomic_write_text(path, buf.getvalue())

    def table(self) -> str:
        """A Markdown table of the main scores and their difference to the prior; rows scored
        over several victim keys show ``mean (min-max)``."""
        head = ["threat", "variant", "keys", "SSIM", "PSNR", "vessel Dice", "re-ID@1", "re-ID@5",
                "dSSIM", "dPSNR", "dDice", "dre-ID@1", "s"]
        keys = ["threat", "variant", "n_keys", "ssim", "psnr", "vessel_dice", "reid_top1", "reid_top5",
                "d_ssim", "d_psnr", "d_vessel_dice", "d_reid_top1", "seconds"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = []
            for k in keys:
                v = _clean(r.get(k))
                cell = "-" if v is None or v == "" else (f"{v:.3f}" if isinstance(v, float) else str(v))
                lo, hi = _clean(r.get(f"{k}_min")), _clean(r.get(f"{k}_max"))
                if k in SCORES and (r.get("n_keys") or 1) > 1 and lo is not None and hi is not None:
                    cell += f" ({lo:.3f}-{hi:.3f})"
                cells.append(cell)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


# ----------------------------------------------------------------------------- runner


def synthetic_attacker(n: int, *, size: int, seed: int) -> AttackerData:
    """The attacker's own semi-synthetic angiograms (noisy frames and masks), generator ``seed``."""
    from medcloak import synth

    s = synth.generate(n, size=size, seed=seed)
    return AttackerData(s.frames, s.masks, list(s.labels))


def run_attacks(
    victim: AttackVictim,
    threats: Sequence[str] = THREATS,
    *,
    config: AttackConfig | None = None,
    attacker: AttackerData | None = None,
    n_figure: int = 8,
    progress: bool = True,
) -> AttackResults:
    """Run ``threats`` against ``victim`` and score them (see the module docstring).

    A loop over the attack registry (:func:`medcloak.attacks.base.get_attack`): each attack is
    built from the :class:`~medcloak.attacks.base.Knowledge` of this victim, one row per
    variant, scored by :func:`medcloak.attacks.base.score` beside the prior.

    Parameters
    ----------
    victim : AttackVictim
    threats : sequence of str
        Registered attack names (built in: ``"T0"`` ... ``"T4"``).
    config : AttackConfig, optional
    attacker : AttackerData, optional
        The attacker's own angiograms and masks (T0, T2, prior); default
        :func:`synthetic_attacker` with ``config.n_attacker`` frames and ``config.attacker_seed``.
    n_figure : int
        Number of test frames whose images are kept in :attr:`AttackResults.images` (the last
        variant of an attack is kept: T1's largest n, T4 pooled over every frame).
    progress : bool
        tqdm bars on stderr.

    Returns
    -------
    AttackResults
    """
    from tqdm.auto import tqdm

    config = config or AttackConfig()
    threats = list(dict.fromkeys(threats))
    bad = [t for t in threats if t not in attack_names()]
    if bad:
        raise MedcloakError(f"unknown threat(s) {', '.join(bad)}; choose from {', '.join(attack_names())}")
    size = victim.test_originals.shape[1]
    if attacker is None:
        attacker = synthetic_attacker(config.n_attacker, size=size, seed=config.attacker_seed)
    if attacker.frames.shape[1:] != victim.test_originals.shape[1:]:
        raise MedcloakError(f"attacker frames {attacker.frames.shape[1:]} differ from victim frames {victim.test_originals.shape[1:]}")
    victim_hashes = {f.tobytes() for f in victim.test_originals}
    if any(f.tobytes() in victim_hashes for f in np.asarray(attacker.frames, np.float32)):
        raise MedcloakError("the attacker's own frames include victim test frames (use another attacker_seed)")
    fig_idx = figure_index(len(victim.test_originals), n_figure)
    seen = victim.test_images  # what image attacks take: same-size images, or None (patch tokens)
    images: dict[str, np.ndarray] = {"original": victim.test_originals[fig_idx]}
    if seen is not None:
        images["obfuscated"] = seen[fig_idx]
    rows: list[dict] = []
    t_start = time.perf_counter()

    def scored(result, kind="reconstruction", prior=None):
        return score(result, victim, prior, kind=kind, reid_metric=config.reid_metric)

    # the baselines: mean attacker frame (SSIM, PSNR), location prior (vessel Dice), chance (re-ID)
    n_test = len(victim.test_originals)
    t = time.perf_counter()
    prior_frame = _prior.mean_frame(attacker.frames)
    prior_scores = scored(_prior.prior_reconstructions(prior_frame, n_test))
    prior_row = make_row("prior", "mean attacker frame", prior_scores, time.perf_counter() - t)
    prior_row["note"] = "baseline of SSIM and PSNR"
    images["prior"] = _prior.prior_reconstructions(prior_frame, len(fig_idx))
    t = time.perf_counter()
    location = _prior.location_prior(attacker.masks)
    location_row = make_row("prior", "location prior", scored(location.segmentation(n_test), "segmentation"),
                            time.perf_counter() - t)
    location_row["note"] = (f"baseline of vessel Dice: the attacker's mean vessel mask above {location.threshold:.3f}, "
                            f"chosen on its own held-out masks (Dice {location.heldout_dice:.3f} there)")
    chance = {"reid_top1": _prior.reid_chance(n_test, 1), "reid_top5": _prior.reid_chance(n_test, 5)}
    baseline = {**prior_scores, "vessel_dice": location_row["vessel_dice"], **chance}

    # victim keys of the per-key attacks (key 0: the victim's own; others simulated, built lazily)
    n_keys, key_note = victim.keys_available(config.victim_keys)
    views: dict[int, AttackVictim] = {0: victim}

    def view(i: int) -> AttackVictim:
        if i not in views:
            views[i] = victim.under_key(i, seed=config.victim_key_seed)
        return views[i]

    per_key_values: dict[str, dict[str, list]] = {}

    def combine(rows_by_key: list[dict], per_key: bool = True) -> dict:
        fell_back = per_key and config.victim_keys > 1 and len(rows_by_key) == 1
        row = over_keys(rows_by_key, note=key_note if fell_back else "")
        if len(rows_by_key) > 1:
            name = f"{row['threat']} {row['variant']}".strip()
            per_key_values[name] = {k: [r.get(k) for r in rows_by_key] for k in SCORES
                                    if all(r.get(k) is not None for r in rows_by_key)}
        return row

    obf_rows = []
    for i in range(n_keys if seen is not None else 0):  # patch tokens: nothing to look at as an image
        t = time.perf_counter()
        obf_rows.append(make_row("obfuscated", "human-perception baseline",
                                 scored(view(i).test_images, prior=baseline), time.perf_counter() - t))
    if obf_rows:
        rows.append(combine(obf_rows))
    rows += [prior_row, location_row]

    shape = victim.test_originals.shape[1:]

    def leak(x):  # the victim's own obfuscation, as image attacks read it
        return image_like(victim.obfuscate(x), shape, output=victim.scheme.make().output)

    knowledge = Knowledge(scheme=victim.scheme, attacker=attacker, config=config, size=size, levels=victim.levels,
                          image_output=seen is not None, uses_labels=bool(victim.scheme.make().uses_labels),
                          leak=leak, leak_raw=victim.obfuscate, leak_pool=victim.train_originals, ciphertexts=victim.ciphertexts,
                          ciphertext_victims=victim.ciphertext_victims, progress=progress)
    not_applicable: dict[str, str] = {}
    bar = tqdm(threats, desc="attacks", unit="threat", disable=not progress)
    for threat in bar:
        bar.set_postfix(threat=threat)
        cls, attack = get_attack(threat), None
        reason = cls.applies(knowledge)
        if reason:
            not_applicable[threat] = reason
            continue
        keys = range(n_keys) if cls.per_key else range(1)
        for variant in cls.variants(knowledge):
            t = time.perf_counter()
            attack = cls(variant).fit(knowledge)
            fit_seconds = time.perf_counter() - t
            by_key = []
            for i in keys:
                t = time.perf_counter()
                keyed = attack if i == 0 else attack.for_victim_key(replace(knowledge, ciphertexts=view(i).ciphertexts))
                out = keyed(view(i).test_images if cls.input == "image" else view(i).test_obfuscated)
                result = out > attack.threshold if cls.kind == "segmentation" else out
                scores = score(result, view(i), baseline, kind=cls.kind, reid_metric=config.reid_metric)
                by_key.append(make_row(threat, attack.label, scores, fit_seconds + time.perf_counter() - t,
                                       n_pairs=attack.n_pairs))
                if i == 0:
                    images[threat] = out[fig_idx]
            rows.append(combine(by_key, cls.per_key))
        if attack is not None:
            extra = [attack.extra_rows(view(i), baseline) for i in keys]
            rows.extend(combine([e[j] for e in extra], cls.per_key) for j in range(len(extra[0])))
    meta = {
        "threats": threats,
        "scheme": victim.scheme.name,
        "description": victim.description,
        "levels": victim.levels,
        "size": [int(s) for s in victim.test_originals.shape[1:]],
        "n_test": n_test,
        "n_victim_train": len(victim.train_originals),
        "n_attacker": len(attacker.frames),
        "t3_sources": cross_domain_sources() if "T3" in threats else [],
        "config": config.to_dict(),
        "seconds": round(time.perf_counter() - t_start, 2),
        "victim_keys": n_keys,
        "victim_keys_note": key_note,
        "per_key": per_key_values,
        "reid_chance": chance["reid_top1"],
        "reid_chance_top5": chance["reid_top5"],
        "location_prior": {"threshold": location.threshold, "heldout_dice": location.heldout_dice},
        "notes": "ssim/psnr of the 'obfuscated' row compare original and obfuscated frames (what a "
                 "viewer gets for free); T0 scores a segmentation, so it has no ssim/psnr/re-id; "
                 "d_* = attack - baseline: the mean attacker frame for ssim/psnr, the location prior "
                 "(the attacker's mean vessel mask) for vessel Dice, chance (k/n_test) for re-identification; "
                 f"rows with n_keys > 1 hold the mean over {n_keys} victim keys (the victim's own and simulated "
                 "ones) with the range in *_min/*_max, per key in meta['per_key']"
                 + (f"; {key_note}" if key_note else "") + ".",
    }
    if not_applicable:
        meta["not_applicable"] = not_applicable
    if "T4" in threats and victim.ciphertexts is not None and "T4" not in not_applicable:
        meta["t4_all_frames"] = ("the second T4 row pools every obfuscated frame of the study (what the cloud "
                                 "holds); the figures show its reconstructions")
    return AttackResults(rows=rows, meta=meta, images=images, masks=victim.test_masks[fig_idx])


def figure_index(n_test: int, k: int) -> np.ndarray:
    """The test frames kept for figures: ``k`` spread over the set (consecutive frames are one
    patient's sequence)."""
    return np.unique(np.linspace(0, n_test - 1, max(1, k)).round().astype(int))
