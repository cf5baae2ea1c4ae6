"""X-ray-like backgrounds as attenuation maps (line integrals, dimensionless ``mu * length``).

Two sources, mixed per patient:

- crops of real radiographs shipped with ``pydicom-data`` (``RG1_UNCR.dcm``, a human chest CR)
  and ``deid-data`` (``animals/cat.dcm``, a feline thorax DX), decoded once with pydicom and
  cached in memory, restricted to hand-picked thoracic windows (no collimator edges, markers
  or air outside the body);
- synthetic anatomy: heart shadow, spine with vertebral bodies, ribs with cortical edges,
  a diaphragm dome and lung texture.

When neither data package is installed, ``backgrounds="auto"`` falls back to synthetic anatomy.
A folder named by ``$MEDCLOAK_BACKGROUND_DIR`` holding ``RG1_UNCR.dcm`` and/or ``cat.dcm`` is used
first (how the benchmarks run on a machine where the data packages cannot be installed).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import expit

from medcloak.errors import MedcloakError

__all__ = ["BACKGROUND_MODES", "make_background"]

BACKGROUND_MODES = ("auto", "real", "synthetic")


@dataclass(frozen=True)
class _Source:
    name: str
    locate: str  # "pydicom-data:<file>" or "deid-data:<relative path>"
    rows: tuple[float, float]  # allowed crop-centre window, fractions of the image
    cols: tuple[float, float]
    side: tuple[float, float]  # crop side, fraction of the shorter image side


_SOURCES = (
    _Source("chest-CR", "pydicom-data:RG1_UNCR.dcm", (0.40, 0.66), (0.32, 0.68), (0.30, 0.45)),
    _Source("cat-thorax-DX", "deid-data:animals/cat.dcm", (0.42, 0.52), (0.30, 0.42), (0.22, 0.28)),
)
_WORK_SIDE = 640  # cached images are block-averaged to about this many pixels on the long side


def _locate(spec: str) -> Path | None:
    """The source radiograph's file: ``$MEDCLOAK_BACKGROUND_DIR/<file name>`` when that folder
    holds it (for machines without the data packages), else the installed data package's copy."""
    pkg, rel = spec.split(":", 1)
    folder = os.environ.get("MEDCLOAK_BACKGROUND_DIR")
    if folder and (Path(folder) / Path(rel).name).is_file():
        return Path(folder) / Path(rel).name
    if pkg == "pydicom-data":
        try:
            from pydicom.data import get_testdata_file

            p = get_testdata_file(rel, download=False)  # never the plural: it may hang
        except Exception:  # pragma: no cover - pydicom-data missing or broken
            return None
        return Path(p) if p else None
    spec_ = importlib.util.find_spec("deid_data")
    if spec_ is None or spec_.origin is None:
        return None
    p = Path(spec_.origin).parent / "data" / rel
    return p if p.is_file() else None


@functools.lru_cache(maxsize=None)
def _load(spec: str) -> np.ndarray | None:
    """Decode once; return a float32 'density' image in [0, 1] (bright = attenuating), or None."""
    path = _locate(spec)
    if path is None:
        return None
    try:
        import pydicom

        ds = pydicom.dcmread(path)
        arr = ds.pixel_array.astype(np.float32)
    except Exception:  # pragma: no cover - a broken data package: fall back to synthetic
        return None
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = arr.max() - arr
    f = max(1, int(np.ceil(max(arr.shape) / _WORK_SIDE)))
    h, w = (arr.shape[0] // f) * f, (arr.shape[1] // f) * f
    arr = arr[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    lo, hi = np.percentile(arr[arr.shape[0] // 4 : -arr.shape[0] // 4, arr.shape[1] // 6 : -arr.shape[1] // 6], [1, 99.5])
    return np.clip((arr - lo) / max(hi - lo, 1e-6), 0.0, 1.2).astype(np.float32)


def _real_crop(rng: np.random.Generator, side: int) -> tuple[np.ndarray, str] | None:
    avail = [s for s in _SOURCES if _load(s.locate) is not None]
    if not avail:
        return None
    src = avail[rng.integers(len(avail))]
    img = _load(src.locate)
    H, W = img.shape
    cr, cc = rng.uniform(*src.rows) * H, rng.uniform(*src.cols) * W
    crop = rng.uniform(*src.side) * min(H, W)
    ang = np.deg2rad(rng.uniform(-12.0, 12.0))
    flip = -1.0 if rng.random() < 0.5 else 1.0
    g = (np.arange(side) - (side - 1) / 2.0) * (crop / side)
    yy, xx = np.meshgrid(g, g * flip, indexing="ij")
    r = cr + np.cos(ang) * yy - np.sin(ang) * xx
    c = cc + np.sin(ang) * yy + np.cos(ang) * xx
    return ndimage.map_coordinates(img, [r, c], order=1, mode="reflect").astype(np.float32), src.name


def _smooth_noise(rng: np.random.Generator, side: int, sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal((side, side)), sigma, mode="wrap")
    return n / (n.std() + 1e-9)


def _synthetic(rng: np.random.Generator, side: int, tree_uv: tuple[float, float]) -> np.ndarray:
    """Synthetic chest anatomy in density units (about 0 = lung, 1 = dense bone)."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    sig = lambda d, w: expit(d / w)  # noqa: E731
    a = np.full((side, side), 0.25, np.float32)
    # heart shadow: a soft ellipse around the vessel tree
    cu, cv = tree_uv
    ax, ay = rng.uniform(0.3, 0.45), rng.uniform(0.28, 0.4)
    e = np.sqrt(((x - cu) / ax) ** 2 + ((y - cv) / ay) ** 2)
    a += rng.uniform(0.2, 0.35) * sig(1.0 - e, 0.08)
    # spine: a slightly tilted band with vertebral bodies and disc spaces
    xs, tilt, half = rng.uniform(0.05, 0.95), rng.uniform(-0.15, 0.15), rng.uniform(0.07, 0.11)
    d = np.abs(x - (xs + tilt * (y - 0.5)))
    period, ph = rng.uniform(0.14, 0.2), rng.uniform(0, 1)
    vert = 0.75 + 0.25 * np.sqrt(np.clip(np.cos(np.pi * ((y / period + ph) % 1.0 - 0.5)), 0.0, 1.0))
    a += rng.uniform(0.22, 0.36) * sig(half - d, 0.025) * vert
    # ribs: curved bands (bright cortical edges) sloping down laterally
    for _ in range(rng.integers(4, 8)):
        y0, k = rng.uniform(-0.1, 1.0), rng.uniform(0.4, 1.2)
        x0, sl = rng.uniform(0.0, 1.0), rng.uniform(-0.3, 0.3)
        w = rng.uniform(0.022, 0.035)
        dist = np.abs(y - (y0 + k * (x - x0) ** 2 + sl * (x - x0))) / w
        band = np.where(dist < 1.0, 0.6 + 0.4 * dist**4, 0.0) * sig(0.55 - np.abs(x - x0), 0.05)
        a += rng.uniform(0.08, 0.16) * band
    # diaphragm dome (liver/soft tissue below)
    if rng.random() < 0.6:
        yd = rng.uniform(0.65, 1.05) + rng.uniform(0.4, 1.0) * (x - rng.uniform(0.2, 0.8)) ** 2
        a += rng.uniform(0.3, 0.5) * sig(y - yd, 0.015)
    # lung markings
    a += 0.03 * _smooth_noise(rng, side, side / 40.0) + 0.015 * _smooth_noise(rng, side, side / 110.0)
    return a


def make_background(rng: np.random.Generator, side: int, *, mode: str, tree_uv: tuple[float, float]) -> tuple[np.ndarray, str]:
    """Attenuation map (float32, ``side`` x ``side``) of the patient's chest, and its source name.

    Parameters
    ----------
    rng : numpy.random.Generator
        Experiment randomness.
    side : int
        Output side in pixels (the frame plus a margin for breathing shifts).
    mode : {"auto", "real", "synthetic"}
        ``auto``: a real crop (blended with a little synthetic anatomy) for about 70 % of
        patients when the data packages are installed, synthetic otherwise; ``real``: always a
        real crop (error if none is installed); ``synthetic``: never.
    tree_uv : (float, float)
        Where the vessel tree sits, in fractions of the side (centres the heart shadow).

    Returns
    -------
    att : ndarray float32
        Dimensionless attenuation line integral (``I = I0 * exp(-att)``), about 0.3-2.5.
    source : str
        ``"synthetic"`` or the name of the real radiograph used.
    """
    if mode not in BACKGROUND_MODES:
        raise MedcloakError(f"backgrounds must be one of {', '.join(BACKGROUND_MODES)}, got {mode!r}")
    synth = _synthetic(rng, side, tree_uv)
    use_real = mode == "real" or (mode == "auto" and rng.random() < 0.7)
    got = _real_crop(rng, side) if use_real and mode != "synthetic" else None
    if got is None and mode == "real":
        raise MedcloakError("backgrounds='real' needs pydicom-data or deid-data installed (pip install medcloak[data])")
    if got is None:
        dens, source = synth, "synthetic"
    else:
        crop, source = got
        w = rng.uniform(0.15, 0.3)
        dens = (1.0 - w) * crop + w * (synth - 0.25)
    gain = rng.uniform(1.1, 1.6)
    return (0.35 + gain * dens).astype(np.float32), source
