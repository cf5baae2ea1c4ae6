"""The scheme ``pixelate``: differentially private pixelisation (DP-Pix), optionally keyed-mixed.

Source: L. Fan, "Image Pixelization with Differential Privacy", DBSec 2018 (LNCS 10980).
DP-Pix releases the means of ``b x b`` cells plus Laplace noise of scale ``sensitivity / epsilon``,
where two images are neighbours when they differ in at most ``m`` pixels: on 0-255 images one
cell mean then moves by at most ``255 m / b**2``.

What a frame goes through:

1. the means of its ``cell x cell`` cells (frame sides must be multiples of ``cell``): a grid of
   ``(H / cell, W / cell)``;
2. ``epsilon`` set: Laplace noise of scale ``(m / cell**2) / epsilon`` added to every cell mean.
   The sensitivity ``m / cell**2`` is DP-Pix's ``255 m / b**2`` on our [0, 1] frames; ``m``
   (``m_pixels``, default 16) is a config field. The noise is drawn from the key stream
   (``"pixelate/laplace"``, inverse CDF of key-stream uniforms) under the context
   ``sha256(frame float32 bytes)``: the same frame always gets the same noise, so releasing it
   twice does not average the noise away, and the guarantee is computational (a keyed
   pseudo-random stream, not true randomness) -- our choice, forced by determinism;
3. ``mix`` set: the vector of the ``T = (H / cell)(W / cell)`` cell values is multiplied by a
   keyed random orthogonal ``T x T`` matrix (``"pixelate/mix"``, QR of ``key.normal``; one matrix
   per grid size and key) -- our addition, so that without the key the grid is not a picture.

Our choices where the source is silent: no clipping (with noise or mixing the output is
real-valued, outside [0, 1]: ``--format npy`` only; without them it is the exact cell means, in
[0, 1]); the noise is added to the means before the mixing; float64 arithmetic, float32 output.

Output: ``"image"`` of **low resolution**: float32 ``(N, H / cell, W / cell)``
(:meth:`PixelateScheme.output_shape`). Nothing is trained, so one fit serves any key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcloak.obfuscation._zoo import (ZooConfig, check_bool, check_float, check_int, frame_context, grid,
                                       keyed_orthogonal)
from medcloak.obfuscation.scheme import Scheme, register

__all__ = ["PixelateConfig", "PixelateScheme"]

CELLS = (4, 8, 16)  # 4: a finer cell, added as a lever of the [target] search


@dataclass(frozen=True)
class PixelateConfig(ZooConfig):
    """Settings of :class:`PixelateScheme`.

    Parameters
    ----------
    cell : {4, 8, 16}
        Cell side ``b`` in pixels.
    epsilon : float or None
        Privacy budget of the Laplace noise; ``None``: no noise.
    m_pixels : int
        ``m``, the number of pixels in which two neighbouring frames may differ (sensitivity
        ``m / cell**2``); default 16. Used only with ``epsilon``.
    mix : bool
        Multiply the cell vector by a keyed random orthogonal matrix.
    """

    cell: int = 8
    epsilon: float | None = None
    m_pixels: int = 16
    mix: bool = False

    def __post_init__(self) -> None:
        check_int("pixelate", "cell", self.cell, allowed=CELLS)
        check_float("pixelate", "epsilon", self.epsilon, optional=True)
        check_int("pixelate", "m_pixels", self.m_pixels, lo=1, hi=self.cell * self.cell)
        check_bool("pixelate", "mix", self.mix)

    @property
    def sensitivity(self) -> float:
        """Largest change of one cell mean between neighbouring [0, 1] frames: ``m / cell**2``."""
        return self.m_pixels / self.cell ** 2


@register
class PixelateScheme(Scheme):
    """``cell x cell`` means (DP-Pix), optional keyed Laplace noise and keyed orthogonal mixing.

    The output is a low-resolution image ``(N, H / cell, W / cell)``.

    >>> from medcloak.keys import Key
    >>> s = PixelateScheme(cell=8).fit(None, Key(bytes(32)))
    >>> s.apply(np.ones((16, 24), np.float32))
    array([[1., 1., 1.],
           [1., 1., 1.]], dtype=float32)
    """

    name = "pixelate"
    Config = PixelateConfig
    output = "image"
    key_independent_fit = True

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self._cache: dict = {}

    @property
    def output_in_unit_range(self) -> bool:  # type: ignore[override]
        return self.config.epsilon is None and not self.config.mix

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """``(H / cell, W / cell)``: the low-resolution grid."""
        return grid("pixelate", (h, w), self.config.cell)

    def _fit(self, train, *, val=None, progress: bool = False, **options) -> None:
        self._cache = {}

    def _mixer(self, gh: int, gw: int) -> np.ndarray:
        k = ("mix", gh, gw)
        if k not in self._cache:
            self._cache[k] = keyed_orthogonal(self.key, "pixelate/mix", gh * gw,
                                              context=f"cell={self.config.cell};grid={gh}x{gw}".encode())
        return self._cache[k]

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        b = self.config.cell
        gh, gw = grid("pixelate", frames.shape, b)
        n = len(frames)
        means = frames.astype(np.float64).reshape(n, gh, b, gw, b).mean(axis=(2, 4))
        if self.config.epsilon is None and not self.config.mix:
            return means.astype(np.float32)
        out = np.empty((n, gh, gw), np.float32)
        scale = self.config.sensitivity / float(self.config.epsilon) if self.config.epsilon is not None else 0.0
        for i, f in enumerate(frames):  # per-frame keyed draws: no batch dependence
            v = means[i].reshape(-1)
            if self.config.epsilon is not None:
                u = self.key.uniform("pixelate/laplace", v.size, context=frame_context(f)) - 0.5
                v = v - scale * np.sign(u) * np.log1p(-2.0 * np.abs(u))  # Laplace(0, scale), inverse CDF
            if self.config.mix:
                v = self._mixer(gh, gw) @ v
            out[i] = v.reshape(gh, gw)
        return out
