"""The scheme ``svd``: keyed orthogonal rotations of the frame matrix, optionally rank-truncated.

Source: A. B. Popescu et al., SVD- and PCA-based obfuscation of angiography frames for view
classification, MED 2023, arXiv 2308.16530. **Only the abstract is available to us**: which
components are kept or perturbed and what the key is are not known. This scheme is **OUR
READING** of it (``shared/schemes-notes.md``), not the authors' algorithm:

* reading (a), ``rank=None``: ``A -> Q1 A Q2^T`` with keyed random orthogonal ``Q1`` (H x H) and
  ``Q2`` (W x W). The singular values of every frame are kept exactly (up to float32 rounding),
  so its spectrum re-identifies it without the key; a dense layer can absorb the fixed linear map;
* reading (b), ``rank=k``: keep the top-``k`` singular components (``U_k S_k V_k^T``, lossy),
  then the same rotation; the output has rank ``k`` (``min(k, H, W)``).

``Q1`` / ``Q2`` are QR-of-``key.normal`` draws (Haar, signs fixed by ``diag(R)``), under the
labels ``"svd/left"`` and ``"svd/right"`` with the side in the context, one pair per frame size
and key. Our choices: the rotation (rather than a keyed perturbation of the singular values),
float64 arithmetic, float32 output, no clipping.

Output: ``"image"`` of the input's size, real-valued (outside [0, 1]: ``--format npy`` only).
Nothing is trained, so one fit serves any key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcloak.obfuscation._zoo import ZooConfig, check_int, keyed_orthogonal
from medcloak.obfuscation.scheme import Scheme, register

__all__ = ["SVDConfig", "SVDScheme"]


@dataclass(frozen=True)
class SVDConfig(ZooConfig):
    """Settings of :class:`SVDScheme`.

    Parameters
    ----------
    rank : int or None
        ``None``: keep every singular component (lossless rotation). Else keep the top ``rank``
        (>= 1) components before the rotation.
    """

    rank: int | None = None

    def __post_init__(self) -> None:
        check_int("svd", "rank", self.rank, lo=1, hi=65536, optional=True)


@register
class SVDScheme(Scheme):
    """``A -> Q1 A_k Q2^T`` with keyed orthogonal ``Q1``, ``Q2`` (our reading of Popescu et al. 2023).

    >>> from medcloak.keys import Key
    >>> s = SVDScheme().fit(None, Key(bytes(32)))
    >>> x = np.eye(6, dtype=np.float32)
    >>> np.allclose(np.linalg.svd(s.apply(x), compute_uv=False), 1.0, atol=1e-5)
    True
    """

    name = "svd"
    Config = SVDConfig
    output = "image"
    key_independent_fit = True
    output_in_unit_range = False

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self._cache: dict = {}

    def _fit(self, train, *, val=None, progress: bool = False, **options) -> None:
        self._cache = {}

    def _rotation(self, side: str, n: int) -> np.ndarray:
        k = (side, n)
        if k not in self._cache:
            self._cache[k] = keyed_orthogonal(self.key, f"svd/{side}", n, context=f"n={n}".encode())
        return self._cache[k]

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        _, h, w = frames.shape
        q1, q2 = self._rotation("left", h), self._rotation("right", w)
        out = np.empty(frames.shape, np.float32)
        for i, f in enumerate(frames):  # one frame at a time: no batch dependence
            a = f.astype(np.float64)
            if self.config.rank is not None and self.config.rank < min(h, w):
                u, s, vt = np.linalg.svd(a, full_matrices=False)
                k = self.config.rank
                a = (u[:, :k] * s[:k]) @ vt[:k]
            out[i] = q1 @ a @ q2.T
        return out
