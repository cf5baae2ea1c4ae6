"""Step 2 of the T4 ciphertext-only attack (:mod:`medcloak.attacks.statistics`): seriation.

Order the output levels of a keyed intensity map so that levels which often sit next to each other
are close: the Fiedler vector of the random-walk Laplacian (spectral seriation) of three
similarities of the co-occurrence counts (raw counts, symmetrised transition matrix, positive PMI),
each refined by :func:`refine_order` -- exact insertion moves lowering
``F = sum_ij C_ij |rank_i - rank_j|``, the total rank jump over all adjacent pixel pairs.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy import sparse
from scipy.sparse.csgraph import connected_components

__all__ = ["seriate", "spectral_order", "refine_order", "ranks", "WEIGHTINGS"]


def ranks(order: np.ndarray, m: int) -> np.ndarray:
    """Rank of each of ``m`` labels in ``order`` (NaN for labels not in it)."""
    rank = np.full(m, np.nan)
    rank[order] = np.arange(len(order), dtype=np.float64)
    return rank


def _ppmi(C: np.ndarray) -> np.ndarray:
    """Positive pointwise mutual information of a symmetric count matrix (diagonal zeroed)."""
    total = C.sum()
    d = C.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(C * total / np.outer(d, d))
    W = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    np.fill_diagonal(W, 0.0)
    return W


def spectral_order(W: np.ndarray) -> np.ndarray:
    """Order the nodes of a similarity graph by its Fiedler vector.

    Parameters
    ----------
    W : ndarray, (M, M)
        Symmetric non-negative similarities; every node must have a positive row sum.

    Returns
    -------
    position : ndarray of float64, (M,)
        The Fiedler vector of the random-walk Laplacian ``I - D^-1 W`` (computed through the
        symmetric normalised Laplacian), a 1-D embedding whose sort order is the seriation.
        Nodes outside the largest connected component are placed by their weighted mean
        neighbour position (or at the median when isolated). When no component holds three
        nodes there is nothing to order by: the input order is returned.
    """
    W = np.asarray(W, dtype=np.float64)
    m = len(W)
    if m < 3:
        return np.arange(m, dtype=np.float64)
    n_comp, comp = connected_components(sparse.csr_matrix(W > 0), directed=False)
    main = np.bincount(comp).argmax()
    keep = np.flatnonzero(comp == main)
    if len(keep) < 3:  # no two nodes are similar (e.g. PPMI of 3 levels that all touch at chance): no order
        return np.arange(m, dtype=np.float64)
    Wk = W[np.ix_(keep, keep)]
    d = Wk.sum(axis=1)
    s = 1.0 / np.sqrt(d)
    A = s[:, None] * Wk * s[None, :]
    # the two largest eigenvalues of A == the two smallest of the normalised Laplacian
    _, vecs = scipy.linalg.eigh(A, subset_by_index=[len(A) - 2, len(A) - 1])
    f = vecs[:, 0] * s  # random-walk Fiedler vector
    pos = np.full(m, np.nan)
    pos[keep] = f
    if n_comp > 1:
        rest = np.flatnonzero(comp != main)
        wr = W[np.ix_(rest, keep)]
        tot = wr.sum(axis=1)
        pos[rest] = np.where(tot > 0, wr @ f / np.where(tot > 0, tot, 1), np.median(f))
    return pos


def _objective(C: np.ndarray, rank: np.ndarray) -> float:
    return float((C * np.abs(rank[:, None] - rank[None, :])).sum() / 2)


def _cuts(Cs: np.ndarray) -> np.ndarray:
    """``cut[s]`` = weight of pairs split by slot ``s`` of an order (``Cs`` rows/cols in order)."""
    k = len(Cs)
    upper_rows = Cs.sum(axis=1) - np.cumsum(Cs, axis=1)[np.arange(k), np.arange(k)]  # j > i
    lower_rows = Cs.sum(axis=1) - upper_rows - np.diag(Cs)  # j < i
    cut = np.zeros(k + 1)
    cut[1:] = np.cumsum(upper_rows - lower_rows)
    return cut


def _insertion_cost(cut: np.ndarray, c: np.ndarray, p: int) -> np.ndarray:
    """Cost of moving the level at rank ``p`` to every slot of the order of the other levels.

    ``cut`` is :func:`_cuts` of the current full order, ``c`` the moving level's co-occurrence
    with every level in the current order (``c[p]`` is ignored). Slot ``t`` puts the level between
    the others' ranks ``t-1`` and ``t``. Returns the part of the objective that depends on ``t``:
    the weight of all pairs of other levels it separates plus its own rank jumps.
    """
    c = c.astype(np.float64).copy()
    c[p] = 0.0
    k = len(c)
    pre = np.concatenate(([0.0], np.cumsum(c)))  # pre[i] = sum c[:i]
    t = np.arange(k)  # slots of the (k-1)-long order of the others
    sep = np.where(t <= p, cut[t] - pre[t], cut[np.minimum(t + 1, k)] - (pre[-1] - pre[np.minimum(t + 1, k)]))
    cr = np.delete(c, p)
    j = np.arange(k - 1)
    A = np.concatenate(([0.0], np.cumsum(cr)))
    B = np.concatenate(([0.0], np.cumsum(cr * j)))
    own = t * A - B + (B[-1] - B) + (A[-1] - A) - t * (A[-1] - A)
    return sep + own


def refine_order(C: np.ndarray, order: np.ndarray, *, sweeps: int = 30) -> np.ndarray:
    """Locally improve a seriation so that neighbouring pixels get close ranks.

    Minimises ``F = sum_{a<b} C[a, b] * |rank(a) - rank(b)|`` -- the sum over all adjacent pixel
    pairs of their rank jump (a minimum-linear-arrangement objective) -- by *insertion moves*:
    each level in turn is taken out and put back at the slot that minimises ``F`` exactly
    (computed for all slots at once from prefix sums, O(M^2) per level). Sweeps repeat until no
    move improves ``F`` or ``sweeps`` runs out. Adjacent swaps are a special case.

    Parameters
    ----------
    C : ndarray, (M, M)
        Symmetric co-occurrence counts.
    order : ndarray of int, (M,)
        Initial order (a permutation of ``range(M)``).
    sweeps : int, keyword-only
        Maximum number of sweeps over all levels.

    Returns
    -------
    order : ndarray of int64, (M,)
        The refined order; ``F`` is never larger than for the input order.
    """
    C = np.array(C, dtype=np.float64)
    np.fill_diagonal(C, 0.0)
    m = len(order)
    if m < 3:
        return np.asarray(order, dtype=np.int64)
    scale = C.sum() / 2 or 1.0
    order = np.asarray(order, dtype=np.int64)
    cut = _cuts(C[np.ix_(order, order)])
    for _ in range(sweeps):
        improved = False
        for u in order.copy():
            p = int(np.flatnonzero(order == u)[0])
            cost = _insertion_cost(cut, C[u, order], p)
            t = int(np.argmin(cost))
            if cost[t] < cost[p] - 1e-9 * scale:
                order = np.insert(np.delete(order, p), t, u)
                cut = _cuts(C[np.ix_(order, order)])
                improved = True
        if not improved:
            break
    return np.asarray(order, dtype=np.int64)


def _similarity(Cu: np.ndarray, weighting: str) -> np.ndarray:
    if weighting == "ppmi":
        return _ppmi(Cu)
    if weighting == "counts":
        W = Cu.copy()
    elif weighting == "transition":
        P = Cu / Cu.sum(axis=1, keepdims=True)
        W = (P + P.T) / 2
    else:
        raise ValueError(f"unknown weighting {weighting!r}")
    np.fill_diagonal(W, 0.0)
    return W


WEIGHTINGS = ("counts", "transition", "ppmi")


def seriate(C: np.ndarray, *, weighting: str = "best", refine: bool = True) -> np.ndarray:
    """Order levels so that levels which are often neighbours are close.

    Parameters
    ----------
    C : ndarray, (M, M)
        Symmetric co-occurrence counts (:func:`cooccurrence`).
    weighting : {"best", "counts", "transition", "ppmi"}, keyword-only
        Similarity fed to the spectral step: raw counts (diagonal removed), the symmetrised
        transition matrix ``(D^-1 C + C D^-1) / 2``, or positive pointwise mutual information.
        ``"best"`` (default) starts from all three and keeps the order with the smallest
        objective ``F`` of :func:`refine_order` (no ground truth involved).
    refine : bool, keyword-only
        Apply :func:`refine_order` after the spectral step.

    Returns
    -------
    order : ndarray of int64
        The labels with a non-zero row sum in ``C`` (levels that occur), from one end of the hidden
        intensity scale to the other. The direction is arbitrary; see :func:`resolve_polarity`.
    """
    C = np.asarray(C, dtype=np.float64)
    used = np.flatnonzero(C.sum(axis=1) > 0)
    Cu = C[np.ix_(used, used)]
    if len(used) < 3:
        return used.astype(np.int64)
    Cz = Cu.copy()
    np.fill_diagonal(Cz, 0.0)
    if Cz.sum() == 0:  # no two different levels ever touch: nothing to order by
        return used.astype(np.int64)
    names = WEIGHTINGS if weighting == "best" else (weighting,)
    best, best_f = None, np.inf
    for name in names:
        pos = spectral_order(_similarity(Cu, name))
        order = np.lexsort((np.arange(len(used)), pos))
        if refine:
            order = refine_order(Cz, order)
        f = _objective(Cz, ranks(order, len(used)))
        if f < best_f:
            best, best_f = order, f
    return used[best].astype(np.int64)

