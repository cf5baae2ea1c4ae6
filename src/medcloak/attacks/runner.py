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
from medcloak.attacks.base import COLUMNS, AttackerData, Knowledge, attack_names, get_attack, make_row, score
from medcloak.attacks.own import PublicScheme, image_like
from medcloak.attacks.reconstruction import cross_domain_sources
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
    levels : int or None
        Grey levels of the obfuscated frames (public parameter); ``None`` when not quantised.
    description : str
        Free text kept in the results' metadata.
    ciphertexts : ndarray (K, H, W), optional
        Every obfuscated frame the cloud holds (train, val and test): T4 then adds a row pooling
        them all, scored on the test frames.
    ciphertext_victims : ndarray of bool (K,), optional
        Which of ``ciphertexts`` are the test frames (in their order).
    """

    scheme: PublicScheme
    obfuscate: Callable[[np.ndarray], np.ndarray]
    train_originals: np.ndarray
    test_originals: np.ndarray
    test_obfuscated: np.ndarray
    test_masks: np.ndarray
    levels: int | None = 256
    description: str = ""
    test_ignore: np.ndarray | None = None
    ciphertexts: np.ndarray | None = None
    ciphertext_victims: np.ndarray | None = None

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
        shapes = {self.test_originals.shape, self.test_masks.shape}
        if len(shapes) != 1 or self.test_originals.ndim != 3 or len(self.test_originals) == 0 \
                or len(self.test_obfuscated) != len(self.test_originals):
            raise MedcloakError(f"victim: test originals and masks must be equal (M, H, W) stacks with one obfuscated "
                                f"frame each, got {sorted(shapes)} and {self.test_obfuscated.shape}")
        if self.train_originals.ndim != 3 or self.train_originals.shape[1:] != self.test_originals.shape[1:]:
            raise MedcloakError(f"victim: training frames {self.train_originals.shape} do not match test frames {self.test_originals.shape}")
        if (self.ciphertexts is None) != (self.ciphertext_victims is None):
            raise MedcloakError("victim: ciphertexts and ciphertext_victims go together")

    @property
    def test_images(self) -> np.ndarray | None:
        """The obfuscated test frames as images of the originals' size
        (:func:`medcloak.attacks.own.image_like`), or ``None`` (patch tokens)."""
        return image_like(self.test_obfuscated, self.test_originals.shape[1:])

    @classmethod
    def from_frameset(cls, data, scheme, *, obfuscated: np.ndarray | None = None, public: PublicScheme | None = None,
                      pool_ciphertexts: bool = False, description: str = "") -> "AttackVictim":
        """The victim of a split :class:`~medcloak.io.frameset.FrameSet` and its fitted scheme.

        Parameters
        ----------
        data : FrameSet
            With ``train`` and ``test`` frames and vessel masks (``masks``).
        scheme : Scheme
            The victim's fitted scheme (its key makes T1's leaked pairs).
        obfuscated : ndarray (N, H, W), optional
            ``scheme.apply(data.frames)`` when already computed (every frame, in order);
            otherwise the test frames are obfuscated here.
        public : PublicScheme, optional
            What the attackers re-run (default: the victim's own scheme name and config, public).
        pool_ciphertexts : bool
            Hand T4 every obfuscated frame the cloud holds (needs ``obfuscated``).
        """
        test, train = data.split == "test", data.split == "train"
        if not test.any() or not train.any():
            raise MedcloakError("the attacked data needs 'train' and 'test' frames")
        if data.masks is None:
            raise MedcloakError("the attacked data has no vessel masks")
        if obfuscated is None:
            if pool_ciphertexts:
                raise MedcloakError("pool_ciphertexts needs the obfuscated frames of the whole set")
            test_obf = scheme.apply(data.frames[test])
        else:
            test_obf = np.asarray(obfuscated, np.float32)[test]
        return cls(
            scheme=public or PublicScheme(scheme.name, scheme.config), obfuscate=scheme.apply,
            train_originals=data.frames[train], test_originals=data.frames[test], test_obfuscated=test_obf,
            test_masks=data.masks[test], test_ignore=None if data.catheter is None else data.catheter[test],
            levels=scheme.output_levels, description=description,
            ciphertexts=np.asarray(obfuscated, np.float32) if pool_ciphertexts else None,
            ciphertext_victims=test.copy() if pool_ciphertexts else None,
        )


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

    # reference rows: the prior and the obfuscated frames themselves
    t = time.perf_counter()
    prior_frame = _prior.mean_frame(attacker.frames)
    prior_scores = scored(_prior.prior_reconstructions(prior_frame, len(victim.test_originals)))
    prior_row = make_row("prior", "mean attacker frame", prior_scores, time.perf_counter() - t)
    images["prior"] = _prior.prior_reconstructions(prior_frame, len(fig_idx))
    t = time.perf_counter()
    if seen is not None:
        rows.append(make_row("obfuscated", "human-perception baseline", scored(seen, prior=prior_scores),
                             time.perf_counter() - t))
    rows.append(prior_row)

    shape = victim.test_originals.shape[1:]

    def leak(x):  # the victim's own obfuscation, as image attacks read it
        return image_like(victim.obfuscate(x), shape)

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
        for variant in cls.variants(knowledge):
            t = time.perf_counter()
            attack = cls(variant).fit(knowledge)
            out = attack(seen if cls.input == "image" else victim.test_obfuscated)
            result = out > attack.threshold if cls.kind == "segmentation" else out
            rows.append(make_row(threat, attack.label, scored(result, cls.kind, prior_scores),
                                 time.perf_counter() - t, n_pairs=attack.n_pairs))
            images[threat] = out[fig_idx]
        if attack is not None:
            rows.extend(attack.extra_rows(victim, prior_scores))
    meta = {
        "threats": threats,
        "scheme": victim.scheme.name,
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


# ----------------------------------------------------------------------------- synthetic victim


def synthetic_victim(
    *,
    size: int = 64,
    n: int = 256,
    seed: int = 0,
    obfuscation=None,
    scheme: str = "paper",
    test_fraction: float = 0.25,
    progress: bool = True,
) -> AttackVictim:
    """A victim on the semi-synthetic generator: a fitted scheme under a fresh key.

    Parameters
    ----------
    size, n, seed : int
        Frame side (pixels), number of frames and generator seed of the victim's data.
    obfuscation : Config, optional
        The victim's (public) scheme config; default the scheme's defaults (``paper``: VAE then
        256-level map).
    scheme : str
        The victim's scheme.
    test_fraction : float
        Fraction of patients held out as test frames (patient-wise split, experiment seed ``seed``).
    progress : bool
        Training bar.

    Returns
    -------
    AttackVictim
        Its key is a fresh :meth:`medcloak.keys.Key.generate` key, never stored.
    """
    from medcloak import synth
    from medcloak.keys import Key
    from medcloak.obfuscation.scheme import make_scheme

    data = synth.generate(n, size=size, seed=seed)
    pids = np.asarray(data.patient_ids)
    patients = np.unique(pids)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(test_fraction * len(patients))))
    test_p = set(rng.choice(patients, size=n_test, replace=False).tolist())
    is_test = np.array([p in test_p for p in pids])
    if is_test.all() or not is_test.any():
        raise MedcloakError(f"synthetic victim: need at least two patients, got {len(patients)}")
    data.split = np.where(is_test, "test", "train")
    train = data.frames[~is_test]
    n_val = max(1, len(train) // 10)
    victim = make_scheme(scheme, obfuscation).fit(train[n_val:], Key.generate(), val=train[:n_val], progress=progress)
    c = victim.config
    return AttackVictim.from_frameset(
        data, victim,
        description=f"synthetic victim: {n} frames {size}x{size}, generator seed {seed}, "
                    f"{len(patients)} patients ({n_test} test), scheme {scheme}"
                    + (f", order={c.order}, levels={c.levels}" if scheme == "paper" else f", config {c}"),
    )


def dataset_victim(scheme, dataset, *, size: int | None = None, public: PublicScheme | None = None) -> AttackVictim:
    """A victim from a real fitted scheme and its dataset (``labels.csv`` with a ``mask`` column).

    Parameters
    ----------
    scheme : Scheme
        The fitted victim scheme (its key is only used to make T1's leaked pairs and the
        obfuscated test frames).
    dataset : path-like or Manifest
        Its train split is the pool of leaked originals (T1); its test split is attacked and needs
        a ``mask`` column (vessel masks) for the vessel scores.
    size : int, optional
        Frame side; default the scheme's input size.
    public : PublicScheme, optional
        What the attackers re-run (default the victim's own scheme and config, which are public).
    """
    from medcloak.io.frameset import load_dataset

    size = size or (scheme.input_size or (None,))[0]
    if size is None:
        raise MedcloakError("give the frame size (the scheme accepts any size)")
    data = load_dataset(dataset, size)
    if "NO vessel masks" in data.source:
        raise MedcloakError("the dataset needs a 'mask' column (vessel masks) to score attacks")
    return AttackVictim.from_frameset(
        data, scheme, public=public,
        description=f"dataset {dataset}: {int((data.split == 'train').sum())} train / "
                    f"{int((data.split == 'test').sum())} test frames at {size}x{size}, scheme {scheme.name}, "
                    f"key {scheme.key.short_fingerprint}",
    )
