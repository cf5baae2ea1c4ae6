"""The Prior: what an attacker "recovers" knowing nothing about the victim's frames.

Two no-knowledge baselines, both from the attacker's OWN data:

* the **mean frame** (:func:`mean_frame`): the mean training frame of the attacker's frames,
  the baseline of SSIM and PSNR. Its hand-made vessel map is nearly empty (a mean frame is
  smooth), so it scores a vessel Dice of about 0 and is no baseline for vessels;
* the **location prior** (:func:`location_prior`): where vessels usually run. Coronary vessels
  sit in the middle of the frame, so the attacker's mean vessel mask, thresholded where it
  best matches the masks of its own held-out frames, scores a vessel Dice of 0.17 on the demo's
  64 px test frames (256 attacker frames, seed 7919; 0.19 on its own held-out frames) without
  looking at any victim frame, where the mean frame's vessel map scores 0 (issue 14). Every
  vessel Dice is reported against it.

Re-identification has a plain chance level, ``k / N`` for top-``k`` among ``N`` test frames
(:func:`reid_chance`); the runner uses it as the prior's re-identification.

Every attack is reported beside the prior's score and as the difference ``attack - prior``:
an attack that does not beat the prior has learned nothing about the victim's frames.
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from medcloak.errors import MedcloakError

__all__ = ["mean_frame", "prior_reconstructions", "prior_segmentation", "LocationPrior", "location_prior",
           "reid_chance"]


def mean_frame(attacker_frames: np.ndarray) -> np.ndarray:
    """Pixel-wise mean of the attacker's own training frames.

    Parameters
    ----------
    attacker_frames : ndarray (N, H, W) in [0, 1]

    Returns
    -------
    ndarray, float32 (H, W) in [0, 1]
    """
    a = np.asarray(attacker_frames, dtype=np.float64)
    if a.ndim != 3 or len(a) == 0:
        raise MedcloakError(f"prior: expected a non-empty (N, H, W) stack, got shape {a.shape}")
    return a.mean(axis=0).astype(np.float32)


def prior_reconstructions(prior: np.ndarray, n: int) -> np.ndarray:
    """The prior's "reconstruction" of ``n`` frames: the mean frame, repeated. float32 (n, H, W)."""
    return np.repeat(np.asarray(prior, np.float32)[None], int(n), axis=0)


def prior_segmentation(prior: np.ndarray, n: int) -> np.ndarray:
    """The prior's vessel segmentation of ``n`` frames: the mean frame's vessel map, repeated.

    Returns bool (n, H, W).
    """
    from medcloak.metrics import vessel_map

    return np.repeat(vessel_map(np.asarray(prior, np.float32))[None], int(n), axis=0)


@dataclass(frozen=True)
class LocationPrior:
    """Where vessels usually are: the attacker's mean vessel mask and its threshold.

    Attributes
    ----------
    frequency : ndarray, float32 (H, W) in [0, 1]
        Fraction of the attacker's fitting frames with a vessel at each pixel.
    threshold : float
        Chosen on the attacker's held-out frames (best mean Dice there).
    heldout_dice : float
        That Dice, on the attacker's own held-out frames.
    """

    frequency: np.ndarray
    threshold: float
    heldout_dice: float

    def segmentation(self, n: int) -> np.ndarray:
        """The prior's vessel segmentation of ``n`` frames, bool (n, H, W): the same mask for all."""
        return np.repeat((self.frequency > self.threshold)[None], int(n), axis=0)


def location_prior(attacker_masks: np.ndarray, *, heldout_fraction: float = 0.2) -> LocationPrior:
    """The location prior: the attacker's mean vessel mask, thresholded on its own held-out frames.

    Parameters
    ----------
    attacker_masks : ndarray of bool (N, H, W)
        Vessel masks of the attacker's own frames (never the victim's).
    heldout_fraction : float
        The LAST ``heldout_fraction`` of the masks (whole patients, as in T0's held-out set)
        choose the threshold; the others give the mean mask. With fewer than 2 frames for
        either part the mean of all masks is thresholded at 0.5.

    Returns
    -------
    LocationPrior

    Notes
    -----
    The threshold maximises the mean per-frame Dice of ``frequency > t`` against the held-out
    masks (:func:`medcloak.attacks.direct_view.choose_threshold`), so this prior is chosen
    exactly like T0's threshold: on the attacker's data only.

    Examples
    --------
    >>> m = np.zeros((10, 8, 8), bool); m[:, 3:5, :] = True; m[:4, 0, :] = True
    >>> p = location_prior(m)  # frames 0-7 give the mean mask, frames 8-9 the threshold
    >>> seg = p.segmentation(1)[0]
    >>> bool(seg[3:5].all()), bool(seg[0].any()), p.heldout_dice
    (True, False, 1.0)
    """
    from medcloak.attacks.direct_view import choose_threshold

    m = np.asarray(attacker_masks).astype(bool)
    if m.ndim != 3 or len(m) == 0:
        raise MedcloakError(f"location prior: expected a non-empty (N, H, W) mask stack, got shape {m.shape}")
    n_val = int(round(heldout_fraction * len(m)))
    if n_val < 2 or len(m) - n_val < 2:
        freq = m.mean(axis=0).astype(np.float32)
        return LocationPrior(freq, 0.5, float("nan"))
    freq = m[: len(m) - n_val].mean(axis=0).astype(np.float32)
    val = m[len(m) - n_val :]
    t, dice = choose_threshold(np.repeat(freq[None], len(val), axis=0), val)
    return LocationPrior(freq, float(t), float(dice))


def reid_chance(n_test: int, k: int = 1) -> float:
    """Chance level of top-``k`` re-identification among ``n_test`` frames: ``min(k, N) / N``.

    >>> reid_chance(48), reid_chance(48, 5)
    (0.020833333333333332, 0.10416666666666667)
    """
    n = int(n_test)
    if n < 1:
        raise MedcloakError(f"re-identification chance needs at least one test frame, got {n}")
    return min(int(k), n) / n
