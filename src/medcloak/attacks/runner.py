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
    the prior's score (mean attacker frame, :mod:`medcloak.attacks.prior`) and ``attack - prior``.

Two reference rows come first: ``obfuscated`` (the obfuscated frame itself scored as a
reconstruction: the human-perception baseline of SSIM/PSNR, plus the hand-made vessel filter
run on it) and ``prior``. ``T0-handmade`` rows (variant = view name: the Otsu-thresholded
hand-made views of :func:`medcloak.attacks.handmade.handmade_vessel_masks`, scored by Dice
against the masks) come after T0 as its floor.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from medcloak.attacks import prior as _prior
from medcloak.attacks.reconstruction import (
    MedcloakScheme,
    PublicScheme,
    cross_domain,
    cross_domain_sources,
    known_plaintext,
    same_domain,
)
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
    "synthetic_victim",
    "synthetic_attacker",
    "dataset_victim",
]

THREATS = ("T0", "T1", "T2", "T3", "T4")

#: Columns of every results row, in CSV order.
COLUMNS = (
    "threat", "variant", "n_pairs", "ssim", "psnr", "vessel_dice", "vessel_agreement", "reid_top1", "reid_top5",
    "prior_ssim", "prior_psnr", "prior_vessel_dice", "prior_reid_top1", "prior_reid_top5",
    "d_ssim", "d_psnr", "d_vessel_dice", "d_reid_top1", "d_reid_top5", "seconds",
)
_SCORES = ("ssim", "psnr", "vessel_dice", "reid_top1", "reid_top5")


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
        Numbers of leaked pairs for the T1 curve (capped at the victim's training frames).
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
        Extra keyword arguments of :func:`medcloak.attacks.statistics.ciphertext_only_attack`.
    """

    net: NetConfig = field(default_factory=NetConfig)
    t0_net: NetConfig | None = None
    t1_n: tuple[int, ...] = (10, 100, 1000)
    t1_table: bool = True
    n_attacker: int = 256
    n_cross: int = 256
    attacker_seed: int = 7919
    frames_per_key: int = 4
    t0_copies: int = 2
    reid_metric: str = "ssim"
    t4_options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable settings."""
        d = asdict(self)
        d["net"] = self.net.to_dict()
        d["t0_net"] = (self.t0_net or self.net).to_dict()
        d["t1_n"] = list(self.t1_n)
        return d


@dataclass
class AttackVictim:
    """What is attacked.

    Parameters
    ----------
    scheme : PublicScheme
        The public algorithm and its public config (attackers T0, T2, T3 re-run it with their
        own data and keys).
    obfuscate : callable
        The victim's fitted obfuscator, ``(N, H, W) -> (N, H, W)`` (T1 leaked pairs only).
    train_originals : ndarray (N, H, W)
        The victim's training frames, the pool of leaked originals for T1.
    test_originals, test_obfuscated : ndarray (M, H, W)
        Test frames and their obfuscated versions (what the cloud holds).
    test_masks : ndarray of bool (M, H, W)
        Vessel masks of the test frames (from the generator, or traced).
    test_ignore : ndarray of bool (M, H, W), optional
        Pixels no vessel score counts either way (the catheter: ``FrameSet.catheter``, or a
        dataset's ``catheter_mask`` column); see :func:`medcloak.metrics.vessel_dice`.
    levels : int
        Grey levels of the obfuscated frames (public parameter).
    description : str
        Free text kept in the results' metadata.
    """

    scheme: PublicScheme
    obfuscate: Callable[[np.ndarray], np.ndarray]
    train_originals: np.ndarray
    test_originals: np.ndarray
    test_obfuscated: np.ndarray
    test_masks: np.ndarray
    levels: int = 256
    description: str = ""
    test_ignore: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.test_ignore is not None:
            self.test_ignore = np.asarray(self.test_ignore).astype(bool)
            if self.test_ignore.shape != np.shape(self.test_masks):
                raise MedcloakError(f"victim: test_ignore {self.test_ignore.shape} does not match the masks "
                                    f"{np.shape(self.test_masks)}")
        self.test_originals = np.asarray(self.test_originals, np.float32)
        self.test_obfuscated = np.asarray(self.test_obfuscated, np.float32)
        self.test_masks = np.asarray(self.test_masks).astype(bool)
        self.train_originals = np.asarray(self.train_originals, np.float32)
        shapes = {self.test_originals.shape, self.test_obfuscated.shape, self.test_masks.shape}
        if len(shapes) != 1 or self.test_originals.ndim != 3 or len(self.test_originals) == 0:
            raise MedcloakError(f"victim: test originals, obfuscated frames and masks must be equal (M, H, W) stacks, got {sorted(shapes)}")
        if self.train_originals.ndim != 3 or self.train_originals.shape[1:] != self.test_originals.shape[1:]:
            raise MedcloakError(f"victim: training frames {self.train_originals.shape} do not match test frames {self.test_originals.shape}")


@dataclass
class AttackerData:
    """The attacker's own angiograms (other patients) and their vessel masks."""

    frames: np.ndarray
    masks: np.ndarray


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
        """A Markdown table of the main scores and their difference to the prior."""
        head = ["threat", "variant", "SSIM", "PSNR", "vessel Dice", "re-ID@1", "re-ID@5",
                "dSSIM", "dPSNR", "dDice", "dre-ID@1", "s"]
        keys = ["threat", "variant", "ssim", "psnr", "vessel_dice", "reid_top1", "reid_top5",
                "d_ssim", "d_psnr", "d_vessel_dice", "d_reid_top1", "seconds"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = []
            for k in keys:
                v = _clean(r.get(k))
                cells.append("-" if v is None or v == "" else (f"{v:.3f}" if isinstance(v, float) else str(v)))
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


# ----------------------------------------------------------------------------- scoring


def _score_recon(recon: np.ndarray, victim: AttackVictim, config: AttackConfig) -> dict:
    from medcloak import metrics

    orig, masks = victim.test_originals, victim.test_masks
    rmap = metrics.vessel_map(recon)
    reid = metrics.reidentification_topk(recon, orig, k=(1, 5), metric=config.reid_metric)
    return {
        "ssim": metrics.ssim(recon, orig),
        "psnr": metrics.psnr(recon, orig),
        "vessel_dice": metrics.vessel_dice(rmap, masks, ignore=victim.test_ignore),
        "vessel_agreement": metrics.vessel_dice(rmap, metrics.vessel_map(orig), ignore=victim.test_ignore),
        "reid_top1": reid[1],
        "reid_top5": reid[5],
    }


def _score_segmentation(seg: np.ndarray, victim: AttackVictim) -> dict:
    from medcloak import metrics

    return {"vessel_dice": metrics.vessel_dice(seg, victim.test_masks, ignore=victim.test_ignore)}


def _row(threat: str, variant: str, scores: dict, prior: dict | None, seconds: float, n_pairs=None) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(threat=threat, variant=variant, n_pairs=n_pairs, seconds=round(seconds, 2))
    row.update(scores)
    if prior is not None:
        for k in _SCORES:
            row[f"prior_{k}"] = prior.get(k)
            if row.get(k) is not None and prior.get(k) is not None:
                row[f"d_{k}"] = float(row[k]) - float(prior[k])
    return row


# ----------------------------------------------------------------------------- runner


def synthetic_attacker(n: int, *, size: int, seed: int) -> AttackerData:
    """The attacker's own semi-synthetic angiograms (noisy frames and masks), generator ``seed``."""
    from medcloak import synth

    s = synth.generate(n, size=size, seed=seed)
    return AttackerData(np.asarray(s.frames, np.float32), np.asarray(s.masks, bool))


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

    Parameters
    ----------
    victim : AttackVictim
    threats : sequence of {"T0", "T1", "T2", "T3", "T4"}
    config : AttackConfig, optional
    attacker : AttackerData, optional
        The attacker's own angiograms and masks (T0, T2, prior); default
        :func:`synthetic_attacker` with ``config.n_attacker`` frames and ``config.attacker_seed``.
    n_figure : int
        Number of test frames whose images are kept in :attr:`AttackResults.images`.
    progress : bool
        tqdm bars on stderr.

    Returns
    -------
    AttackResults
    """
    from tqdm.auto import tqdm

    config = config or AttackConfig()
    threats = list(dict.fromkeys(threats))
    bad = [t for t in threats if t not in THREATS]
    if bad:
        raise MedcloakError(f"unknown threat(s) {', '.join(bad)}; choose from {', '.join(THREATS)}")
    size = victim.test_originals.shape[1]
    if attacker is None:
        attacker = synthetic_attacker(config.n_attacker, size=size, seed=config.attacker_seed)
    if attacker.frames.shape[1:] != victim.test_originals.shape[1:]:
        raise MedcloakError(f"attacker frames {attacker.frames.shape[1:]} differ from victim frames {victim.test_originals.shape[1:]}")
    victim_hashes = {f.tobytes() for f in victim.test_originals}
    if any(f.tobytes() in victim_hashes for f in np.asarray(attacker.frames, np.float32)):
        raise MedcloakError("the attacker's own frames include victim test frames (use another attacker_seed)")
    # figure frames: spread over the test set (consecutive frames are one patient's sequence)
    fig_idx = np.unique(np.linspace(0, len(victim.test_originals) - 1, max(1, n_figure)).round().astype(int))
    images: dict[str, np.ndarray] = {"original": victim.test_originals[fig_idx],
                                     "obfuscated": victim.test_obfuscated[fig_idx]}
    rows: list[dict] = []
    t_start = time.perf_counter()

    # reference rows: the prior and the obfuscated frames themselves
    t = time.perf_counter()
    prior_frame = _prior.mean_frame(attacker.frames)
    prior_scores = _score_recon(_prior.prior_reconstructions(prior_frame, len(victim.test_originals)), victim, config)
    prior_row = _row("prior", "mean attacker frame", prior_scores, None, time.perf_counter() - t)
    images["prior"] = _prior.prior_reconstructions(prior_frame, len(fig_idx))
    t = time.perf_counter()
    rows.append(_row("obfuscated", "human-perception baseline",
                     _score_recon(victim.test_obfuscated, victim, config), prior_scores, time.perf_counter() - t))
    rows.append(prior_row)

    net0 = config.t0_net or config.net
    fitted_same_domain = None  # the attacker's own VAE on own angiograms, shared by T0 and T2

    def same_domain_scheme():
        nonlocal fitted_same_domain
        if fitted_same_domain is None:
            fitted_same_domain = victim.scheme.fit(attacker.frames, seed=config.attacker_seed, progress=progress)
        return fitted_same_domain

    bar = tqdm(threats, desc="attacks", unit="threat", disable=not progress)
    for threat in bar:
        bar.set_postfix(threat=threat)
        if threat == "T0":
            from medcloak.attacks.direct_view import train_direct_view

            t = time.perf_counter()
            dv = train_direct_view(victim.scheme, attacker.frames, attacker.masks, net=net0,
                                   frames_per_key=max(1, config.frames_per_key), copies=config.t0_copies,
                                   seed=config.attacker_seed, fitted=same_domain_scheme(), progress=progress)
            prob = dv.probabilities(victim.test_obfuscated)
            rows.append(_row("T0", "learned direct view", _score_segmentation(prob > dv.threshold, victim),
                             prior_scores, time.perf_counter() - t))
            images["T0"] = prob[fig_idx]
            rows.extend(_handmade_rows(victim, prior_scores))
        elif threat == "T1":
            pool = victim.train_originals
            ns = sorted({min(int(n), len(pool)) for n in config.t1_n if n > 0})
            rng = np.random.default_rng(config.attacker_seed + 1)
            perm = rng.permutation(len(pool))
            for n in ns:
                t = time.perf_counter()
                att = known_plaintext(victim.obfuscate, pool[perm[:n]], net=config.net, levels=victim.levels,
                                      use_table=config.t1_table, progress=progress)
                rec = att.apply(victim.test_obfuscated)
                rows.append(_row("T1", f"n={n}", _score_recon(rec, victim, config), prior_scores,
                                 time.perf_counter() - t, n_pairs=n))
                images["T1"] = rec[fig_idx]  # the largest n is kept for the figure
        elif threat == "T2":
            t = time.perf_counter()
            att = same_domain(victim.scheme, attacker.frames, net=config.net, levels=victim.levels,
                              frames_per_key=config.frames_per_key, seed=config.attacker_seed,
                              fitted=same_domain_scheme(), progress=progress)
            rec = att.apply(victim.test_obfuscated)
            rows.append(_row("T2", _keys_variant(config), _score_recon(rec, victim, config), prior_scores,
                             time.perf_counter() - t, n_pairs=len(attacker.frames)))
            images["T2"] = rec[fig_idx]
        elif threat == "T3":
            t = time.perf_counter()
            att = cross_domain(victim.scheme, n=config.n_cross, size=size, net=config.net, levels=victim.levels,
                               frames_per_key=config.frames_per_key, seed=config.attacker_seed + 4, progress=progress)
            rec = att.apply(victim.test_obfuscated)
            rows.append(_row("T3", _keys_variant(config), _score_recon(rec, victim, config), prior_scores,
                             time.perf_counter() - t, n_pairs=config.n_cross))
            images["T3"] = rec[fig_idx]
        elif threat == "T4":
            from medcloak.attacks.statistics import ciphertext_only_attack

            t = time.perf_counter()
            rec = np.asarray(ciphertext_only_attack(victim.test_obfuscated, levels=victim.levels, **config.t4_options),
                             np.float32)
            rows.append(_row("T4", "ciphertext-only statistics", _score_recon(rec, victim, config), prior_scores,
                             time.perf_counter() - t))
            images["T4"] = rec[fig_idx]
    meta = {
        "threats": threats,
        "scheme": getattr(victim.scheme, "name", type(victim.scheme).__name__),
        "description": victim.description,
        "levels": victim.levels,
        "size": [int(s) for s in victim.test_originals.shape[1:]],
        "n_test": len(victim.test_originals),
        "n_victim_train": len(victim.train_originals),
        "n_attacker": len(attacker.frames),
        "t3_sources": cross_domain_sources() if "T3" in threats else [],
        "config": config.to_dict(),
        "seconds": round(time.perf_counter() - t_start, 2),
        "notes": "ssim/psnr of the 'obfuscated' row compare original and obfuscated frames (what a "
                 "viewer gets for free); T0 scores a segmentation, so it has no ssim/psnr/re-id; "
                 "d_* = attack - prior.",
    }
    return AttackResults(rows=rows, meta=meta, images=images, masks=victim.test_masks[fig_idx])


def _keys_variant(config: AttackConfig) -> str:
    return "one own key" if config.frames_per_key <= 0 else f"own key every {config.frames_per_key} frames"


def _handmade_rows(victim: AttackVictim, prior_scores: dict) -> list[dict]:
    """T0's floor: hand-made views of the obfuscated frames (Otsu-thresholded), scored by Dice."""
    try:
        from medcloak.attacks.handmade import handmade_vessel_masks
    except ImportError:
        return []
    from medcloak import metrics

    t = time.perf_counter()
    masks = handmade_vessel_masks(victim.test_obfuscated)
    seconds = (time.perf_counter() - t) / max(len(masks), 1)
    return [_row("T0-handmade", str(name), {"vessel_dice": metrics.vessel_dice(m, victim.test_masks, ignore=victim.test_ignore)},
                 prior_scores, seconds)
            for name, m in masks.items()]


# ----------------------------------------------------------------------------- synthetic victim


def synthetic_victim(
    *,
    size: int = 64,
    n: int = 256,
    seed: int = 0,
    obfuscation=None,
    test_fraction: float = 0.25,
    progress: bool = True,
) -> AttackVictim:
    """A victim on the semi-synthetic generator: a fitted medcloak obfuscator under a fresh key.

    Parameters
    ----------
    size, n, seed : int
        Frame side (pixels), number of frames and generator seed of the victim's data.
    obfuscation : ObfuscationConfig, optional
        The victim's (public) config; default ``ObfuscationConfig()`` (VAE then 256-level map).
    test_fraction : float
        Fraction of patients held out as test frames (patient-wise split, experiment seed ``seed``).
    progress : bool
        VAE training bar.

    Returns
    -------
    AttackVictim
        Its key is a fresh :meth:`medcloak.keys.Key.generate` key, never stored.
    """
    from medcloak import synth
    from medcloak.keys import Key
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator

    config = obfuscation or ObfuscationConfig()
    s = synth.generate(n, size=size, seed=seed)
    frames, masks = np.asarray(s.frames, np.float32), np.asarray(s.masks, bool)
    pids = np.asarray(s.patient_ids)
    patients = np.unique(pids)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(test_fraction * len(patients))))
    test_p = set(rng.choice(patients, size=n_test, replace=False).tolist())
    is_test = np.array([p in test_p for p in pids])
    if is_test.all() or not is_test.any():
        raise MedcloakError(f"synthetic victim: need at least two patients, got {len(patients)}")
    train = frames[~is_test]
    obf = Obfuscator(Key.generate(), config=config)
    n_val = max(1, len(train) // 10)
    obf.fit(train[n_val:], train[:n_val], progress=progress)
    return AttackVictim(
        scheme=MedcloakScheme(config),
        obfuscate=obf.obfuscate,
        train_originals=train,
        test_originals=frames[is_test],
        test_obfuscated=obf.obfuscate(frames[is_test]),
        test_masks=masks[is_test],
        test_ignore=np.asarray(s.catheter, bool)[is_test] if s.catheter is not None else None,
        levels=config.resolved_out_levels,
        description=f"synthetic victim: {n} frames {size}x{size}, generator seed {seed}, "
                    f"{len(patients)} patients ({n_test} test), order={config.order}, levels={config.levels}",
    )


def dataset_victim(obfuscator, manifest, *, size: int | None = None, attacker_config=None) -> AttackVictim:
    """A victim from a real fitted obfuscator and its dataset (``labels.csv`` with a ``mask`` column).

    Parameters
    ----------
    obfuscator : medcloak.obfuscation.pipeline.Obfuscator
        The fitted victim obfuscator (its key is only used to make T1's leaked pairs and the
        obfuscated test frames).
    manifest : medcloak.io.dataset.Manifest
        Its train split is the pool of leaked originals (T1); its test split is attacked and needs
        a ``mask`` column (vessel masks) for the vessel scores.
    size : int, optional
        Frame side; default the obfuscator's ``image_size``.
    attacker_config : ObfuscationConfig, optional
        The public config the attackers re-run (default the victim's own config, which is public).
    """
    from medcloak.io.arrays import load_split
    from medcloak.io.dataset import LABELS_CSV

    size = size or (obfuscator.input_size or (None,))[0]
    if size is None:
        raise MedcloakError("give the frame size (the obfuscator accepts any size)")
    train = load_split(manifest, "train", size=size)
    test = load_split(manifest, "test", size=size)
    if len(test) == 0 or len(train) == 0:
        raise MedcloakError("the dataset needs 'train' and 'test' split rows", manifest.root / LABELS_CSV)
    masks = load_split(manifest, "test", column="mask", size=size)
    ignore = None
    if all(r.extra.get("catheter_mask") for r in manifest.subset("test")):  # written by write_synth
        ignore = np.asarray(load_split(manifest, "test", column="catheter_mask", size=size), bool)
    config = obfuscator.config
    return AttackVictim(
        scheme=MedcloakScheme(attacker_config or config),
        obfuscate=obfuscator.obfuscate,
        train_originals=train,
        test_originals=test,
        test_obfuscated=obfuscator.obfuscate(test),
        test_masks=masks,
        test_ignore=ignore,
        levels=config.resolved_out_levels,
        description=f"dataset {manifest.root}: {len(train)} train / {len(test)} test frames at {size}x{size}, "
                    f"order={config.order}, levels={config.levels}, key {obfuscator.key.short_fingerprint}",
    )
