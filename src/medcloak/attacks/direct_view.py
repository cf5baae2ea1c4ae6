"""T0 direct view: what a viewer of an obfuscated frame sees for free, measured by a learner.

Hand-made filters under-measure what a person sees (in calibration, on frames mapped at 32
levels where a person traced every vessel, a Frangi filter scored Dice 0.10), so T0 is a
vessel-segmentation U-Net trained on the attacker's own synthetic frames and vessel masks,
obfuscated under MANY of the attacker's own keys (a fresh key every ``frames_per_key`` frames,
each frame under ``copies`` keys), so that it learns cues that survive any key, such as the
outlines of the grey-level bands. It is applied to the victim's obfuscated frames and scored by
the Dice of its thresholded prediction against the generator's masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from medcloak.attacks.reconstruction import PublicScheme, obfuscate_under_keys
from medcloak.attacks.unet import NetConfig, predict, train_network
from medcloak.errors import MedcloakError

__all__ = ["DirectViewAttack", "train_direct_view"]


@dataclass
class DirectViewAttack:
    """A trained key-independent vessel segmenter for obfuscated frames."""

    net: nn.Module
    threshold: float = 0.5

    def probabilities(self, obfuscated: np.ndarray) -> np.ndarray:
        """Vessel probability per pixel, float32 (N, H, W) in [0, 1]."""
        return predict(self.net, np.asarray(obfuscated, dtype=np.float32))

    def segment(self, obfuscated: np.ndarray) -> np.ndarray:
        """Vessel masks, bool (N, H, W): probability above ``threshold``."""
        return self.probabilities(obfuscated) > self.threshold


def train_direct_view(
    scheme: PublicScheme,
    attacker_frames: np.ndarray,
    attacker_masks: np.ndarray,
    *,
    net: NetConfig,
    frames_per_key: int = 4,
    copies: int = 2,
    seed: int = 3,
    fitted=None,
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
    frames_per_key : int
        A fresh attacker key every this many frames (>= 1).
    copies : int
        Each frame is obfuscated under this many different keys (>= 1).
    seed : int
        Seed of the attacker's keys and of the scheme's fit.
    fitted : KeyedObfuscate, optional
        ``scheme`` already fitted on ``attacker_frames`` (skips the fit; its key indices from 1
        on are used).

    Returns
    -------
    DirectViewAttack
    """
    frames = np.asarray(attacker_frames, dtype=np.float32)
    masks = np.asarray(attacker_masks).astype(bool)
    if frames.shape != masks.shape or frames.ndim != 3:
        raise MedcloakError(f"T0: frames {frames.shape} and masks {masks.shape} must be equal (N, H, W) stacks")
    if frames_per_key < 1 or copies < 1:
        raise MedcloakError("T0: frames_per_key and copies must be >= 1")
    obfuscate = fitted if fitted is not None else scheme.fit(frames, seed=seed, progress=progress)
    n_chunks = -(-len(frames) // frames_per_key)
    obf = np.concatenate([
        obfuscate_under_keys(obfuscate, frames, frames_per_key=frames_per_key, first_key=1 + c * n_chunks)
        for c in range(copies)
    ])
    target = np.concatenate([masks] * copies)
    return DirectViewAttack(train_network(obf, target, net, task="segment", progress=progress, desc="T0"))
