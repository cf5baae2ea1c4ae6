"""The scheme ``randenc``: a keyed random patch encoder, our re-implementation of NeuraCrypt.

Source: A. Yala, H. Esfahanizadeh, R. G. L. D'Oliveira, K. R. Duffy, M. Ghobadi, T. S. Jaakkola,
V. Vaikuntanathan, R. Barzilay, M. Médard, "NeuraCrypt: Hiding Private Health Data via Random
Neural Networks for Public Training", arXiv 2106.02484. Re-implemented from its published
description (no code of theirs is used). Broken by Carlini et al., "NeuraCrypt is not private",
arXiv 2108.07256 (distribution matching of encoded patches).

The encoder (all weights from the key; nothing is trained, one key per data owner)::

    tokens  = ReLU(conv_{p x p, stride p}(frame))            # (T, D), T = (H/p)(W/p), D = width
    repeat depth times:  tokens = ReLU(norm(conv_1x1(tokens)))
    tokens  = tokens + E                                     # keyed position embedding (T, D)
    tokens  = conv_1x1(tokens)                               # a final keyed linear layer
    output  = tokens[pi_frame]                               # patch order shuffled per frame

Our choices where the description is silent or would break determinism:

* weights ``N(0, 2 / fan_in)`` (He), biases ``N(0, 1 / fan_in)``, final layer ``N(0, 1 / D)``,
  position embedding ``N(0, 1)``: all ``key.normal`` under labels ``"randenc/..."`` whose
  context holds the patch size, the width, the layer index (and the grid for the embedding);
* normalisation: a per-token layer norm over the D channels (no affine, eps 1e-5) instead of
  batch norm, whose batch statistics would make a frame's output depend on its batch mates;
* the final linear layer after the position embedding (``shared/schemes-notes.md``'s reading of
  the source) is always present;
* the per-frame shuffle is keyed: ``pi_frame`` is a keyed permutation under the context
  ``sha256(frame float32 bytes)`` (the source draws a fresh random order; we need the same
  output for the same frame). ``shuffle=False`` keeps the patch order (a weaker variant);
* numpy float64 on the CPU, one frame at a time, cast to float32 at the end: deterministic and
  independent of the batch.

Output: ``"patch tokens"``, float32 of shape ``(N, T, D)`` (``(T, D)`` for one frame;
:meth:`RandEncScheme.output_shape`), real values (not in [0, 1]: ``--format npy`` only).
Frame sides must be multiples of ``patch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcloak.obfuscation._zoo import ZooConfig, check_bool, check_int, frame_context, grid, keyed_permutation
from medcloak.obfuscation.scheme import Scheme, register

__all__ = ["RandEncConfig", "RandEncScheme"]


@dataclass(frozen=True)
class RandEncConfig(ZooConfig):
    """Settings of :class:`RandEncScheme`.

    Parameters
    ----------
    patch : int
        Patch side ``p`` (2..64); the stride-p convolution's kernel and stride.
    width : int
        Channels ``D`` of every layer (1..4096): the token length.
    depth : int
        Number of 1x1 convolution + norm + ReLU layers after the patch convolution (0..16).
    shuffle : bool
        Shuffle the patch order per frame (keyed, per-frame context).
    """

    patch: int = 16
    width: int = 64
    depth: int = 2
    shuffle: bool = True

    def __post_init__(self) -> None:
        check_int("randenc", "patch", self.patch, lo=2, hi=64)
        check_int("randenc", "width", self.width, lo=1, hi=4096)
        check_int("randenc", "depth", self.depth, lo=0, hi=16)
        check_bool("randenc", "shuffle", self.shuffle)


@register
class RandEncScheme(Scheme):
    """A keyed random patch encoder (NeuraCrypt-like); output ``(N, T, D)`` patch tokens.

    ``T = (H / patch) * (W / patch)`` patches, ``D = width`` channels.

    >>> from medcloak.keys import Key
    >>> s = RandEncScheme(patch=8, width=16).fit(None, Key(bytes(32)))
    >>> s.apply(np.zeros((3, 16, 24), np.float32)).shape, s.output_shape(16, 24)
    ((3, 6, 16), (6, 16))
    """

    name = "randenc"
    Config = RandEncConfig
    output = "patch tokens"
    key_independent_fit = True
    output_in_unit_range = False

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self._cache: dict = {}

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """``(T, D)``: one token per ``patch x patch`` patch, ``width`` channels."""
        gh, gw = grid("randenc", (h, w), self.config.patch)
        return gh * gw, self.config.width

    def _fit(self, train, *, val=None, progress: bool = False, **options) -> None:
        self._cache = {}

    def _ctx(self, what: str) -> bytes:
        return f"patch={self.config.patch};width={self.config.width};{what}".encode()

    def _layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W (fan_in, D), b (D,))]: the patch convolution, ``depth`` 1x1 layers, the final layer."""
        if "layers" not in self._cache:
            p, d = self.config.patch, self.config.width
            k = self.key

            def draw(i: int, fan_in: int, w_var: float):
                w = k.normal("randenc/weight", (fan_in, d), context=self._ctx(f"layer={i}")).astype(np.float64)
                b = k.normal("randenc/bias", (d,), context=self._ctx(f"layer={i}")).astype(np.float64)
                return w * np.sqrt(w_var), b / np.sqrt(fan_in)

            layers = [draw(0, p * p, 2.0 / (p * p))]
            layers += [draw(i, d, 2.0 / d) for i in range(1, self.config.depth + 1)]
            layers.append(draw(-1, d, 1.0 / d))  # the final linear layer
            self._cache["layers"] = layers
        return self._cache["layers"]

    def _position(self, gh: int, gw: int) -> np.ndarray:
        k = ("pos", gh, gw)
        if k not in self._cache:
            self._cache[k] = self.key.normal("randenc/pos-embed", (gh * gw, self.config.width),
                                             context=self._ctx(f"grid={gh}x{gw}")).astype(np.float64)
        return self._cache[k]

    def token_order(self, frame: np.ndarray) -> np.ndarray:
        """The frame's keyed patch order: output token ``i`` is patch ``order[i]`` (row-major)."""
        self._require_fitted()
        f = np.clip(np.asarray(frame, np.float32), 0.0, 1.0)
        gh, gw = grid("randenc", f.shape, self.config.patch)
        if not self.config.shuffle:
            return np.arange(gh * gw)
        return keyed_permutation(self.key, "randenc/patch-shuffle", gh * gw, context=frame_context(f))

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        p = self.config.patch
        gh, gw = grid("randenc", frames.shape, p)
        layers = self._layers()
        pos = self._position(gh, gw)
        out = np.empty((len(frames), gh * gw, self.config.width), np.float32)
        for i, f in enumerate(frames):  # one frame at a time: no batch dependence
            t = f.astype(np.float64).reshape(gh, p, gw, p).transpose(0, 2, 1, 3).reshape(gh * gw, p * p)
            w, b = layers[0]
            h = np.maximum(t @ w + b, 0.0)
            for w, b in layers[1:-1]:
                z = h @ w + b
                z = (z - z.mean(axis=1, keepdims=True)) / np.sqrt(z.var(axis=1, keepdims=True) + 1e-5)
                h = np.maximum(z, 0.0)
            w, b = layers[-1]
            h = (h + pos) @ w + b
            if self.config.shuffle:
                h = h[keyed_permutation(self.key, "randenc/patch-shuffle", gh * gw, context=frame_context(f))]
            out[i] = h
        return out
