"""Networks for schemes whose output is not a plain image: a small ViT and an MLP.

:class:`PatchViT` (Dosovitskiy et al., "An image is worth 16x16 words", ICLR 2021, made small):
a frame is cut into ``patch`` x ``patch`` patches (or the input already is a sequence of patch
tokens), each patch goes through one linear embedding, a learned position embedding is added
(``position="learned"``; ``"none"`` for inputs whose token order is shuffled per frame), a plain
``torch.nn.TransformerEncoder`` (pre-norm) runs over the tokens, and the mean token gives one
logit. Why this family for block-wise schemes: when the patch equals the scheme's block, the
linear patch embedding can absorb a fixed pixel shuffle and sign flips inside the block, and the
position embedding a fixed block scrambling (Kiya group, arXiv 2205.12041), so the network can
learn the encrypted frames as well as the originals. Mean pooling (no class token) makes the
network blind to token order when ``position="none"`` (NeuraCrypt's per-frame patch shuffle).

:class:`MLP`: flatten, two hidden layers: for low-resolution releases (a 4x4 or 8x8
grid of cell means) that a CNN's pooling stages would shrink to nothing.

Both take real-valued inputs as they are (no clipping to [0, 1]); a layer norm right after the
first linear layer copes with the input's scale. (Not before it: a layer norm over a patch's raw
pixels would remove the patch's mean brightness, which is often the very signal.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PatchViT", "MLP", "POSITIONS"]

POSITIONS = ("learned", "none")


class PatchViT(nn.Module):
    """A small vision transformer giving one logit per input.

    Parameters
    ----------
    input_shape : tuple of int
        ``(H, W)`` of image inputs (both multiples of ``patch``), or ``(T, D)`` with ``tokens``.
    patch : int
        Side of the square patches (image inputs).
    dim, depth, heads : int
        Token width, encoder layers, attention heads (``dim % heads == 0``).
    position : {"learned", "none"}
        Learned position embedding, or none (order-blind).
    tokens : bool
        The input is already ``(N, T, D)`` patch tokens.
    dropout : float
    levels : int, optional
        Image inputs holding ``levels`` grey levels (``k / (levels - 1)``) go in one-hot: each
        patch becomes ``patch * patch * levels`` features, so the linear embedding can absorb a
        keyed non-bijective level map as well as a pixel shuffle (``schemes-notes.md``).
    """

    def __init__(self, input_shape: tuple[int, int], *, patch: int = 8, dim: int = 64, depth: int = 4,
                 heads: int = 4, position: str = "learned", tokens: bool = False, dropout: float = 0.1,
                 levels: int | None = None):
        super().__init__()
        a, b = (int(v) for v in input_shape)
        self.patch, self.tokens, self.levels = int(patch), bool(tokens), levels
        if tokens:
            n_tokens, in_features = a, b
        else:
            if a % self.patch or b % self.patch:
                raise ValueError(f"image {a}x{b} is not a whole number of {patch}x{patch} patches")
            n_tokens, in_features = (a // self.patch) * (b // self.patch), self.patch * self.patch
            if levels is not None:  # one-hot grey levels: the linear embedding can absorb a keyed map too
                in_features *= int(levels)
        self.embed = nn.Sequential(nn.Linear(in_features, dim), nn.LayerNorm(dim))
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, dim)) if position == "learned" else None
        if self.pos is not None:
            nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def patches(self, x: Tensor) -> Tensor:
        """(N, H, W) -> (N, T, patch*patch), patches in row-major order, pixels row-major inside."""
        n, h, w = x.shape
        p = self.patch
        return x.reshape(n, h // p, p, w // p, p).permute(0, 1, 3, 2, 4).reshape(n, (h // p) * (w // p), p * p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.tokens and x.ndim == 4:
            x = x[:, 0]
        if self.tokens:
            t = self.embed(x)
        elif self.levels is not None:
            codes = torch.round(x.clamp(0.0, 1.0) * (self.levels - 1)).long()
            onehot = nn.functional.one_hot(self.patches(codes), self.levels).float()  # (N, T, p*p, L)
            t = self.embed(onehot.flatten(2))
        else:
            t = self.embed(self.patches(x))
        if self.pos is not None:
            t = t + self.pos
        return self.head(self.encoder(t).mean(dim=1)).reshape(-1)


class MLP(nn.Module):
    """Flatten -> ``hidden`` (layer norm) -> ``hidden`` -> one logit (ReLU, dropout)."""

    def __init__(self, input_shape: tuple[int, ...], *, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        n_in = 1
        for v in input_shape:
            n_in *= int(v)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(-1)
