"""The Prior: what an attacker "recovers" knowing nothing about the victim's frames.

The no-knowledge baseline is the mean training frame of the attacker's own data (for vessel
scores: that frame's hand-made vessel map, :func:`medcloak.metrics.vessel_map`). Every attack
is reported beside the prior's score and as the difference ``attack - prior``: an attack that
does not beat the prior has learned nothing about the victim's frames.
"""

from __future__ import annotations

import numpy as np

from medcloak.errors import MedcloakError

__all__ = ["mean_frame", "prior_reconstructions", "prior_segmentation"]


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
