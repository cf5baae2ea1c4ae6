"""Halve a grey frame (512 -> 256 px) with the same float32 bits as medcloak's resizer, faster.

:func:`medcloak.io.arrays.resize` gives ``skimage.transform.resize``'s numbers (models are fitted
on frames resized by it), computed by two SciPy calls: a Gaussian pre-filter
(``ndimage.gaussian_filter``, ``sigma = 0.5`` for a factor of 2, radius 2, ``mode="mirror"``)
and a bilinear ``ndimage.zoom(order=1, grid_mode=True)``. For an exact factor of 2 both reduce
to a few array operations whose rounding can be copied step by step:

* each Gaussian pass (axis 0, then axis 1) sums in float64 in SciPy's order for a symmetric
  kernel, ``x*w0 + (x[-2] + x[+2])*w2 + (x[-1] + x[+1])*w1``, and rounds to float32 between
  the passes and at the end (SciPy's output array is the input's dtype);
* the zoom samples the filtered frame at ``2k + 0.5``: weights 0.5 and 0.5 on each axis, summed
  in float64 over the 2x2 block in the order ``(0,0), (0,1), (1,0), (1,1)`` and rounded to float32.

Done in blocks of :data:`BLOCK` output rows (the float64 scratch stays in the CPU cache), this
took 1.8 ms for a 512 px frame where the two SciPy calls took 3.6-4.7 ms (2-core benchmark
machine, one thread). :func:`halve` checks itself once per process against the SciPy calls on a
small random frame and falls back to them if a SciPy version ever computes otherwise;
``tests/test_io_resize.py`` holds the equality to skimage bit for bit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK", "can_halve", "halve"]

BLOCK = 16  #: output rows per block (32 input rows of float64 scratch: ~130 kB at 512 px)
_STATE: dict[str, bool] = {}


def _weights() -> tuple[float, float, float]:
    """SciPy's ``_gaussian_kernel1d(0.5, 0, 2)``: ``exp(-0.5 / sigma**2 * x**2)`` normalised."""
    x = np.arange(-2, 3)
    phi = np.exp(-0.5 / (0.5 * 0.5) * x**2)
    phi = phi / phi.sum()
    return float(phi[2]), float(phi[3]), float(phi[4])


_W0, _W1, _W2 = _weights()


def can_halve(shape: tuple[int, ...], size: tuple[int, int]) -> bool:
    """True when ``size`` is exactly half of a 2-D ``shape`` (both sides even, at least 8 px)."""
    return (len(shape) == 2 and shape[0] % 2 == 0 and shape[1] % 2 == 0 and min(shape) >= 8
            and size == (shape[0] // 2, shape[1] // 2))


def _scipy(image: np.ndarray) -> np.ndarray:
    """The reference: the two SciPy calls of :func:`medcloak.io.arrays.resize` (before its clip)."""
    from scipy import ndimage as ndi

    filtered = ndi.gaussian_filter(image, 0.5, cval=0.0, mode="mirror")
    return ndi.zoom(filtered, 0.5, order=1, mode="mirror", cval=0.0, grid_mode=True)


def _halve(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    padded = np.empty((h + 4, w), np.float64)  # rows mirrored (d c b | a b c d | c b a)
    padded[2:-2] = image
    padded[:2] = image[2:0:-1]
    padded[-2:] = image[-2:-4:-1]
    out = np.empty((h // 2, w // 2), np.float32)
    rows = 2 * BLOCK
    acc, tmp = np.empty((rows, w), np.float64), np.empty((rows, w), np.float64)
    f32 = np.empty((rows, w), np.float32)
    cols = np.empty((rows, w + 4), np.float64)
    for o0 in range(0, h // 2, BLOCK):
        o1 = min(o0 + BLOCK, h // 2)
        n = 2 * (o1 - o0)
        a, t, f, c = acc[:n], tmp[:n], f32[:n], cols[:n]
        p = padded[2 * o0:2 * o0 + n + 4]
        np.multiply(p[2:-2], _W0, out=a)  # pass 1, along axis 0 (neighbours above and below)
        np.add(p[:-4], p[4:], out=t)
        t *= _W2
        a += t
        np.add(p[1:-3], p[3:-1], out=t)
        t *= _W1
        a += t
        np.copyto(f, a, casting="same_kind")  # float32, as SciPy's output array
        c[:, 2:-2] = f
        c[:, :2] = c[:, 4:2:-1]
        c[:, -2:] = c[:, -4:-6:-1]
        np.multiply(c[:, 2:-2], _W0, out=a)  # pass 2, along axis 1
        np.add(c[:, :-4], c[:, 4:], out=t)
        t *= _W2
        a += t
        np.add(c[:, 1:-3], c[:, 3:-1], out=t)
        t *= _W1
        a += t
        np.copyto(f, a, casting="same_kind")
        b = f.astype(np.float64)  # the zoom: mean of each 2x2 block, in SciPy's order
        s = b[0::2, 0::2] + b[0::2, 1::2]
        s += b[1::2, 0::2]
        s += b[1::2, 1::2]
        s *= 0.25
        out[o0:o1] = s
    return out


def _verified() -> bool:
    if "ok" not in _STATE:
        probe = np.random.default_rng(0).random((24, 20), dtype=np.float32)
        probe[3, 4] = 0.0
        _STATE["ok"] = _halve(probe).tobytes() == _scipy(probe).tobytes()
    return _STATE["ok"]


def halve(image: np.ndarray) -> np.ndarray:
    """Gaussian pre-filter + bilinear zoom to half size of a float32 (H, W) frame, before clipping:
    the bits of the two SciPy calls (see the module text); ``can_halve`` must hold."""
    image = np.asarray(image, dtype=np.float32)
    if not can_halve(image.shape, (image.shape[0] // 2, image.shape[1] // 2)):
        raise ValueError(f"halve needs a 2-D frame with even sides of at least 8 px, got {image.shape}")
    return _halve(image) if _verified() else _scipy(image)
