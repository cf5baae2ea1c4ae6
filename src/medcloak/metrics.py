"""Every figure a user reads: image similarity, vessel recovery, re-identification.

One function per figure, its settings fixed here and stated in its docstring, so that the
study, the attacks, the benchmarks and the report all report the same number.

Images are float arrays in [0, 1], shape ``(H, W)`` for one frame or ``(N, H, W)`` for a
stack; stacks give the mean over frames (``*_per_frame`` variants give each frame's value).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.morphology import disk, white_tophat

__all__ = [
    "ssim",
    "ssim_per_frame",
    "psnr",
    "psnr_per_frame",
    "pixel_correlation",
    "vessel_map",
    "vessel_dice",
    "vessel_recovery",
    "reidentification_topk",
    "PSNR_CAP_DB",
]

#: PSNR reported for identical frames (whose true PSNR is infinite), in dB.
PSNR_CAP_DB = 100.0

#: SSIM settings of Wang et al. 2004 (Gaussian window, sigma 1.5, population covariance).
_SSIM_KW = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _as_stack(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Promote to float64 and to ``(N, H, W)``; reject other ranks."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {a.shape}")
    if a.dtype == bool:
        return a
    return a.astype(np.float64, copy=False)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape check and dtype promotion (float64) of two images/stacks."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"input images must have the same shape, got {a.shape} and {b.shape}")
    return _as_stack(a, "first image"), _as_stack(b, "second image")


# ----------------------------------------------------------------------------- similarity


def ssim_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity of each frame pair.

    Parameters
    ----------
    a, b : ndarray, (H, W) or (N, H, W), values in [0, 1]
        Frames to compare (order does not matter; SSIM is symmetric).

    Returns
    -------
    ndarray of float64, shape (N,)
        SSIM per frame, in [-1, 1]; 1 means identical.

    Notes
    -----
    :func:`skimage.metrics.structural_similarity` with ``data_range=1.0``,
    ``gaussian_weights=True``, ``sigma=1.5`` (11x11 window, truncate 3.5),
    ``use_sample_covariance=False``, ``K1=0.01``, ``K2=0.03`` -- the settings of Wang et al.
    The mean of the SSIM map is taken over the valid region (scikit-image crops the border).

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment:
       from error visibility to structural similarity", IEEE TIP 13(4):600-612, 2004.

    Examples
    --------
    >>> x = np.linspace(0, 1, 32 * 32).reshape(1, 32, 32)
    >>> ssim_per_frame(x, x).tolist()
    [1.0]
    """
    a, b = _check_pair(a, b)
    return np.array([structural_similarity(fa, fb, **_SSIM_KW) for fa, fb in zip(a, b)])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity over frames (see :func:`ssim_per_frame` for settings).

    Parameters
    ----------
    a, b : ndarray, (H, W) or (N, H, W), values in [0, 1]

    Returns
    -------
    float
        Mean SSIM over the N frames, in [-1, 1].

    Examples
    --------
    >>> x = np.zeros((16, 16)); x[4:12, 4:12] = 1.0
    >>> ssim(x, x)
    1.0
    >>> round(ssim(x, 1 - x), 3) < 0
    True
    """
    return float(np.mean(ssim_per_frame(a, b)))


def psnr_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio of each frame pair, in dB.

    Parameters
    ----------
    a, b : ndarray, (H, W) or (N, H, W), values in [0, 1]
        Reference and test frames (symmetric).

    Returns
    -------
    ndarray of float64, shape (N,)
        ``10 * log10(1 / MSE)`` per frame, in dB (``data_range=1.0``). Identical frames
        (MSE = 0, PSNR infinite) are reported as :data:`PSNR_CAP_DB` = 100 dB.

    Notes
    -----
    :func:`skimage.metrics.peak_signal_noise_ratio` with ``data_range=1.0``, per frame.
    The cap keeps means finite; 100 dB corresponds to an RMS error of 1e-5 of full range.

    Examples
    --------
    >>> x = np.zeros((8, 8)); y = x + 0.1
    >>> psnr_per_frame(x, y).round(6).tolist()
    [20.0]
    >>> psnr_per_frame(x, x).tolist()
    [100.0]
    """
    a, b = _check_pair(a, b)
    out = np.empty(len(a))
    for i, (fa, fb) in enumerate(zip(a, b)):
        if np.array_equal(fa, fb):
            out[i] = PSNR_CAP_DB
        else:
            out[i] = min(PSNR_CAP_DB, peak_signal_noise_ratio(fa, fb, data_range=1.0))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the per-frame PSNR in dB (see :func:`psnr_per_frame`).

    Per-frame values are averaged in dB (not the PSNR of the pooled MSE); identical frames
    count as :data:`PSNR_CAP_DB`.

    Examples
    --------
    >>> x = np.zeros((2, 8, 8)); y = x + np.array([0.1, 0.01])[:, None, None]
    >>> round(psnr(x, y), 6)
    30.0
    """
    return float(np.mean(psnr_per_frame(a, b)))


def pixel_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the Pearson correlation of pixel values.

    Parameters
    ----------
    a, b : ndarray, (H, W) or (N, H, W)

    Returns
    -------
    float
        Mean per-frame Pearson r, in [-1, 1]. A frame pair where either frame is constant
        (r undefined) counts as 0.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> pixel_correlation(x, 2 * x + 1), pixel_correlation(x, -x)
    (1.0, -1.0)
    """
    a, b = _check_pair(a, b)
    return float(np.mean(_corr_rows(a.reshape(len(a), -1), b.reshape(len(b), -1))))


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching rows; 0 where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    r = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.clip(r, -1.0, 1.0)


# ----------------------------------------------------------------------------- vessels

#: Settings of :func:`vessel_map` (chosen on clean semi-synthetic frames, see its Notes). Levels
#: are white top-hats of the line integral ``-log(I)``, i.e. vessel contrast in log units
#: (a level ``t`` is a darkening to ``exp(-t)`` of the local background).
VESSEL_RADIUS_AT_128 = 3
VESSEL_DETAIL_RADIUS = 1
VESSEL_SEED_LEVEL = 0.3
VESSEL_GROW_LEVEL = 0.12
VESSEL_DETAIL_LEVEL = 0.05


_EIGHT = np.ones((3, 3), dtype=bool)


def _default_radius(shape: tuple[int, ...]) -> int:
    """Top-hat radius in pixels: 3 px at 128 px frames, in proportion to the frame side."""
    return max(1, int(np.floor(VESSEL_RADIUS_AT_128 * max(shape[-2:]) / 128.0 + 0.5)))


def vessel_map(
    img: np.ndarray,
    *,
    radius: int | None = None,
    detail_radius: int = VESSEL_DETAIL_RADIUS,
    seed_level: float = VESSEL_SEED_LEVEL,
    grow_level: float = VESSEL_GROW_LEVEL,
    detail_level: float = VESSEL_DETAIL_LEVEL,
) -> np.ndarray:
    """Hand-made segmentation of dark tubular structures (contrast-filled vessels).

    Parameters
    ----------
    img : ndarray, (H, W) or (N, H, W), values in [0, 1]
        X-ray frame(s), transmitted intensity; vessels are darker than the background.
    radius : int, optional
        Radius in pixels of the disk that measures vessel contrast (larger than the widest
        vessel's half width). Default: 3 px for 128-px frames, in proportion to the frame
        side (``round(3 * max(H, W) / 128)``, at least 1; so 2 px at 64, 1 px at 32).
    detail_radius : int
        Radius in pixels of the disk that measures the contrast of thin branches (default 1).
    seed_level, grow_level, detail_level : float
        Contrast levels in log units (see Notes); defaults 0.3, 0.12 and 0.05
        (darkenings of 26 %, 11 % and 5 %).

    Returns
    -------
    ndarray of bool, same shape as ``img``
        True on vessel pixels.

    Notes
    -----
    Per frame:

    1. line integral ``A = -log(clip(img, 1e-3, 1))`` (Beer-Lambert: a vessel's contrast no
       longer depends on the brightness of the anatomy behind it, nor on the display gain);
    2. contrast against the local background as white top-hats of ``A``
       (:func:`skimage.morphology.white_tophat`): ``V`` with a disk of ``radius`` px (whole
       vessels) and ``D`` with a disk of ``detail_radius`` px (branches at most
       ``2 * detail_radius + 1`` px wide; broad anatomy such as rib shadows has none);
    3. candidates: ``V >= grow_level`` or ``D >= detail_level``; a vessel is a connected
       (8-neighbour) set of candidates that holds a seed ``V >= seed_level``. A coronary
       tree is connected and its trunk is strongly opacified, so faint branches are kept
       where they join it while equally faint background texture is dropped.

    Known limit: where a thin faint branch leaves a trunk, the disk fits the trunk plus the
    branch's first pixels, so the branch's contrast drops there for ~2 px and the branch may be
    cut off from its seed and dropped (bridging such gaps let background texture in at 64 px).

    The levels are fixed contrasts, not fractions of a frame's pixels, so the vessel area
    follows what the frame holds (a flat frame, or one with no vessel darker than 26 %,
    gives an empty map). Settings were chosen on noise-free (``clean``) semi-synthetic
    frames of :func:`medcloak.synth.generate` (seed 100, 48 frames per size) against its
    visible-lumen masks with the catheter ignored (96 frames per size, generator seed 100;
    rule: the best mean of the 128- and 64-px Dice that keeps 128 px at >= 0.86), and then
    checked on noisy frames and other seeds (``benchmarks/vessel_ceiling.py``). On the
    tuning frames: Dice 0.867 at 128 px, 0.749 at 64 px, 0.563 at 32 px. The map also finds the catheter (pass its mask as
    ``ignore`` to :func:`vessel_dice`).

    References
    ----------
    .. [1] J. Serra, *Image Analysis and Mathematical Morphology*, Academic Press, 1982
       (top-hat transform).
    .. [2] J. Canny, "A computational approach to edge detection", IEEE TPAMI 8(6), 1986
       (hysteresis: weak responses kept where connected to strong ones).

    Examples
    --------
    >>> x = np.full((32, 32), 0.8); x[15:17, 4:28] = 0.3      # a dark horizontal line
    >>> m = vessel_map(x)
    >>> bool(m[15, 16]), bool(m[4, 16]), bool(vessel_map(np.full((32, 32), 0.5)).any())
    (True, False, False)
    """
    a = np.asarray(img)
    stack = _as_stack(a, "img")
    r_big = _default_radius(stack.shape) if radius is None else int(radius)
    r_small = int(detail_radius)
    if r_big < 1 or r_small < 1:
        raise ValueError(f"radius and detail_radius must be >= 1 px, got {r_big} and {r_small}")
    big, small = disk(r_big), disk(r_small)
    out = np.zeros(stack.shape, dtype=bool)
    for i, f in enumerate(stack):
        line = -np.log(np.clip(np.nan_to_num(f, nan=1.0), 1e-3, 1.0))
        whole = white_tophat(line, footprint=big)
        detail = white_tophat(line, footprint=small) if r_small != r_big else whole
        cand = (whole >= grow_level) | (detail >= detail_level)
        seeds = cand & (whole >= seed_level)
        if not seeds.any():
            continue
        lab, _ = ndi.label(cand, structure=_EIGHT)
        keep = np.zeros(lab.max() + 1, dtype=bool)
        keep[np.unique(lab[seeds])] = True
        keep[0] = False
        out[i] = keep[lab]
    return out.reshape(a.shape)


def _dice_per_frame(pred: np.ndarray, true: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    p, t = np.asarray(pred), np.asarray(true)
    if p.shape != t.shape:
        raise ValueError(f"masks must have the same shape, got {p.shape} and {t.shape}")
    p, t = _as_stack(p.astype(bool), "pred_mask"), _as_stack(t.astype(bool), "true_mask")
    if ignore is not None:
        g = np.asarray(ignore)
        if g.shape != np.asarray(pred).shape:
            raise ValueError(f"ignore must have the shape of the masks {np.asarray(pred).shape}, got {g.shape}")
        keep = ~_as_stack(g.astype(bool), "ignore")
        p, t = p & keep, t & keep
    inter = (p & t).sum(axis=(1, 2)).astype(np.float64)
    total = (p.sum(axis=(1, 2)) + t.sum(axis=(1, 2))).astype(np.float64)
    return np.divide(2 * inter, total, out=np.ones_like(total), where=total > 0)


def vessel_dice(pred_mask: np.ndarray, true_mask: np.ndarray, *, ignore: np.ndarray | None = None) -> float:
    """Dice overlap of boolean masks; mean over frames for stacks.

    Parameters
    ----------
    pred_mask, true_mask : array_like of bool, (H, W) or (N, H, W)
        Non-zero means foreground.
    ignore : array_like of bool, same shape, optional
        Pixels that count neither way (e.g. the catheter, a dark tube that is not a vessel:
        ``FrameSet.catheter``): removed from both masks before the overlap is taken.

    Returns
    -------
    float
        ``2 |P & T| / (|P| + |T|)`` per frame (over pixels not ignored), in [0, 1],
        averaged over frames. Two empty masks have Dice 1.0 by definition (perfect
        agreement that there is nothing).

    Examples
    --------
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> vessel_dice(a, b), vessel_dice(a, a), vessel_dice(~a & a, ~a & a)
    (0.5, 1.0, 1.0)
    >>> vessel_dice(a, b, ignore=~b)             # only rows 1-2 count: a holds row 1
    0.6666666666666666
    """
    return float(np.mean(_dice_per_frame(pred_mask, true_mask, ignore)))


def vessel_recovery(img: np.ndarray, true_mask: np.ndarray, *, ignore: np.ndarray | None = None) -> float:
    """How much of the vessel tree a hand-made filter finds in ``img``.

    ``vessel_dice(vessel_map(img), true_mask, ignore=ignore)``; see :func:`vessel_map` for
    the settings.

    Parameters
    ----------
    img : ndarray, (H, W) or (N, H, W), values in [0, 1]
    true_mask : ndarray of bool, same shape
    ignore : ndarray of bool, same shape, optional
        Pixels that count neither way (e.g. ``FrameSet.catheter``).

    Returns
    -------
    float
        Mean Dice over frames, in [0, 1].

    Examples
    --------
    >>> x = np.full((64, 64), 0.8); x[30:33, 8:56] = 0.3      # a 3-px dark line
    >>> mask = x < 0.5
    >>> vessel_recovery(x, mask) > 0.9
    True
    """
    return vessel_dice(vessel_map(img), true_mask, ignore=ignore)


# ----------------------------------------------------------------------------- re-identification


def reidentification_topk(
    recons: np.ndarray,
    originals: np.ndarray,
    *,
    k: Sequence[int] | int = (1, 5),
    metric: str = "ssim",
) -> dict[int, float]:
    """Top-k re-identification accuracy of reconstructions against their originals.

    For each reconstruction ``i``, the N originals are ranked by similarity to it; a hit
    at ``k`` means original ``i`` is among the ``k`` most similar.

    Parameters
    ----------
    recons, originals : ndarray, (N, H, W)
        Row ``i`` of ``recons`` was made from row ``i`` of ``originals``.
    k : int or sequence of int
        Ranks to report (each >= 1; values above N are clipped to N).
    metric : {"ssim", "corr"}
        Similarity: :func:`ssim` settings (O(N^2) SSIM evaluations) or Pearson correlation
        of pixels (fast).

    Returns
    -------
    dict of int to float
        ``{k: accuracy}``, accuracy in [0, 1]; chance level is ``k / N``.

    Notes
    -----
    Ties are broken against the true original (it must be strictly more similar than all
    but ``k - 1`` others), so a constant reconstruction scores 0, not 1.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((10, 16, 16))
    >>> reidentification_topk(x, x, k=(1, 5), metric="corr")
    {1: 1.0, 5: 1.0}
    """
    r, o = _check_pair(recons, originals)
    if metric not in ("ssim", "corr"):
        raise ValueError(f"metric must be 'ssim' or 'corr', got {metric!r}")
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not ks or min(ks) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = len(r)
    if metric == "corr":
        rf, of = r.reshape(n, -1), o.reshape(n, -1)
        rf = rf - rf.mean(axis=1, keepdims=True)
        of = of - of.mean(axis=1, keepdims=True)
        rn, on = np.linalg.norm(rf, axis=1), np.linalg.norm(of, axis=1)
        sim = (rf @ of.T) / np.maximum(np.outer(rn, on), 1e-12)
    else:
        sim = np.array([[structural_similarity(ri, oj, **_SSIM_KW) for oj in o] for ri in r])
    true = np.diag(sim)
    rank = (sim >= true[:, None]).sum(axis=1)  # 1 = strictly the best; ties count against
    return {int(kk): float(np.mean(rank <= kk)) for kk in ks}
