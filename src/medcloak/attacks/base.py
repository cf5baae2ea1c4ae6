"""Attacks as plug-ins: the :class:`Attack` interface, what an attacker may know, the registry, scoring.

An attack is built from what its attacker knows and then applied to the victim's obfuscated
frames::

    attack = get_attack("T2")(variant).fit(knowledge)   # trains on what the threat model allows
    out = attack(victim_obfuscated)                      # reconstructions, or vessel probabilities

:class:`Knowledge` holds everything any attacker could be given; each attack reads only the
fields its threat model allows (``docs/threat-model.md``) and says so in :attr:`Attack.knows`.
:func:`score` scores any result against the victim's originals and vessel masks, beside the
prior. :func:`medcloak.attacks.runner.run_attacks` is a loop over the registry: a new attack
is one new class plus one line in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from medcloak.errors import MedcloakError

__all__ = ["Attack", "Knowledge", "AttackerData", "BUILTIN", "register_attack", "get_attack", "attack_names",
           "score", "make_row", "over_keys", "COLUMNS", "SCORES", "RANGES"]

#: Threat name -> "module:Class" of the built-in attacks (imported on first use).
BUILTIN: dict[str, str] = {
    "T0": "medcloak.attacks.direct_view:DirectView",
    "T1": "medcloak.attacks.reconstruction:KnownPlaintext",
    "T2": "medcloak.attacks.reconstruction:SameDomain",
    "T3": "medcloak.attacks.reconstruction:CrossDomain",
    "T4": "medcloak.attacks.ciphertext_only:CiphertextOnly",
    "T1-secret": "medcloak.attacks.secret:SecretKnownPlaintext",
    "jigsaw": "medcloak.attacks.jigsaw:Jigsaw",
    "matching": "medcloak.attacks.matching:DistributionMatching",
}
_REGISTRY: dict[str, type] = {}

#: The scores every row carries (and their ``prior_*`` / ``d_*`` versions).
SCORES = ("ssim", "psnr", "vessel_dice", "reid_top1", "reid_top5")

#: Range columns of rows scored over several victim keys: ``<score>_min`` / ``<score>_max``.
RANGES = tuple(f"{s}_{end}" for s in SCORES for end in ("min", "max"))

#: Columns of every results row, in CSV order. Rows scored over victim keys (:func:`over_keys`)
#: hold the mean over keys in the score columns, its range in :data:`RANGES`, the number of
#: keys in ``n_keys``; ``note`` says why a row has fewer keys than asked.
COLUMNS = (
    "threat", "variant", "n_pairs", "ssim", "psnr", "vessel_dice", "vessel_agreement", "reid_top1", "reid_top5",
    "prior_ssim", "prior_psnr", "prior_vessel_dice", "prior_reid_top1", "prior_reid_top5",
    "d_ssim", "d_psnr", "d_vessel_dice", "d_reid_top1", "d_reid_top5", "seconds",
    "n_keys", *RANGES, "note",
)


def make_row(threat: str, variant: str, scores: dict, seconds: float, n_pairs=None) -> dict:
    """One results row with every column of :data:`COLUMNS` (missing ones ``None``)."""
    row = dict.fromkeys(COLUMNS)
    row.update(threat=threat, variant=variant, n_pairs=n_pairs, seconds=round(seconds, 2))
    row.update(scores)
    return row


def over_keys(rows: list[dict], *, note: str = "") -> dict:
    """One row from the rows of the same attack scored under several victim keys.

    The score columns, ``prior_*`` and ``d_*`` hold the mean over keys (``d_* = mean - prior``),
    :data:`RANGES` the smallest and largest value, ``n_keys`` the number of keys, ``seconds``
    the mean per key, ``note`` the caller's remark. A score missing under any key stays ``None``.

    Examples
    --------
    >>> r = over_keys([make_row("T4", "", {"ssim": 0.2}, 1.0), make_row("T4", "", {"ssim": 0.6}, 3.0)])
    >>> round(r["ssim"], 3), r["ssim_min"], r["ssim_max"], r["n_keys"], r["seconds"]
    (0.4, 0.2, 0.6, 2, 2.0)
    """
    if not rows:
        raise MedcloakError("over_keys() needs at least one row")
    out = dict(rows[0])
    numeric = [c for c in COLUMNS if c not in ("threat", "variant", "n_pairs", "n_keys", "note", *RANGES)]
    for c in numeric:
        vals = [r.get(c) for r in rows]
        if any(v is None for v in vals):
            out[c] = None
            continue
        out[c] = float(np.mean(np.asarray(vals, dtype=np.float64)))
        if c in SCORES:
            out[f"{c}_min"], out[f"{c}_max"] = float(min(vals)), float(max(vals))
    out["seconds"] = None if out["seconds"] is None else round(out["seconds"], 2)
    out["n_keys"] = len(rows)
    out["note"] = note or None
    return out


@dataclass
class AttackerData:
    """The attacker's own angiograms (other patients), their vessel masks and task labels."""

    frames: np.ndarray
    masks: np.ndarray
    labels: list | None = None


@dataclass
class Knowledge:
    """Everything an attacker could be given; each attack uses only what its threat allows.

    Attributes
    ----------
    scheme : PublicScheme
        The public algorithm and config (:class:`medcloak.attacks.own.PublicScheme`).
    attacker : AttackerData
        The attacker's own angiograms and masks (T0, T2, the prior).
    config : AttackConfig
        The attacker's effort (:class:`medcloak.attacks.runner.AttackConfig`).
    size : int
        Frame side.
    levels : int or None
        Grey levels of the obfuscated frames (public), ``None`` for non-quantised outputs.
    image_output : bool
        The obfuscated frames can be read as images of the originals' size
        (:func:`medcloak.attacks.own.image_like`); False for patch tokens.
    uses_labels : bool
        The scheme trains with task labels (the attacker's re-run then needs its own labels).
    leak : callable, optional
        The victim's own fitted obfuscation (T1 only: it makes the leaked pairs), its output read
        as images (:func:`medcloak.attacks.own.image_like`).
    leak_raw : callable, optional
        The same, its output as the cloud holds it (attacks that read a scheme's secret off pairs).
    leak_pool : ndarray (N, H, W), optional
        Victim originals that may leak (T1).
    ciphertexts : ndarray (M, H, W), optional
        Every obfuscated frame the cloud holds (T4's pooled variant).
    ciphertext_victims : ndarray of bool (M,), optional
        Which of ``ciphertexts`` are the attacked test frames, in order.
    progress : bool
    """

    scheme: object
    attacker: AttackerData
    config: object
    size: int
    levels: int | None = 256
    image_output: bool = True
    uses_labels: bool = False
    leak: Callable[[np.ndarray], np.ndarray] | None = None
    leak_raw: Callable[[np.ndarray], np.ndarray] | None = None
    leak_pool: np.ndarray | None = None
    ciphertexts: np.ndarray | None = None
    ciphertext_victims: np.ndarray | None = None
    progress: bool = True
    _own: object = None  # the attacker's fitted own scheme, shared by T0 and T2

    def own_obfuscation(self):
        """The public scheme fitted on the attacker's own frames (fitted once, then shared)."""
        if self._own is None:
            labels = self.attacker.labels if self.uses_labels else None
            self._own = self.scheme.fit(self.attacker.frames, seed=self.config.attacker_seed, progress=self.progress,
                                        images=True, labels=labels)
        return self._own


class Attack:
    """Base class of an attack (see the module docstring).

    Parameters
    ----------
    variant : str
        One of :meth:`variants` (e.g. T1's ``"n=10"``); ``""`` for attacks without variants.
    """

    #: Threat-model name (``"T0"`` ... or a scheme-specific attack's name).
    threat: ClassVar[str] = ""
    #: What the attacker knows, in one phrase (reports show it).
    knows: ClassVar[str] = ""
    #: ``"reconstruction"`` (frames) or ``"segmentation"`` (vessel probabilities in [0, 1]).
    kind: ClassVar[str] = "reconstruction"
    #: What ``__call__`` takes: ``"image"`` (the release as an image of the frame's size,
    #: :func:`medcloak.attacks.own.image_like`) or ``"raw"`` (the release as the cloud holds it).
    input: ClassVar[str] = "image"
    #: Score the attack over several victim keys (:attr:`AttackConfig.victim_keys`): fitted once,
    #: then applied to the victim's frames under each key (:meth:`for_victim_key`). For attacks
    #: whose figure depends on which key the victim happened to draw (T0, T4).
    per_key: ClassVar[bool] = False

    def __init__(self, variant: str = ""):
        self.variant = variant
        self.threshold = 0.5  # segmentations: decision threshold chosen by the attacker

    @classmethod
    def variants(cls, knowledge: Knowledge) -> list[str]:
        """The rows this attack gives (default: one)."""
        return [""]

    @classmethod
    def applies(cls, knowledge: Knowledge) -> str | None:
        """Why this attack does not fit the scheme (``None``: it does). Default: the attack works
        on images, so it needs an output that reads as an image of the frame's size."""
        if not knowledge.image_output:
            return "the scheme's output is not an image (a scheme-specific attack is needed)"
        return None

    @property
    def label(self) -> str:
        """The ``variant`` column of the attack's row."""
        return self.variant

    @property
    def n_pairs(self) -> int | None:
        """Training pairs the attack used, when that is its measure of effort."""
        return None

    def fit(self, knowledge: Knowledge) -> "Attack":  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, obfuscated: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def for_victim_key(self, knowledge: Knowledge) -> "Attack":
        """The fitted attack facing the victim under another key (``knowledge`` holds what the
        attacker sees under that key, e.g. its ciphertexts). Default: ``self`` unchanged, for
        attacks whose fit never saw the victim (T0 is trained on the attacker's own keys)."""
        return self

    def extra_rows(self, victim, prior: dict) -> list[dict]:
        """Further rows this attack adds after its own (T0: the hand-made floor)."""
        return []


def register_attack(cls: type) -> type:
    """Register an :class:`Attack` subclass under its ``threat`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Attack) and cls.threat):
        raise MedcloakError("register_attack() takes an Attack subclass with a threat name")
    _REGISTRY[cls.threat] = cls
    return cls


def get_attack(threat: str) -> type:
    """The :class:`Attack` class registered (or built in) under ``threat``."""
    if threat not in _REGISTRY and threat in BUILTIN:
        module, _, attr = BUILTIN[threat].partition(":")
        register_attack(getattr(importlib.import_module(module), attr))
    if threat not in _REGISTRY:
        raise MedcloakError(f"unknown threat(s) {threat}; choose from {', '.join(attack_names())}")
    return _REGISTRY[threat]


def attack_names() -> list[str]:
    """Names of every built-in and registered attack."""
    return sorted(set(BUILTIN) | set(_REGISTRY))


def score(result: np.ndarray, victim, prior: dict | None = None, *, kind: str = "reconstruction",
          reid_metric: str = "ssim") -> dict:
    """Score an attack's output against the victim's test frames, and beside the prior.

    Parameters
    ----------
    result : ndarray (M, H, W)
        Reconstructions in [0, 1] (``kind="reconstruction"``) or a boolean vessel segmentation
        (``kind="segmentation"``), one per victim test frame.
    victim : AttackVictim
        Its ``test_originals``, ``test_masks`` and ``test_ignore`` are the truth.
    prior : dict, optional
        The prior's scores: adds ``prior_<s>`` and ``d_<s> = attack - prior`` for every score.
    kind : {"reconstruction", "segmentation"}
    reid_metric : {"ssim", "corr"}
        Similarity of :func:`medcloak.metrics.reidentification_topk`.

    Returns
    -------
    dict
        Reconstructions: ``ssim``, ``psnr``, ``vessel_dice`` (:func:`~medcloak.metrics.vessel_map`
        of the reconstruction vs the masks), ``vessel_agreement`` (vs the vessel map of the
        original), ``reid_top1``, ``reid_top5``. Segmentations: ``vessel_dice`` only.
    """
    from medcloak import metrics

    if kind == "segmentation":
        out = {"vessel_dice": metrics.vessel_dice(result, victim.test_masks, ignore=victim.test_ignore)}
    elif kind == "reconstruction":
        orig = victim.test_originals
        rmap = metrics.vessel_map(result)
        reid = metrics.reidentification_topk(result, orig, k=(1, 5), metric=reid_metric)
        out = {
            "ssim": metrics.ssim(result, orig),
            "psnr": metrics.psnr(result, orig),
            "vessel_dice": metrics.vessel_dice(rmap, victim.test_masks, ignore=victim.test_ignore),
            "vessel_agreement": metrics.vessel_dice(rmap, metrics.vessel_map(orig), ignore=victim.test_ignore),
            "reid_top1": reid[1],
            "reid_top5": reid[5],
        }
    else:
        raise MedcloakError(f"score: kind must be 'reconstruction' or 'segmentation', got {kind!r}")
    if prior is not None:
        for k in SCORES:
            out[f"prior_{k}"] = prior.get(k)
            if out.get(k) is not None and prior.get(k) is not None:
                out[f"d_{k}"] = float(out[k]) - float(prior[k])
    return out
