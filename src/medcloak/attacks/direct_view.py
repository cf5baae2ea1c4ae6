"""T0 direct view: what a viewer of an obfuscated frame sees for free, measured by a learner.

Hand-made filters under-measure what a person sees (in calibration, on frames mapped at 32
levels where a person traced every vessel, a Frangi filter scored Dice 0.10), so T0 is a
vessel-segmentation U-Net trained on the attacker's own synthetic frames and vessel masks,
obfuscated under MANY of the attacker's own keys (a fresh key every ``frames_per_key`` frames,
each frame under ``copies`` keys), so that it learns cues that survive any key, such as the
outlines of the grey-level bands. It is applied to the victim's obfuscated frames and scored by
the Dice of its thresholded prediction against the generator's masks.

Input (:func:`direct_view_features`, ``features="bands"``): the obfuscated frame plus three
key-independent channels -- the band outlines (does a neighbour have another value?) and each
pixel's value rarity (how many pixels of the frame share its value). A keyed map renames grey
levels but keeps which pixels share a level and how often each level occurs, and a viewer sees
exactly that. Fed the raw frame alone, the same network learned far less in the same budget
(64x64, a 32-level map without VAE, 256 attacker frames under 2 keys each: victim Dice 0.28 vs
0.59), i.e. it under-measured T0.

Everything the attacker decides is decided on its OWN data, never on the victim's masks: a tail
block of the attacker's frames (``heldout_fraction``; consecutive frames are one patient's
sequence, so these are other patients, up to one boundary patient) is obfuscated under further
own keys that training never used. On that held-out set the attacker

* stops training early (the held-out best-threshold Dice is checked every ``eval_every`` steps;
  the best weights are kept), and
* chooses the decision threshold that maximises the held-out Dice (:func:`choose_threshold`),

and records the threshold-free scores average precision and best-threshold Dice there
(:attr:`DirectViewAttack.heldout`). An attacker that learned nothing shows it in those scores
(AP near the vessel prevalence), so an empty prediction cannot pass for privacy.
:func:`score_direct_view` scores a trained attack on labelled victim frames the same way (Dice at
the attacker's threshold, plus AP and the oracle best-threshold Dice as threshold-free checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from medcloak.attacks.base import Attack, Knowledge, make_row, score
from medcloak.attacks.own import PublicScheme, obfuscate_under_keys
from medcloak.attacks.unet import NetConfig, predict, train_network
from medcloak.errors import MedcloakError

__all__ = [
    "DirectView",
    "DirectViewAttack",
    "train_direct_view",
    "choose_threshold",
    "average_precision",
    "score_direct_view",
    "FEATURES",
    "direct_view_features",
]

#: Input representations of the T0 network (see :func:`direct_view_features`).
FEATURES = ("raw", "bands")


def direct_view_features(obfuscated: np.ndarray, *, features: str = "bands") -> np.ndarray:
    """What the T0 network is fed: the obfuscated frames and key-independent views of them.

    A keyed map makes a grey value meaningless, but not *which pixels share a value*: that
    partition of the frame into grey-level bands survives any key (up to the levels the map
    merges). The ``"bands"`` representation spells it out, so the network need not learn
    equality tests from raw values.

    Parameters
    ----------
    obfuscated : ndarray (N, H, W) or (H, W), values in [0, 1]
    features : {"raw", "bands"}
        ``"raw"``: the frame only, shape (N, 1, H, W). ``"bands"``: 4 channels, (N, 4, H, W):
        the frame; the fraction of the 4 edge neighbours whose value differs (band outlines);
        the same for the 4 diagonal neighbours; and ``-log(f) / log(H*W)`` with ``f`` the
        fraction of the frame's pixels that share the pixel's value (small bands -> near 1).
        Neighbours outside the frame mirror the edge (no outline at the border). All channels
        are in [0, 1] and invariant to a flip of the frame.

    Returns
    -------
    ndarray, float32 (N, C, H, W)
    """
    if features not in FEATURES:
        raise MedcloakError(f"T0: features must be one of {', '.join(FEATURES)}, got {features!r}")
    x = np.asarray(obfuscated, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise MedcloakError(f"T0: expected (N, H, W) frames, got shape {x.shape}")
    if features == "raw":
        return x[:, None].copy()
    n, h, w = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    c = p[:, 1:-1, 1:-1]

    def differs(dy: int, dx: int) -> np.ndarray:
        return p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] != c

    edge = (differs(0, 1).astype(np.float32) + differs(0, -1) + differs(1, 0) + differs(-1, 0)) / 4
    diag = (differs(1, 1).astype(np.float32) + differs(1, -1) + differs(-1, 1) + differs(-1, -1)) / 4
    rarity = np.empty_like(x)
    for i, f in enumerate(x):
        _, inv, counts = np.unique(f, return_inverse=True, return_counts=True)
        rarity[i] = (-np.log(counts[inv.reshape(f.shape)] / f.size) / np.log(f.size)).astype(np.float32)
    return np.stack([x, edge, diag, rarity], axis=1)


@dataclass
class DirectViewAttack:
    """A trained key-independent vessel segmenter for obfuscated frames.

    Attributes
    ----------
    net : nn.Module
        The segmentation U-Net (:mod:`medcloak.attacks.unet`), fed
        :func:`direct_view_features` of the obfuscated frames.
    threshold : float
        Decision threshold on the vessel probability, chosen on the attacker's held-out frames.
    heldout : dict
        What the attacker measured on its own held-out frames: ``dice`` (at ``threshold``, =
        the best-threshold Dice), ``ap`` (average precision), ``prevalence`` (vessel fraction
        of the pixels: AP of a guess), ``dice_at_0.5``, ``n_frames``, ``curve`` (list of
        ``[step, best-threshold Dice]``), ``best_step``, ``steps_run``, ``max_steps``.
        Empty when trained without a held-out set.
    features : {"raw", "bands"}
        The network's input representation (:func:`direct_view_features`).
    """

    net: nn.Module
    threshold: float = 0.5
    heldout: dict = field(default_factory=dict)
    features: str = "raw"

    def probabilities(self, obfuscated: np.ndarray) -> np.ndarray:
        """Vessel probability per pixel, float32 (N, H, W) in [0, 1]."""
        return predict(self.net, direct_view_features(obfuscated, features=self.features))

    def segment(self, obfuscated: np.ndarray) -> np.ndarray:
        """Vessel masks, bool (N, H, W): probability above ``threshold``."""
        return self.probabilities(obfuscated) > self.threshold

    def report(self) -> dict:
        """JSON-serialisable summary: ``threshold`` and the ``heldout`` scores."""
        return {"threshold": float(self.threshold), "features": self.features, **self.heldout}


def _dice_curve(prob: np.ndarray, masks: np.ndarray, thresholds: np.ndarray,
                keep: np.ndarray | None = None) -> np.ndarray:
    """Mean per-frame Dice of ``prob > t`` for each ``t`` (two empty masks count 1.0), counting
    only pixels where ``keep`` (as :func:`medcloak.metrics.vessel_dice` with ``ignore=~keep``)."""
    if keep is not None:
        masks = masks & keep
    t_sum = masks.sum(axis=(1, 2)).astype(np.float64)
    out = np.empty(len(thresholds))
    for i, t in enumerate(thresholds):
        p = prob > t
        if keep is not None:
            p &= keep
        inter = (p & masks).sum(axis=(1, 2))
        total = p.sum(axis=(1, 2)) + t_sum
        out[i] = np.mean(np.divide(2.0 * inter, total, out=np.ones_like(total), where=total > 0))
    return out


def _candidates(prob: np.ndarray) -> np.ndarray:
    """A fixed grid 0.01..0.99 plus high quantiles of ``prob`` (so that a net whose
    probabilities never reach the grid still gets non-empty candidate masks)."""
    q = np.quantile(prob, np.linspace(0.80, 0.999, 60))
    return np.unique(np.concatenate([np.linspace(0.01, 0.99, 99), q]).astype(np.float64))


def _keep(ignore, shape) -> np.ndarray | None:
    if ignore is None:
        return None
    g = np.asarray(ignore).astype(bool)
    if g.shape != shape:
        raise MedcloakError(f"T0: ignore mask {g.shape} differs from the frames {shape}")
    return ~g


def choose_threshold(prob: np.ndarray, masks: np.ndarray, *, ignore: np.ndarray | None = None) -> tuple[float, float]:
    """The threshold that maximises the mean per-frame Dice of ``prob > t`` against ``masks``.

    Parameters
    ----------
    prob : ndarray (N, H, W) or (H, W), values in [0, 1]
        Vessel probabilities (of the ATTACKER's held-out frames: never the victim's).
    masks : ndarray of bool, same shape
    ignore : ndarray of bool, same shape, optional
        Pixels counted neither way (e.g. the catheter).

    Returns
    -------
    threshold, dice : float, float
        Candidates: 0.01, 0.02, ..., 0.99 and 60 quantiles (0.80-0.999) of ``prob``; on ties
        the lowest threshold wins.
    """
    p = np.asarray(prob, dtype=np.float32)
    m = np.asarray(masks).astype(bool)
    if p.shape != m.shape:
        raise MedcloakError(f"T0: probabilities {p.shape} and masks {m.shape} differ")
    keep = _keep(ignore, p.shape)
    if p.ndim == 2:
        p, m = p[None], m[None]
        keep = None if keep is None else keep[None]
    cand = _candidates(p)
    dice = _dice_curve(p, m, cand, keep)
    i = int(np.argmax(dice))
    return float(cand[i]), float(dice[i])


def average_precision(prob: np.ndarray, masks: np.ndarray, *, ignore: np.ndarray | None = None) -> float:
    """Pixel-wise average precision of ``prob`` for ``masks`` (all frames pooled; ``ignore``d
    pixels left out).

    Threshold-free: a constant or uninformative ``prob`` scores about the vessel prevalence
    (``masks.mean()``), a perfect ranking 1.0. Uses
    :func:`sklearn.metrics.average_precision_score`. NaN when ``masks`` has no vessel pixel.
    """
    from sklearn.metrics import average_precision_score

    m = np.asarray(masks).astype(bool)
    p = np.asarray(prob, dtype=np.float64)
    keep = _keep(ignore, m.shape)
    m, p = (m.ravel(), p.ravel()) if keep is None else (m[keep], p[keep])
    if not m.any():
        return float("nan")
    return float(average_precision_score(m, p))


def score_direct_view(attack: DirectViewAttack, obfuscated: np.ndarray, masks: np.ndarray, *,
                      ignore: np.ndarray | None = None) -> dict:
    """Score T0 on labelled frames (the victim's test frames, for the report).

    ``ignore`` (bool, shape of ``masks``): pixels counted neither way (the catheter), as in
    :func:`medcloak.metrics.vessel_dice`.

    Returns
    -------
    dict
        ``dice`` at the attacker's own ``threshold`` (the T0 score), ``ap`` (threshold-free),
        ``oracle_dice`` and ``oracle_threshold`` (the best threshold on these very masks: an
        upper bound no attacker can choose, reported only to show that the threshold is not
        what hides the vessels), ``predicted_fraction`` / ``true_fraction`` (pixels called
        vessel / vessel pixels), ``prevalence`` (= ``true_fraction``, the AP of a guess).
    """
    prob = attack.probabilities(obfuscated)
    m = np.asarray(masks).astype(bool)
    if prob.shape != m.shape:
        raise MedcloakError(f"T0: frames {prob.shape} and masks {m.shape} differ")
    keep = _keep(ignore, m.shape)
    counted = np.ones(m.shape, bool) if keep is None else keep
    seg = prob > attack.threshold
    t_or, d_or = choose_threshold(prob, m, ignore=ignore)
    return {
        "dice": float(_dice_curve(prob, m, np.array([attack.threshold]), keep)[0]),
        "threshold": float(attack.threshold),
        "ap": average_precision(prob, m, ignore=ignore),
        "oracle_dice": d_or,
        "oracle_threshold": t_or,
        "predicted_fraction": float(seg[counted].mean()),
        "true_fraction": float(m[counted].mean()),
        "prevalence": float(m[counted].mean()),
    }


def train_direct_view(
    scheme: PublicScheme,
    attacker_frames: np.ndarray,
    attacker_masks: np.ndarray,
    *,
    net: NetConfig,
    frames_per_key: int = 4,
    copies: int = 4,
    seed: int = 3,
    fitted=None,
    heldout_fraction: float = 0.2,
    eval_every: int = 50,
    patience: int | None = 6,
    features: str = "bands",
    progress: bool = True,
) -> DirectViewAttack:
    """Train T0 on the attacker's own frames and masks under many own keys.

    Parameters
    ----------
    scheme : PublicScheme
        The public algorithm; fitted here on ``attacker_frames`` (the attacker's own VAE).
    attacker_frames : ndarray (N, H, W) in [0, 1]
    attacker_masks : ndarray of bool (N, H, W)
        The generator's vessel masks of ``attacker_frames``.
    net : NetConfig
        ``net.steps`` is the most optimisation steps; early stopping may end sooner.
    frames_per_key : int
        A fresh attacker key every this many frames (>= 1).
    copies : int
        Each training frame is obfuscated under this many different keys (>= 1).
    seed : int
        Seed of the attacker's keys and of the scheme's fit.
    fitted : KeyedObfuscate, optional
        ``scheme`` already fitted on ``attacker_frames`` (skips the fit; its key indices from 1
        on are used).
    heldout_fraction : float
        Fraction of the attacker's frames (the LAST ones, i.e. whole patients) held out, in
        [0, 0.9]. They are obfuscated once, under own keys that training never uses, and serve
        for early stopping, the threshold and the held-out scores. 0 disables all three
        (threshold 0.5, full schedule, empty :attr:`DirectViewAttack.heldout`).
    eval_every : int
        Steps between two held-out evaluations.
    patience : int, optional
        Stop after this many evaluations without a better held-out Dice (``None``: never).
    features : {"raw", "bands"}
        The network's input (:func:`direct_view_features`); ``"bands"`` adds key-independent
        band-outline channels and finds much more (see the module docstring).
    progress : bool

    Returns
    -------
    DirectViewAttack
        With the held-out threshold and scores (see :class:`DirectViewAttack`).
    """
    frames = np.asarray(attacker_frames, dtype=np.float32)
    masks = np.asarray(attacker_masks).astype(bool)
    if frames.shape != masks.shape or frames.ndim != 3:
        raise MedcloakError(f"T0: frames {frames.shape} and masks {masks.shape} must be equal (N, H, W) stacks")
    if frames_per_key < 1 or copies < 1:
        raise MedcloakError("T0: frames_per_key and copies must be >= 1")
    if not 0.0 <= heldout_fraction <= 0.9:
        raise MedcloakError(f"T0: heldout_fraction must be in [0, 0.9], got {heldout_fraction}")
    n_val = int(round(heldout_fraction * len(frames)))
    if heldout_fraction > 0 and not 1 <= n_val <= len(frames) - 2:
        raise MedcloakError(f"T0: {len(frames)} attacker frames are too few for a held-out set")
    tr_f, tr_m = frames[: len(frames) - n_val], masks[: len(masks) - n_val]
    obfuscate = fitted if fitted is not None else scheme.fit(frames, seed=seed, progress=progress, images=True)
    n_chunks = -(-len(tr_f) // frames_per_key)
    obf = np.concatenate([
        obfuscate_under_keys(obfuscate, tr_f, frames_per_key=frames_per_key, first_key=1 + c * n_chunks)
        for c in range(copies)
    ])
    obf = direct_view_features(obf, features=features)
    target = np.concatenate([tr_m] * copies)
    if n_val == 0:
        return DirectViewAttack(train_network(obf, target, net, task="segment", progress=progress, desc="T0"),
                                features=features)

    val_f, val_m = frames[len(frames) - n_val :], masks[len(masks) - n_val :]
    val_obf = obfuscate_under_keys(obfuscate, val_f, frames_per_key=frames_per_key, first_key=1 + copies * n_chunks)
    val_obf = direct_view_features(val_obf, features=features)

    def heldout_dice(model: nn.Module) -> float:
        return choose_threshold(predict(model, val_obf), val_m)[1]

    model = train_network(obf, target, net, task="segment", progress=progress, desc="T0",
                          monitor=heldout_dice, eval_every=eval_every, patience=patience)
    prob = predict(model, val_obf)
    threshold, dice = choose_threshold(prob, val_m)
    heldout = {
        "dice": dice,
        "dice_at_0.5": float(_dice_curve(prob, val_m, np.array([0.5]))[0]),
        "ap": average_precision(prob, val_m),
        "prevalence": float(val_m.mean()),
        "n_frames": int(n_val),
        "curve": [[int(s), round(float(v), 4)] for s, v in model.history],
        "best_step": int(model.best_step),
        "steps_run": int(model.steps_run),
        "max_steps": int(net.steps),
    }
    return DirectViewAttack(model, threshold=threshold, heldout=heldout, features=features)


class DirectView(Attack):
    """T0 as a plug-in: :func:`train_direct_view` on the attacker's own frames, then its
    probabilities on the victim's frames (thresholded at the attacker's own threshold for the
    score); the hand-made views follow as its floor (:meth:`extra_rows`). Trained once (the
    attacker's model never sees the victim's key) and scored per victim key
    (:attr:`Attack.per_key`): what a viewer sees depends on the key the victim drew."""

    threat = "T0"
    knows = "the algorithm; trains a vessel segmenter on its own frames under many own keys"
    kind = "segmentation"
    per_key = True

    @property
    def label(self) -> str:
        return "learned direct view"

    def fit(self, knowledge: Knowledge) -> "DirectView":
        c = knowledge.config
        self.model = train_direct_view(knowledge.scheme, knowledge.attacker.frames, knowledge.attacker.masks,
                                       net=c.t0_net or c.net, frames_per_key=max(1, c.frames_per_key),
                                       copies=c.t0_copies, seed=c.attacker_seed, fitted=knowledge.own_obfuscation(),
                                       progress=knowledge.progress)
        self.threshold = self.model.threshold
        return self

    def __call__(self, obfuscated: np.ndarray) -> np.ndarray:
        return self.model.probabilities(obfuscated)

    def extra_rows(self, victim, prior: dict) -> list[dict]:
        """The floor: Otsu-thresholded hand-made views of the obfuscated frames, scored by Dice."""
        import time

        from medcloak.attacks.handmade import handmade_vessel_masks

        t = time.perf_counter()
        masks = handmade_vessel_masks(victim.test_images)
        seconds = (time.perf_counter() - t) / max(len(masks), 1)
        return [make_row("T0-handmade", str(name), score(m, victim, prior, kind="segmentation"), seconds)
                for name, m in masks.items()]
