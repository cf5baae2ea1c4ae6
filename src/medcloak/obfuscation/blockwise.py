"""The scheme ``blockwise``: learnable block-wise encryption (Kiya group), optionally with the paper's map.

Sources: Z. Qi, A. MaungMaung, Y. Kinoshita, H. Kiya, "Privacy-Preserving Image Classification
Using Vision Transformer", arXiv 2205.12041; H. Kiya, R. Iijima, T. Nagamori, "Privacy-preserving
deep learning with learnable image encryption on medical images", arXiv 2308.07612 (and
MaungMaung & Kiya, arXiv 2204.07707). A ViT whose patch size equals the block size learns the
encrypted frames: its linear patch embedding absorbs the pixel shuffle and the flips, its
position embedding absorbs the block scrambling.

What a frame goes through (every permutation and flip comes from the key; one key serves the
whole dataset, as in the source):

1. ``levels`` set (the variant "blockwise+map"): quantise to ``levels`` grey levels and apply the
   paper's keyed non-bijective map (:meth:`medcloak.obfuscation.mapping.IntensityMap.from_key`,
   the same table the ``paper`` scheme draws under this key at these levels), kept as integer
   levels ``0 .. L-1`` through the block steps (a flip is ``k -> L-1-k``) and divided by
   ``L - 1`` at the end, so the output holds exactly the map's ``L`` values;
2. split into ``block x block`` blocks (frame sides must be multiples of ``block``);
3. negative-positive transform ``x -> 1 - x`` at the pixel positions (within the block) that the
   key marks -- **per position, shared by every block** (``"blockwise/flip"``, one fair keyed
   bit per position), as in the source's block-wise transformation;
4. one keyed pixel shuffle inside the blocks, the same permutation for every block
   (``"blockwise/pixel-perm"``);
5. keyed block-position scrambling (``"blockwise/block-perm"``; a permutation of all
   ``(H / block) * (W / block)`` blocks, drawn for that grid size).

Our choices where the sources are silent or leave options: the order above (flip, then shuffle,
then scramble: all three commute up to relabelling, so the order only fixes which key bits do
what); flips per position rather than per block; the map applied *before* the block steps (so
flips stay on the level grid); the key-stream derivations
(permutations are the stable argsort of key-stream uniforms, :func:`._zoo.keyed_permutation`);
no colour-channel shuffle (the frames are grey).

Output: an image of the input's size, ``"grey levels"`` (``levels`` levels) with the map,
``"image"`` without (then values stay the input's values, flipped: exact for values on a
``2**-24`` grid, within one float32 ulp otherwise). Nothing
is trained, so one fit serves any key. :meth:`BlockwiseScheme.invert` undoes the transform with
the key (no map only): the reference a known-plaintext attack is scored against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.obfuscation._zoo import ZooConfig, check_bool, check_int, grid, keyed_permutation
from medcloak.obfuscation.scheme import Scheme, register

__all__ = ["BlockwiseConfig", "BlockwiseScheme"]

BLOCKS = (8, 16)


@dataclass(frozen=True)
class BlockwiseConfig(ZooConfig):
    """Settings of :class:`BlockwiseScheme`.

    Parameters
    ----------
    block : {8, 16}
        Block side ``p`` in pixels (the ViT's patch size).
    scramble : bool
        Keyed block-position scrambling.
    shuffle : bool
        Keyed pixel shuffle inside the blocks (one permutation for every block).
    flip : bool
        Keyed negative-positive flips per position within the block.
    levels : int or None
        ``None``: no map. Else quantise to ``levels`` (2..65536) and apply the paper's keyed map
        first (the variant "blockwise+map").
    """

    block: int = 16
    scramble: bool = True
    shuffle: bool = True
    flip: bool = True
    levels: int | None = None

    def __post_init__(self) -> None:
        check_int("blockwise", "block", self.block, allowed=BLOCKS)
        for name in ("scramble", "shuffle", "flip"):
            check_bool("blockwise", name, getattr(self, name))
        check_int("blockwise", "levels", self.levels, lo=2, hi=65536, optional=True)


@register
class BlockwiseScheme(Scheme):
    """Block scrambling, in-block pixel shuffle and negative-positive flips under the key.

    >>> from medcloak.keys import Key
    >>> s = BlockwiseScheme(block=8).fit(None, Key(bytes(32)))
    >>> x = np.arange(256, dtype=np.float32).reshape(16, 16) / 256
    >>> y = s.apply(x)
    >>> y.shape, np.array_equal(s.invert(y), x)
    ((16, 16), True)
    """

    name = "blockwise"
    Config = BlockwiseConfig
    key_independent_fit = True

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self._cache: dict = {}

    @property
    def output(self) -> str:  # type: ignore[override]
        return "image" if self.config.levels is None else "grey levels"

    @property
    def output_levels(self) -> int | None:
        return self.config.levels

    def _fit(self, train, *, val=None, progress: bool = False, **options) -> None:
        self._cache = {}  # derivations belong to the key just bound

    # -- the key's secrets ---------------------------------------------------------------------
    def _pixel(self) -> tuple[np.ndarray, np.ndarray]:
        """(pixel permutation, flip mask) of the block positions ``0 .. p*p - 1`` (row-major)."""
        if "pixel" not in self._cache:
            p = self.config.block
            ctx = f"block={p}".encode()
            n = p * p
            perm = keyed_permutation(self.key, "blockwise/pixel-perm", n, context=ctx) if self.config.shuffle \
                else np.arange(n)
            flips = (self.key.integers("blockwise/flip", n, 2, context=ctx) == 1) if self.config.flip \
                else np.zeros(n, bool)
            self._cache["pixel"] = (perm, flips)
        return self._cache["pixel"]

    def _blocks(self, gh: int, gw: int) -> np.ndarray:
        """Block permutation for a ``gh x gw`` grid: output block ``i`` is input block ``perm[i]``."""
        k = ("blocks", gh, gw)
        if k not in self._cache:
            n = gh * gw
            self._cache[k] = keyed_permutation(self.key, "blockwise/block-perm", n,
                                               context=f"block={self.config.block};grid={gh}x{gw}".encode()) \
                if self.config.scramble else np.arange(n)
        return self._cache[k]

    def _map(self):
        if "map" not in self._cache:
            from medcloak.obfuscation.mapping import IntensityMap

            self._cache["map"] = IntensityMap.from_key(self.key, levels=self.config.levels)
        return self._cache["map"]

    # -- layout --------------------------------------------------------------------------------
    def _split(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        p = self.config.block
        gh, gw = grid("blockwise", x.shape, p)
        n = len(x)
        return x.reshape(n, gh, p, gw, p).transpose(0, 1, 3, 2, 4).reshape(n, gh * gw, p * p), gh, gw

    def _join(self, b: np.ndarray, gh: int, gw: int) -> np.ndarray:
        p = self.config.block
        n = len(b)
        return b.reshape(n, gh, gw, p, p).transpose(0, 1, 3, 2, 4).reshape(n, gh * p, gw * p)

    def _top(self):
        """The flip's ``1``: 1.0 on float frames, ``L - 1`` on integer levels (flips stay exact levels)."""
        return np.float32(1.0) if self.config.levels is None else np.int64(self.config.levels - 1)

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        if self.config.levels is None:
            x = frames
        else:  # the keyed map on integer levels: table[quantise(x)] (out_levels = levels)
            from medcloak.obfuscation.mapping import quantise

            m = self._map()
            x = m.table.astype(np.int64)[quantise(frames, m.levels)]
        b, gh, gw = self._split(x)
        perm, flips = self._pixel()
        b = b.copy()
        b[:, :, flips] = self._top() - b[:, :, flips]
        b = b[:, :, perm]
        b = b[:, self._blocks(gh, gw), :]
        return self._levels_to_float(self._join(b, gh, gw))

    def _levels_to_float(self, x: np.ndarray) -> np.ndarray:
        if self.config.levels is None:
            return x
        return x.astype(np.float32) / np.float32(self.config.levels - 1)  # as IntensityMap's lut

    def invert(self, obfuscated: np.ndarray) -> np.ndarray:
        """Undo the block steps with the key (what the key holder, or a T1 reference, can do).

        Exact on values on a ``2**-24`` grid (flips ``1 - (1 - x)``). With ``levels`` the result is
        the *mapped* frame (exactly the map's output): the keyed map is non-bijective and is not undone.
        """
        self._require_fitted()
        y = np.asarray(obfuscated, np.float32)
        single = y.ndim == 2
        if self.config.levels is not None:
            y = np.rint(y * np.float32(self.config.levels - 1)).astype(np.int64)
        b, gh, gw = self._split(y[None] if single else y)
        perm, flips = self._pixel()
        b = b[:, np.argsort(self._blocks(gh, gw)), :]
        b = b[:, :, np.argsort(perm)]
        b[:, :, flips] = self._top() - b[:, :, flips]
        out = self._levels_to_float(self._join(b, gh, gw))
        return out[0] if single else out
