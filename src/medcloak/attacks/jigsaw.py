"""jigsaw: ciphertext-only attack on ``blockwise`` (position recovery, block placement, seriation).

The attacker holds only the victim's released frames (all under one key) and the public config.
``blockwise`` uses one in-block pixel shuffle, one set of per-position flips and one block
scrambling for the whole dataset, so statistics pooled over every frame and every block expose
them (Le Roux et al., NIPS 2007; Chuman & Kiya, arXiv 2211.02369; ``shared/schemes-notes.md``):

1. **in-block positions** (``shuffle``): a similarity between the ``p*p`` released positions,
   pooled over all blocks of all frames -- without map ``|corr|``; with the map (``levels``) the
   flip-invariant level-equality rate ``max(P[y_a = y_b], P[y_a = L-1-y_b])`` (a keyed map keeps
   equal levels equal). Neighbouring positions are the most similar. A spectral embedding
   (Laplacian eigenmaps of the k-nearest-neighbour graph) gives 2-D coordinates; they are rotated
   (search over angles), rank-scaled and assigned to the ``p x p`` grid with
   :func:`scipy.optimize.linear_sum_assignment`, then refined by pairwise swaps that raise the
   similarity of grid neighbours;
2. **flips** (``flip``): the sign of the neighbours' statistic (``corr``; with the map
   ``P[equal] - P[equal after flip]``) says whether two neighbouring positions share their
   flip state; the states are the signs of the top eigenvector of that signed neighbour matrix;
3. **block placement** (``scramble``): dissimilarity of every ordered pair of blocks along a
   right and a down boundary, pooled over all frames (mean squared difference of the touching
   pixel columns/rows; with the map the rate of unequal levels); greedy row-major placement from
   several starting blocks, then pairwise swaps of whole blocks lowering the total;
4. **what stays ambiguous** -- the 8 rotations/reflections of the square left by step 1 (of the
   whole frame when blocks are scrambled, block by block otherwise) and, without the map, the
   global flip left by step 2 -- is picked by key-free priors: an "upright" ridge detector
   trained on the attacker's own frames against their other 7 symmetries, and T4's
   "dark vessels" polarity (:func:`medcloak.attacks.statistics.resolve_polarity`). On the
   semi-synthetic frames the orientation prior is weak (their views vary), so the attack also
   reports the best of these at most 16 candidates against the truth (row ``up to symmetry``:
   what the releases alone determine, up to 4 bits);
5. with the map (``levels``): the unscrambled level frames go to T4's level seriation
   (:func:`medcloak.attacks.statistics.ciphertext_only_attack`). Measured at 32 px, 128 frames,
   16 levels, scrambling only: the unscrambling was exact for 4 of 4 fresh keys; what varies
   between keys (SSIM -0.1 to 0.9) is T4's result, equal to T4 on frames unscrambled with the key.

Steps the public config turns off are skipped. Pooled frames: the attacked frames plus, when
the cloud's whole set is given (``knowledge.ciphertexts``), every released frame.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from medcloak.attacks.base import Attack, Knowledge

__all__ = ["Jigsaw", "symmetric_candidates", "position_similarity", "place_positions", "resolve_flips", "place_blocks", "jigsaw_attack"]


def _blocks(x: np.ndarray, p: int) -> np.ndarray:
    n, h, w = x.shape
    return x.reshape(n, h // p, p, w // p, p).transpose(0, 1, 3, 2, 4).reshape(n, (h // p) * (w // p), p * p)


def _join(b: np.ndarray, p: int, h: int, w: int) -> np.ndarray:
    return b.reshape(len(b), h // p, w // p, p, p).transpose(0, 1, 3, 2, 4).reshape(len(b), h, w)


def position_similarity(blocks: np.ndarray, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(similarity, sign)`` between in-block positions, pooled over blocks (S, P) of every frame."""
    s = np.asarray(blocks, np.float64)
    if levels is None:
        z = s - s.mean(0)
        z /= np.sqrt((z ** 2).sum(0)) + 1e-12
        c = z.T @ z
        sim, sign = np.abs(c), np.sign(c)
    else:
        q = np.rint(s * (levels - 1)).astype(np.int64)
        p2 = q.shape[1]
        same, opp = np.zeros((p2, p2)), np.zeros((p2, p2))
        for a in range(p2):
            same[a] = (q[:, a:a + 1] == q).mean(0)
            opp[a] = (q[:, a:a + 1] == levels - 1 - q).mean(0)
        sim, sign = np.maximum(same, opp), np.sign(same - opp)
    np.fill_diagonal(sim, 0.0)
    return sim, sign


def _grid_edges(p: int) -> np.ndarray:
    idx = np.arange(p * p).reshape(p, p)
    return np.concatenate([np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
                           np.stack([idx[:-1].ravel(), idx[1:].ravel()], 1)])


def place_positions(sim: np.ndarray, p: int, *, knn: int = 6, swaps: int = 4) -> np.ndarray:
    """Grid cell -> released position (``(p*p,)``), up to the 8 symmetries of the square."""
    n = len(sim)
    w = np.zeros_like(sim)
    nn = np.argsort(-sim, axis=1)[:, :knn]
    w[np.arange(n)[:, None], nn] = sim[np.arange(n)[:, None], nn]
    w = np.maximum(w, w.T)
    d = w.sum(1)
    lap = np.eye(n) - w / np.sqrt(np.outer(d, d) + 1e-12)
    vec = np.linalg.eigh(lap)[1][:, 1:3] / np.sqrt(d[:, None] + 1e-12)
    grid = np.stack(np.meshgrid(np.arange(p), np.arange(p), indexing="ij"), -1).reshape(-1, 2).astype(float)
    edges = _grid_edges(p)

    def score(cell_pos):
        return sim[cell_pos[edges[:, 0]], cell_pos[edges[:, 1]]].sum()

    best = None
    for theta in np.linspace(0, np.pi / 2, 19)[:-1]:
        r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        xy = vec @ r
        u = np.stack([np.argsort(np.argsort(xy[:, k])) * (p / n) for k in (0, 1)], 1)
        cost = ((u[:, None, :] - grid[None, :, :]) ** 2).sum(-1)  # (position, cell)
        pos, cell = linear_sum_assignment(cost)
        cell_pos = np.empty(n, np.int64)
        cell_pos[cell] = pos
        sc = score(cell_pos)
        if best is None or sc > best[0]:
            best = (sc, cell_pos)
    cell_pos = best[1]
    neigh = [[] for _ in range(n)]
    for a, b in edges:
        neigh[a].append(b)
        neigh[b].append(a)
    for _ in range(swaps):  # pairwise swaps of grid cells raising the neighbour similarity
        changed = False
        for a in range(n):
            for b in range(a + 1, n):
                pa, pb = cell_pos[a], cell_pos[b]
                na = [cell_pos[c] for c in neigh[a] if c != b]
                nb = [cell_pos[c] for c in neigh[b] if c != a]
                delta = sim[pb, na].sum() + sim[pa, nb].sum() - sim[pa, na].sum() - sim[pb, nb].sum()
                if delta > 1e-12:
                    cell_pos[a], cell_pos[b] = pb, pa
                    changed = True
        if not changed:
            break
    return cell_pos


def resolve_flips(sign: np.ndarray, sim: np.ndarray, cell_pos: np.ndarray, p: int) -> np.ndarray:
    """Flip state of every released position (up to a global flip), from grid neighbours' signs."""
    m = np.zeros_like(sim)
    for a, b in _grid_edges(p):
        i, j = cell_pos[a], cell_pos[b]
        m[i, j] = m[j, i] = sign[i, j] * sim[i, j]
    v = np.linalg.eigh(m)[1][:, -1]
    return v < 0


def _boundary_costs(blocks: np.ndarray, p: int, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``right[i, j]``: cost of block j right of block i; ``down[i, j]``: j below i (pooled over frames)."""
    b = np.asarray(blocks, np.float64).reshape(blocks.shape[0], blocks.shape[1], p, p)
    g = b.shape[1]
    right, down = np.zeros((g, g)), np.zeros((g, g))
    pairs = {"right": (b[:, :, :, -1], b[:, :, :, 0], right), "down": (b[:, :, -1, :], b[:, :, 0, :], down)}
    for first, second, out in pairs.values():
        for i in range(g):
            if levels is None:
                out[i] = ((first[:, i:i + 1] - second) ** 2).mean((0, 2))
            else:
                out[i] = (np.rint(first[:, i:i + 1] * (levels - 1)) != np.rint(second * (levels - 1))).mean((0, 2))
    np.fill_diagonal(right, np.inf)
    np.fill_diagonal(down, np.inf)
    return right, down


def place_blocks(right: np.ndarray, down: np.ndarray, gh: int, gw: int, *, starts: int = 16,
                 swaps: int = 4) -> np.ndarray:
    """Grid cell -> released block (``(gh*gw,)``) minimising the boundary costs (greedy + swaps)."""
    g = gh * gw
    r = np.where(np.isfinite(right), right, 1e9)
    d = np.where(np.isfinite(down), down, 1e9)

    def total(cell_blk):
        grid = cell_blk.reshape(gh, gw)
        return r[grid[:, :-1], grid[:, 1:]].sum() + d[grid[:-1], grid[1:]].sum()

    # likely top-left blocks: poor fit as anyone's right or down neighbour
    order = np.argsort(-(np.sort(r, 0)[0] + np.sort(d, 0)[0]))
    best = None
    for s in order[:starts]:
        cell_blk = np.full(g, -1, np.int64)
        used = np.zeros(g, bool)
        for c in range(g):
            if c == 0:
                k = s
            else:
                cost = np.zeros(g)
                if c % gw:
                    cost += r[cell_blk[c - 1]]
                if c >= gw:
                    cost += d[cell_blk[c - gw]]
                cost[used] = np.inf
                k = int(np.argmin(cost))
            cell_blk[c], used[k] = k, True
        t = total(cell_blk)
        if best is None or t < best[0]:
            best = (t, cell_blk)
    t, cell_blk = best
    for _ in range(swaps):
        changed = False
        for a in range(g):
            for b in range(a + 1, g):
                cell_blk[a], cell_blk[b] = cell_blk[b], cell_blk[a]
                t2 = total(cell_blk)
                if t2 < t - 1e-12:
                    t, changed = t2, True
                else:
                    cell_blk[a], cell_blk[b] = cell_blk[b], cell_blk[a]
        if not changed:
            break
    return cell_blk


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
    y = np.rot90(x, k % 4, axes=(-2, -1))
    return y[..., ::-1] if k >= 4 else y


def _polarity(frames: np.ndarray) -> np.ndarray:
    """``frames`` or ``1 - frames``, by T4's key-free "dark vessels" prior
    (:func:`medcloak.attacks.statistics.resolve_polarity`)."""
    from medcloak.attacks.statistics import resolve_polarity

    return 1.0 - frames if resolve_polarity(np.clip(frames, 0, 1)) else frames


def _orientation_features(frames: np.ndarray, cells: int = 8) -> np.ndarray:
    f = np.asarray(frames, np.float64)
    n, h, w = f.shape
    c = min(cells, h, w)
    f = f[:, : h - h % c, : w - w % c]
    pooled = f.reshape(n, c, f.shape[1] // c, c, f.shape[2] // c).mean((2, 4)).reshape(n, -1)
    pooled = (pooled - pooled.mean(1, keepdims=True)) / (pooled.std(1, keepdims=True) + 1e-9)
    return np.concatenate([pooled, np.ones((n, 1))], 1)


def _orientation(cands: list[np.ndarray], prior_frames: np.ndarray | None) -> np.ndarray:
    """The candidate the attacker's "upright" detector prefers.

    The detector is a ridge regression on 8x8 mean-pooled frames, trained on the attacker's own
    frames (target 1) against their 7 other rotations/reflections (target 0): a prior, no key.
    """
    if prior_frames is None or len(cands) == 1:
        return cands[0]
    own = np.asarray(prior_frames, np.float64)
    x = np.concatenate([_orientation_features(_dihedral(own, k)) for k in range(len(cands))])
    y = np.repeat((np.arange(len(cands)) == 0).astype(float), len(own))
    a = x.T @ x
    a[np.diag_indices_from(a)] += 1e-1 * np.trace(a) / len(a)
    wgt = np.linalg.solve(a, x.T @ y)
    return max(cands, key=lambda f: float((_orientation_features(f) @ wgt).mean()))


def jigsaw_attack(released: np.ndarray, config, *, prior_frames: np.ndarray | None = None,
                  n_attacked: int | None = None, t4_options: dict | None = None, unscramble_only: bool = False
                  ) -> np.ndarray:
    """Unscramble ``blockwise`` releases (N, H, W) with ``config``'s public flags; returns (n_attacked, H, W).

    ``prior_frames``: the attacker's own frames (they fix the symmetries); the first
    ``n_attacked`` frames are returned (the rest only pool statistics). ``unscramble_only``:
    stop after steps 1-3 (every frame, symmetries unresolved, levels not seriated; what
    T1-secret finishes with its pairs).
    """
    y = np.asarray(released, np.float64)
    n, h, w = y.shape
    n_attacked = n if n_attacked is None else n_attacked
    p, levels = config.block, config.levels
    b = _blocks(y, p)  # (N, G, P)
    gh, gw = h // p, w // p
    if config.shuffle or config.flip:
        sim, sign = position_similarity(b.reshape(-1, p * p), levels)
        cell_pos = place_positions(sim, p) if config.shuffle else np.arange(p * p)
        if config.flip:
            flips = resolve_flips(sign, sim, cell_pos, p)
            b = b.copy()
            b[:, :, flips] = 1.0 - b[:, :, flips]
        b = b[:, :, cell_pos]
        if config.shuffle and not config.scramble:  # the square's symmetries, block by block
            blk = b.reshape(n, gh * gw, p, p)
            cands = [_join(_dihedral(blk, k).reshape(n, gh * gw, p * p), p, h, w) for k in range(8)]
            b = _blocks(_orientation(cands, prior_frames), p)
    if config.scramble:
        right, down = _boundary_costs(b, p, levels)
        b = b[:, place_blocks(right, down, gh, gw)]
    frames = _join(b, p, h, w)
    if unscramble_only:
        return frames.astype(np.float32)
    if config.shuffle and config.scramble and h == w:  # placement turns in-block symmetries into the frame's
        frames = _orientation([_dihedral(frames, k) for k in range(8)], prior_frames)
    if config.flip and levels is None:
        frames = _polarity(frames)
    frames = frames[:n_attacked]
    if levels is not None:
        from medcloak.attacks.statistics import ciphertext_only_attack

        return np.asarray(ciphertext_only_attack(np.clip(frames, 0, 1), levels=levels, **(t4_options or {})),
                          np.float32)
    return np.clip(frames, 0, 1).astype(np.float32)


def symmetric_candidates(frames: np.ndarray, config) -> list[np.ndarray]:
    """Unscrambled ``frames`` under every symmetry the releases alone cannot settle (``config``'s flags)."""
    c = config
    n, h, w = frames.shape
    p = c.block
    if c.shuffle and c.scramble and h == w:
        cands = [_dihedral(frames, k) for k in range(8)]
    elif c.shuffle:  # block by block
        blk = _blocks(frames, p).reshape(n, -1, p, p)
        cands = [_join(_dihedral(blk, k).reshape(n, -1, p * p), p, h, w) for k in range(8)]
    else:
        cands = [frames]
    if c.flip and c.levels is None:
        cands += [1.0 - f for f in cands]
    return cands


class Jigsaw(Attack):
    """jigsaw: ciphertext-only unscrambling of ``blockwise`` (see the module docstring)."""

    threat = "jigsaw"
    knows = "the victim's released frames only (one key), the public config, own frames as a prior"
    input = "raw"

    @classmethod
    def applies(cls, knowledge: Knowledge) -> str | None:
        if knowledge.scheme.scheme != "blockwise":
            return f"the jigsaw attack is for blockwise, not {knowledge.scheme.scheme!r}"
        return None

    def fit(self, knowledge: Knowledge) -> "Jigsaw":
        self.config = knowledge.scheme.make().config
        self.prior = np.asarray(knowledge.attacker.frames, np.float32)
        self.pool = knowledge.ciphertexts
        self.t4 = dict(getattr(knowledge.config, "t4_options", {}) or {})
        self.variant = "all released frames" if self.pool is not None else "attacked frames"
        return self

    def __call__(self, obfuscated: np.ndarray) -> np.ndarray:
        x = np.asarray(obfuscated, np.float32)
        if self.pool is not None:
            x = np.concatenate([x, np.asarray(self.pool, np.float32)])
        self._out = jigsaw_attack(x, self.config, prior_frames=self.prior, n_attacked=len(obfuscated),
                                  t4_options=self.t4)
        return self._out

    def symmetric_candidates(self, frames: np.ndarray) -> list[np.ndarray]:
        """``frames`` under every symmetry the attack cannot settle from the releases alone."""
        return symmetric_candidates(frames, self.config)

    def extra_rows(self, victim, prior: dict) -> list[dict]:
        """``jigsaw`` / ``up to symmetry``: the best of :meth:`symmetric_candidates` by SSIM against
        the truth -- what the releases alone determine (the truth picks one of at most 16
        candidates: at most 4 bits), beside the row whose choice the attacker's prior made."""
        import time

        from medcloak.attacks.base import make_row, score
        from medcloak import metrics

        t = time.perf_counter()
        cands = self.symmetric_candidates(np.asarray(self._out, np.float32))
        if len(cands) == 1:
            return []
        best = max(cands, key=lambda f: metrics.ssim(np.clip(f, 0, 1), victim.test_originals))
        return [make_row(self.threat, f"up to symmetry (oracle pick of {len(cands)})",
                         score(np.clip(best, 0, 1).astype(np.float32), victim, prior), time.perf_counter() - t)]
