"""Which frames of a cine to keep: score each by its vessel area, then one per time window.

The rule (also in :mod:`medcloak.io.intake`, which uses it): every frame is scored by the
fraction of pixels :func:`medcloak.metrics.vessel_map` marks as contrast-filled vessel
(:func:`frame_scores`); the opacified phase is the span of frames scoring at least half the
best; it is cut into N equal time windows and the best frame of each is kept
(:func:`select_frames`), so the picks spread over the cardiac cycle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCORE_SIDE", "frame_scores", "select_frames"]

#: Frames are scored on a copy shrunk to at most this many pixels a side.
SCORE_SIDE = 128


def frame_scores(frames: np.ndarray) -> np.ndarray:
    """Vessel area of each frame: the fraction of pixels :func:`medcloak.metrics.vessel_map` marks.

    Parameters
    ----------
    frames : ndarray, (N, H, W), float in [0, 1]
        One cine. Frames larger than :data:`SCORE_SIDE` are shrunk (aspect kept) before scoring.

    Returns
    -------
    ndarray of float64, (N,)
        Values in [0, 1].
    """
    from medcloak.io.arrays import resize
    from medcloak.metrics import vessel_map  # lazy: metrics sits above io in the data flow

    stack = np.asarray(frames, dtype=np.float32)
    h, w = stack.shape[1:]
    if max(h, w) > SCORE_SIDE:
        s = SCORE_SIDE / max(h, w)
        hw = (max(1, round(h * s)), max(1, round(w * s)))
        stack = np.stack([resize(f, hw) for f in stack])
    return vessel_map(stack).mean(axis=(1, 2)).astype(np.float64)


def select_frames(scores: np.ndarray, n: int) -> list[int]:
    """Indices of the frames kept from one cine (the rule is in the module docstring).

    Parameters
    ----------
    scores : ndarray, (T,)
        Per-frame score (:func:`frame_scores`), in time order.
    n : int
        Frames wanted (>= 1).

    Returns
    -------
    list of int
        Sorted, distinct, ``min(n, T)`` indices.

    Examples
    --------
    >>> select_frames(np.array([0, 0, .2, .3, .25, .1, .3, .2, 0, 0]), 2)
    [3, 6]
    """
    s = np.asarray(scores, dtype=np.float64)
    t = len(s)
    if n >= t:
        return list(range(t))
    lo, hi = 0, t - 1
    best = float(s.max()) if t else 0.0
    if best > 0:
        on = np.flatnonzero(s >= 0.5 * best)
        lo, hi = int(on[0]), int(on[-1])
        if hi - lo + 1 < n:
            lo, hi = 0, t - 1
    windows = np.array_split(np.arange(lo, hi + 1), n)
    return sorted(int(win[np.argmax(s[win])]) for win in windows)
