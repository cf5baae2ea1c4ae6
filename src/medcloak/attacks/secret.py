"""T1-secret: known plaintext that reads the scheme's secret off the leaked pairs, then inverts.

Where :class:`medcloak.attacks.reconstruction.KnownPlaintext` (T1) trains a generic inverse
U-Net on the leaked pairs, this attack uses the *public algorithm* to read its secret off a
handful of pairs ``(original, raw release)`` and then inverts every frame exactly (as far as
the scheme keeps the information). One row per number of pairs (:data:`N_PAIRS`, capped at the
leak pool): the curve of issue 14.

Per scheme (``knowledge.scheme.scheme``):

``blockwise`` without map
    Every block is a permutation (shared in-block pixel shuffle), flips per position and a block
    scrambling. (1) Blocks are matched by a descriptor invariant to the in-block shuffle and to
    the flips: the sorted values of ``|x - 1/2|`` of the block in every pair, assigned by
    :func:`scipy.optimize.linear_sum_assignment`. (2) In-block positions: the correlation of
    each released position with each original position, pooled over every pair and every block
    (already matched), assigned on ``-|corr|``; the flip is the sign of the correlation.
    The frames are then unscrambled exactly.
``blockwise+map`` (``levels`` set)
    The keyed map hides the values the steps above match on, so the positions come from the
    jigsaw's pooled level-equality statistics over the attacked frames and the leaked releases
    (:func:`medcloak.attacks.jigsaw.jigsaw_attack`, ciphertext statistics); the pairs then pick
    the symmetry those leave open and give the level table (mean original per released level,
    :func:`medcloak.attacks.reconstruction.level_table`). The curve over n then measures the
    table and the symmetry choice, not the positions.
``svd``
    ``Y = Q1 A_k Q2^T`` (``A_k``: the public rank truncation, which the attacker computes on
    its originals). Start from the SVDs of the first pair (``Q1 U = U' D``, ``Q2 V = V' D`` with
    an unknown sign matrix ``D``), fix ``D`` with the other pairs (the top eigenvector of
    ``(U'^T Y_t V') * (U^T A_t V)``), then alternate orthogonal Procrustes for ``Q1`` and
    ``Q2`` over every pair. Reconstruction ``Q1^T Y Q2``. One pair leaves ``D`` free (the curve
    shows it).
``pixelate`` with ``mix``
    The release is ``M (means + noise)`` with a keyed orthogonal ``M``; the attacker computes the
    cell means of its originals and reads ``M`` by orthogonal Procrustes, then undoes it. The
    result is the cell-mean image (upsampled by repetition); going beyond the cell means is
    super-resolution, which the existing T1/T2 U-Nets on upsampled releases already are.
``randenc``
    Tokens ``(T, D)`` per frame, patch order shuffled per frame. The keyed position embedding is
    added before the last linear layer, so the tokens of one position share an offset: they are
    grouped into position slots by a k-means in which a frame's ``T`` tokens take ``T`` distinct
    slots (:func:`token_slots`; ciphertext statistics, no pairs needed). On the leaked pairs a
    linear decoder (ridge on the token plus a one-hot position) maps tokens to patch pixels; the
    slot -> position map is found by alternating that decoder and a
    :func:`~scipy.optimize.linear_sum_assignment` of slots to positions (start: how well each
    slot's tokens, by ridge on their top principal components, predict each position's patches
    across the leaked frames). Victim frames: every token decoded on its own and placed at its
    slot's position. Scored as whole frames. The decoder is linear: with ``width`` well above
    ``patch**2`` and ``depth = 0`` it is near exact; deeper and narrower encoders (ReLU and
    normalisation losses) cap it (see ``benchmarks/results/scheme_attacks_32.md``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from medcloak.attacks.base import Attack, Knowledge
from medcloak.errors import MedcloakError

__all__ = ["SecretKnownPlaintext", "N_PAIRS", "read_blockwise", "read_svd", "read_pixelate_mix",
           "RandEncDecoder", "split_patches", "join_patches", "patch_features", "ridge_fit"]

#: Numbers of leaked pairs of the curve (capped at the leak pool).
N_PAIRS = (1, 3, 10, 100)


def _config(knowledge: Knowledge):
    return knowledge.scheme.make().config


# ----------------------------------------------------------------------------- blockwise


def _blocks(x: np.ndarray, p: int) -> np.ndarray:
    n, h, w = x.shape
    gh, gw = h // p, w // p
    return x.reshape(n, gh, p, gw, p).transpose(0, 1, 3, 2, 4).reshape(n, gh * gw, p * p)


def join_patches(b: np.ndarray, p: int, h: int, w: int) -> np.ndarray:
    n = len(b)
    gh, gw = h // p, w // p
    return b.reshape(n, gh, gw, p, p).transpose(0, 1, 3, 2, 4).reshape(n, h, w)


def read_blockwise(originals: np.ndarray, released: np.ndarray, block: int):
    """Block assignment, in-block pixel assignment and flips of ``blockwise`` (no map) from pairs.

    Returns ``(block_src, pix_src, flips)``: released block ``j`` is original block
    ``block_src[j]``; released in-block position ``a`` is original position ``pix_src[a]``,
    flipped where ``flips[a]``.
    """
    xo = _blocks(np.asarray(originals, np.float64), block)  # (n, G, P)
    xr = _blocks(np.asarray(released, np.float64), block)
    n, g, p2 = xo.shape
    # (1) blocks: sorted |x - 1/2| is invariant to the in-block shuffle and to the flips
    do = np.sort(np.abs(xo - 0.5), axis=2).transpose(1, 0, 2).reshape(g, -1)
    dr = np.sort(np.abs(xr - 0.5), axis=2).transpose(1, 0, 2).reshape(g, -1)
    cost = ((dr[:, None, :] - do[None, :, :]) ** 2).sum(-1)
    _, block_src = linear_sum_assignment(cost)
    # (2) in-block positions, pooled over pairs and (matched) blocks
    so = xo[:, block_src, :].reshape(n * g, p2)
    sr = xr.reshape(n * g, p2)
    so = so - so.mean(0)
    sr = sr - sr.mean(0)
    corr = (sr.T @ so) / np.sqrt(np.outer((sr ** 2).sum(0), (so ** 2).sum(0)) + 1e-12)  # (released, original)
    _, pix_src = linear_sum_assignment(-np.abs(corr))
    flips = corr[np.arange(p2), pix_src] < 0
    return block_src, pix_src, flips


def undo_blockwise(released: np.ndarray, block: int, block_src, pix_src, flips) -> np.ndarray:
    """Invert the block steps with a recovered secret."""
    y = np.asarray(released, np.float64)
    n, h, w = y.shape
    b = _blocks(y, block).copy()
    b[:, :, flips] = 1.0 - b[:, :, flips]
    out = np.empty_like(b)
    out[:, block_src[:, None], pix_src[None, :]] = b
    return np.clip(join_patches(out, block, h, w), 0, 1).astype(np.float32)


def blockwise_map(released: np.ndarray, originals: np.ndarray, leaked: np.ndarray, config) -> np.ndarray:
    """``blockwise+map`` with pairs: the jigsaw's unscrambling (positions, flips up to a global one,
    placement) on the attacked frames and the leaked releases pooled, then the pairs pick the
    symmetry the releases leave open and give the level table (``reconstruction.level_table``)."""
    from medcloak.attacks.jigsaw import jigsaw_attack, symmetric_candidates
    from medcloak.attacks.reconstruction import level_table

    m, levels = len(released), config.levels
    frames = jigsaw_attack(np.concatenate([released, leaked]), config, unscramble_only=True)
    best = None
    for cand in symmetric_candidates(frames, config):
        q = np.rint(np.clip(cand, 0, 1) * (levels - 1)).astype(np.int64)
        table = level_table(cand[m:], originals, levels=levels)
        err = float(np.abs(table[q[m:]] - originals).mean())
        if best is None or err < best[0]:
            best = (err, table[q[:m]])
    return np.clip(best[1], 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- svd


def _procrustes(m: np.ndarray) -> np.ndarray:
    """The orthogonal ``Q`` maximising ``trace(Q^T m)``."""
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def truncate(a: np.ndarray, rank: int | None) -> np.ndarray:
    """The public rank truncation of ``svd`` (float64)."""
    a = np.asarray(a, np.float64)
    if rank is None or rank >= min(a.shape):
        return a
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def read_svd(originals: np.ndarray, released: np.ndarray, *, rank: int | None = None, iterations: int = 30):
    """``(Q1, Q2)`` of ``svd`` from pairs (see the module docstring)."""
    a = [truncate(x, rank) for x in originals]
    y = [np.asarray(x, np.float64) for x in released]
    u, _, vt = np.linalg.svd(a[0])
    u2, _, vt2 = np.linalg.svd(y[0])
    r = min(a[0].shape) if rank is None else min(rank, *a[0].shape)
    u, v, u2, v2 = u[:, :r], vt[:r].T, u2[:, :r], vt2[:r].T
    d = np.ones(r)
    if len(a) > 1:  # Q1 U = U' D, Q2 V = V' D: the other pairs fix the signs D
        m = np.zeros((r, r))
        for at, yt in zip(a[1:], y[1:]):
            m += (u2.T @ yt @ v2) * (u.T @ at @ v)
        d = np.where(np.linalg.eigh(m + m.T)[1][:, -1] >= 0, 1.0, -1.0)
    q1 = _procrustes((u2 * d) @ u.T)
    q2 = _procrustes((v2 * d) @ v.T)
    for _ in range(iterations if len(a) > 1 else 0):
        q1 = _procrustes(sum(yt @ q2 @ at.T for at, yt in zip(a, y)))
        q2 = _procrustes(sum(yt.T @ q1 @ at for at, yt in zip(a, y)))
    return q1, q2


# ----------------------------------------------------------------------------- pixelate


def cell_means(frames: np.ndarray, cell: int) -> np.ndarray:
    n, h, w = frames.shape
    return np.asarray(frames, np.float64).reshape(n, h // cell, cell, w // cell, cell).mean(axis=(2, 4))


def read_pixelate_mix(originals: np.ndarray, released: np.ndarray, cell: int) -> np.ndarray:
    """The mixing matrix ``M`` of ``pixelate`` (``mix``) by orthogonal Procrustes on the cell means."""
    v = cell_means(originals, cell).reshape(len(originals), -1)  # (n, T)
    r = np.asarray(released, np.float64).reshape(len(released), -1)
    return _procrustes(r.T @ v)


# ----------------------------------------------------------------------------- randenc


def split_patches(frames: np.ndarray, p: int) -> np.ndarray:
    return _blocks(np.asarray(frames, np.float64), p)


def patch_features(tokens: np.ndarray) -> np.ndarray:
    t = np.asarray(tokens, np.float64)
    return np.concatenate([t, np.ones(t.shape[:-1] + (1,))], axis=-1)


def ridge_fit(x: np.ndarray, y: np.ndarray, lam: float = 1e-6) -> np.ndarray:
    a = x.T @ x
    a[np.diag_indices_from(a)] += lam * (np.trace(a) / len(a) + 1e-12)
    return np.linalg.solve(a, x.T @ y)


def token_slots(tokens: np.ndarray, *, centres: np.ndarray | None = None, iterations: int = 20):
    """Group the tokens of every frame by their (unknown) patch position: ``(slots (N, T), centres (T, D))``.

    ``randenc`` adds a keyed position embedding before its last linear layer, so the tokens of
    one position share an offset: a k-means with the constraint that the ``T`` tokens of a frame
    take ``T`` distinct slots (per-frame :func:`~scipy.optimize.linear_sum_assignment`) groups
    them. Ciphertext only: slot labels are arbitrary (a slot is a position, which one is unknown).
    """
    t = np.asarray(tokens, np.float64)
    n, nt, _ = t.shape
    c = t[0].copy() if centres is None else np.asarray(centres, np.float64).copy()
    slots = np.zeros((n, nt), np.int64)
    for _ in range(iterations):
        d = ((t[:, :, None, :] - c[None, None]) ** 2).sum(-1)  # (n, token, slot)
        new = np.empty_like(slots)
        for i in range(n):
            r, col = linear_sum_assignment(d[i])
            new[i, r] = col
        if np.array_equal(new, slots) and _ > 0:
            break
        slots = new
        for k in range(nt):
            c[k] = t[slots == k].mean(0)
    return slots, c


class RandEncDecoder:
    """Token -> patch decoder for ``randenc`` with the token positions (see the module docstring).

    Without ``shuffle`` token ``j`` is patch ``j``. With it, tokens are grouped into position
    slots (:func:`token_slots`); on the leaked pairs the slot -> position map is found by
    alternating a shared linear decoder and a :func:`~scipy.optimize.linear_sum_assignment` of
    slots to positions (start: how well each slot's tokens predict each position's patches, by
    ridge on their top principal components, across the leaked frames).
    """

    def __init__(self, patch: int, shuffle: bool, iterations: int = 5):
        self.p, self.shuffle, self.iterations = patch, shuffle, iterations

    def _dec(self, t: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return np.concatenate([patch_features(t), np.eye(self.nt)[pos]], -1)

    def fit(self, originals: np.ndarray, tokens: np.ndarray) -> "RandEncDecoder":
        x = split_patches(originals, self.p)  # (n, T, P) in row-major order
        t = np.asarray(tokens, np.float64)  # (n, T, D) in a per-frame order
        n, nt, _ = t.shape
        self.nt = nt
        if not self.shuffle:
            pos = np.tile(np.arange(nt), (n, 1))
        else:
            slots, self.centres = token_slots(t)
            ts = np.empty_like(t)  # tokens sorted by slot
            ts[np.arange(n)[:, None], slots] = t
            k = max(1, min(8, n - 1))
            z = ts - ts.mean(0)
            cost = np.zeros((nt, nt))
            for c in range(nt):
                u = np.linalg.svd(z[:, c], full_matrices=False)[0][:, :k] if n > 1 else np.ones((1, 1))
                f = np.concatenate([u, np.ones((n, 1))], 1)
                for q in range(nt):
                    y = x[:, q]
                    res = y - f @ np.linalg.lstsq(f, y, rcond=None)[0]
                    cost[c, q] = (res ** 2).sum()
            self.slot_pos = linear_sum_assignment(cost)[1]
            for _ in range(self.iterations if n > 1 else 0):
                f = self._dec(ts, np.tile(self.slot_pos, (n, 1)))
                w = ridge_fit(f.reshape(n * nt, -1), x[:, self.slot_pos].reshape(n * nt, -1))
                wf = w[: -nt]  # shared part (no position one-hot)
                dec = patch_features(ts) @ wf  # (n, slot, P)
                cost = ((dec[:, :, None, :] - x[:, None, :, :] + w[-nt:][None, None, :, :]) ** 2).sum((0, 3))
                new = linear_sum_assignment(cost)[1]
                if np.array_equal(new, self.slot_pos):
                    break
                self.slot_pos = new
            pos = self.slot_pos[slots]
        f = self._dec(t, pos).reshape(n * nt, -1)
        self.w = ridge_fit(f, x[np.arange(n)[:, None], pos].reshape(n * nt, -1))
        return self

    def __call__(self, tokens: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        t = np.asarray(tokens, np.float64)
        n, nt, _ = t.shape
        if self.shuffle:
            slots, _ = token_slots(t, centres=self.centres, iterations=1)
            pos = self.slot_pos[slots]
        else:
            pos = np.tile(np.arange(nt), (n, 1))
        dec = self._dec(t, pos) @ self.w  # (n, T, P)
        placed = np.empty_like(dec)
        placed[np.arange(n)[:, None], pos] = dec
        return np.clip(join_patches(placed, self.p, *shape), 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- the plug-in


class SecretKnownPlaintext(Attack):
    """T1-secret: read the scheme's secret off n leaked pairs, invert every frame (curve over n)."""

    threat = "T1-secret"
    knows = "n leaked (original, raw release) pairs under the victim's key, and the public algorithm"
    input = "raw"

    @classmethod
    def applies(cls, knowledge: Knowledge) -> str | None:
        name = knowledge.scheme.scheme
        if knowledge.leak_raw is None or knowledge.leak_pool is None:
            return "needs the victim's leaked pairs (leak_raw and leak_pool)"
        c = _config(knowledge)
        if name == "blockwise":
            return None
        if name == "pixelate":
            return None if c.mix else "pixelate without mix holds no secret to read (its release is the cell means)"
        if name in ("svd", "randenc"):
            return None
        return f"scheme {name!r} has no secret this attack reads (it handles blockwise, svd, pixelate+mix, randenc)"

    @classmethod
    def variants(cls, knowledge: Knowledge) -> list[str]:
        pool = len(knowledge.leak_pool)
        return [f"n={n}" for n in sorted({min(n, pool) for n in N_PAIRS})]

    @property
    def n_pairs(self) -> int:
        return int(self.variant[2:])

    def fit(self, knowledge: Knowledge) -> "SecretKnownPlaintext":
        pool = np.asarray(knowledge.leak_pool, np.float32)
        perm = np.random.default_rng(knowledge.config.attacker_seed + 1).permutation(len(pool))
        orig = pool[perm[: self.n_pairs]]
        raw = np.asarray(knowledge.leak_raw(orig), np.float32)
        self.name, self.c, self.shape = knowledge.scheme.scheme, _config(knowledge), orig.shape[1:]
        c = self.c
        if self.name == "blockwise" and c.levels is not None:
            self.secret = (orig, raw)  # positions need the pooled statistics of the attacked frames too
        elif self.name == "blockwise":
            self.secret = read_blockwise(orig, raw, c.block)
        elif self.name == "svd":
            self.secret = read_svd(orig, raw, rank=c.rank)
        elif self.name == "pixelate":
            self.secret = read_pixelate_mix(orig, raw, c.cell)
        elif self.name == "randenc":
            self.secret = RandEncDecoder(c.patch, c.shuffle).fit(orig, raw)
        else:  # pragma: no cover - applies() refuses
            raise MedcloakError(f"T1-secret: scheme {self.name!r} not handled")
        return self

    def __call__(self, obfuscated: np.ndarray) -> np.ndarray:
        y = np.asarray(obfuscated, np.float64)
        c = self.c
        if self.name == "blockwise" and c.levels is not None:
            return blockwise_map(y, *self.secret, c)
        if self.name == "blockwise":
            return undo_blockwise(y, c.block, *self.secret)
        if self.name == "svd":
            q1, q2 = self.secret
            return np.clip(np.einsum("ji,njk,kl->nil", q1, y, q2), 0, 1).astype(np.float32)
        if self.name == "pixelate":
            v = y.reshape(len(y), -1) @ self.secret  # M^T r, row-wise
            m = v.reshape(y.shape)
            out = np.repeat(np.repeat(m, c.cell, axis=1), c.cell, axis=2)
            return np.clip(out, 0, 1).astype(np.float32)
        return self.secret(y, self.shape)
