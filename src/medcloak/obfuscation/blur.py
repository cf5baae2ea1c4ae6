"""The scheme ``blur``: a plain Gaussian blur, the baseline a clinician would try first.

No source paper: it is the naive release that every keyed scheme must beat. Keyless: the
output does not depend on the key at all (``fit`` only binds it, so model folders and manifests
work as for every scheme).

Each frame is filtered by :func:`scipy.ndimage.gaussian_filter` with ``sigma`` pixels on both
axes, ``mode="reflect"`` and scipy's default ``truncate=4.0``, one frame at a time (in float64,
cast to float32 and clipped to [0, 1] to remove rounding excursions). Output: ``"image"`` of
the input's size, in [0, 1]. Our choices: the boundary mode and the truncation (scipy's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.obfuscation._zoo import ZooConfig, check_float
from medcloak.obfuscation.scheme import Scheme, register

__all__ = ["BlurConfig", "BlurScheme"]


@dataclass(frozen=True)
class BlurConfig(ZooConfig):
    """Settings of :class:`BlurScheme`.

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian in pixels (> 0, at most 256).
    """

    sigma: float = 2.0

    def __post_init__(self) -> None:
        check_float("blur", "sigma", self.sigma)
        if self.sigma > 256:
            raise MedcloakError(f"blur: sigma must be at most 256 pixels, got {self.sigma}")


@register
class BlurScheme(Scheme):
    """Gaussian blur (keyless baseline).

    >>> from medcloak.keys import Key
    >>> s = BlurScheme(sigma=1.0).fit(None, Key(bytes(32)))
    >>> float(s.apply(np.full((8, 8), 0.5, np.float32)).max())
    0.5
    """

    name = "blur"
    Config = BlurConfig
    output = "image"
    key_independent_fit = True

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        s = float(self.config.sigma)
        out = np.empty(frames.shape, np.float32)
        for i, f in enumerate(frames):
            out[i] = gaussian_filter(f.astype(np.float64), sigma=s, mode="reflect")
        return np.clip(out, 0.0, 1.0)
