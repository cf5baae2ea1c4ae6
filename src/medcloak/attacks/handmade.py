"""Hand-made "direct views" of obfuscated frames: the floor of threat T0.

T0 (``docs/threat-model.md``, "direct view") is what anyone looking at an obfuscated frame gets for free. Its
main measurement is a segmentation network trained on frames obfuscated under the attacker's own
keys; the hand-made views here are reported beside it as a *floor* (they under-measure what a
person sees). Every view is a scikit-image filter -- nothing is fitted, no key or pair is used.

Views (per frame, each scaled to [0, 1] by dividing by the frame's maximum response):

``"frangi"``
    Frangi vesselness of the obfuscated frame itself. The map scrambles the polarity, so both
    ridge polarities are filtered and the larger response is kept per pixel.
``"frangi_std"``
    Frangi (bright ridges) of the 3x3 local standard deviation: a keyed map turns the smooth
    background into patches of few levels while vessel walls cross many levels, so vessels can
    stand out as tubes of high local variance.
``"frangi_sobel"``
    Frangi (bright ridges) of the Sobel gradient magnitude: the same idea with edges.

Masks: each view is thresholded per frame at Otsu's threshold (:func:`skimage.filters.threshold_otsu`)
(:func:`medcloak.metrics.vessel_map` uses fixed log-contrast levels instead, which mean nothing on an
obfuscated frame's arbitrary grey values); a view with no response gives an empty mask.
Score them with :func:`medcloak.metrics.vessel_dice` against the generator's masks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import frangi, sobel, threshold_otsu

__all__ = ["HANDMADE_SIGMAS", "VIEW_NAMES", "handmade_views", "handmade_vessel_masks"]

#: Frangi scales in pixels (vessels about 2-8 px wide at 128 px).
HANDMADE_SIGMAS = (1.0, 2.0, 3.0)
#: The names of the views, in the order they are returned.
VIEW_NAMES = ("frangi", "frangi_std", "frangi_sobel")


def _as_stack(images: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 2:
        return arr[None], True
    if arr.ndim != 3:
        raise ValueError(f"obfuscated must have shape (H, W) or (N, H, W), got {arr.shape}")
    return arr, False


def _unit(r: np.ndarray) -> np.ndarray:
    r = np.where(np.isfinite(r), r, 0.0)
    r = np.clip(r, 0.0, None)
    top = r.max()
    return (r / top if top > 1e-12 else np.zeros_like(r)).astype(np.float32)


def _local_std(f: np.ndarray) -> np.ndarray:
    mean = ndi.uniform_filter(f, size=3, mode="reflect")
    sq = ndi.uniform_filter(f * f, size=3, mode="reflect")
    return np.sqrt(np.clip(sq - mean * mean, 0.0, None))


def handmade_views(obfuscated: np.ndarray) -> dict[str, np.ndarray]:
    """Hand-made vessel views of obfuscated frames (T0 floor).

    Parameters
    ----------
    obfuscated : ndarray, (N, H, W) or (H, W), values in [0, 1]
        Obfuscated frames. Not modified.

    Returns
    -------
    dict of str -> ndarray of float32 in [0, 1], shape of ``obfuscated``
        Keys :data:`VIEW_NAMES`; see the module docstring for what each view is. Frangi is
        :func:`skimage.filters.frangi` with ``sigmas=HANDMADE_SIGMAS`` and reflect mode; each
        view is divided by its per-frame maximum (an all-zero response stays zero).

    Examples
    --------
    >>> x = np.full((32, 32), 0.8, np.float32); x[14:17, 4:28] = 0.3
    >>> v = handmade_views(x)
    >>> sorted(v), v["frangi"].shape, bool(v["frangi"][15, 16] > v["frangi"][4, 16])
    (['frangi', 'frangi_sobel', 'frangi_std'], (32, 32), True)
    """
    stack, single = _as_stack(obfuscated)
    out = {name: np.zeros(stack.shape, np.float32) for name in VIEW_NAMES}
    kw = dict(sigmas=HANDMADE_SIGMAS, mode="reflect")
    for i, f in enumerate(stack):
        if f.max() - f.min() < 1e-12:
            continue  # a flat frame shows nothing
        dark = frangi(f, black_ridges=True, **kw)
        bright = frangi(f, black_ridges=False, **kw)
        out["frangi"][i] = _unit(np.maximum(dark, bright))
        out["frangi_std"][i] = _unit(frangi(_local_std(f), black_ridges=False, **kw))
        out["frangi_sobel"][i] = _unit(frangi(sobel(f), black_ridges=False, **kw))
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out


def handmade_vessel_masks(obfuscated: np.ndarray) -> dict[str, np.ndarray]:
    """Vessel masks from the hand-made views: per-frame Otsu threshold of each view.

    Parameters
    ----------
    obfuscated : ndarray, (N, H, W) or (H, W), values in [0, 1]

    Returns
    -------
    dict of str -> ndarray of bool, shape of ``obfuscated``
        Same keys as :func:`handmade_views`; True where the view exceeds Otsu's threshold of
        that frame's view. A frame whose view is constant gives an empty mask.
    """
    views = handmade_views(obfuscated)
    masks = {}
    for name, view in views.items():
        stack = view[None] if view.ndim == 2 else view
        m = np.zeros(stack.shape, dtype=bool)
        for i, r in enumerate(stack):
            if r.max() - r.min() < 1e-6:
                continue
            m[i] = r > threshold_otsu(r)
        masks[name] = m[0] if view.ndim == 2 else m
    return masks
