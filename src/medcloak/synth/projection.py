"""C-arm geometry: view angles, cardiac motion, and perspective projection to the detector.

World frame (mm): ``x`` to the patient's left, ``y`` to the feet, ``z`` anterior. A view is
a left/right anterior oblique angle (LAO > 0, RAO < 0, rotation about the body's long axis)
and a cranial/caudal angle (CRA > 0, CAU < 0). The image's ``u`` axis points to the
patient's left in the AP view, ``v`` to the feet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["View", "draw_view", "rotation", "cardiac_motion", "Camera", "project"]

# Standard angiographic views (primary, secondary) in degrees, per side.
_STANDARD_VIEWS = {
    "LCA": ((-30.0, -25.0), (-30.0, 30.0), (0.0, 35.0), (45.0, 25.0), (50.0, -30.0), (0.0, -30.0)),
    "RCA": ((30.0, 0.0), (40.0, 15.0), (-30.0, 0.0), (0.0, 25.0), (50.0, -10.0)),
}


@dataclass(frozen=True)
class View:
    """C-arm angulation in degrees: ``lao`` (LAO > 0, RAO < 0) and ``cra`` (CRA > 0, CAU < 0)."""

    lao: float
    cra: float

    def __str__(self) -> str:
        p = f"LAO{self.lao:.1f}" if self.lao >= 0 else f"RAO{-self.lao:.1f}"
        s = f"CRA{self.cra:.1f}" if self.cra >= 0 else f"CAU{-self.cra:.1f}"
        return f"{p}/{s}"


def draw_view(label: str, rng: np.random.Generator) -> View:
    """A standard view for ``label`` (LCA/RCA) with +-8 degree jitter."""
    views = _STANDARD_VIEWS[label]
    lao, cra = views[rng.integers(len(views))]
    return View(lao + rng.uniform(-8.0, 8.0), cra + rng.uniform(-8.0, 8.0))


def rotation(view: View) -> np.ndarray:
    """3x3 matrix taking world coordinates to camera coordinates (x = u, y = v, z = to detector)."""
    a, b = np.deg2rad(view.lao), np.deg2rad(view.cra)
    r_lao = np.array([[np.cos(a), 0.0, -np.sin(a)], [0.0, 1.0, 0.0], [np.sin(a), 0.0, np.cos(a)]])
    r_cra = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), np.sin(b)], [0.0, -np.sin(b), np.cos(b)]])
    return r_cra @ r_lao


def cardiac_motion(
    points: np.ndarray, *, phase: float, centre: np.ndarray, axis: np.ndarray, amplitude: float, shift: np.ndarray
) -> np.ndarray:
    """Move a tree over the heart cycle: contraction towards ``centre``, twist, translation.

    Parameters
    ----------
    points : ndarray (S, 3)
        World mm.
    phase : float
        Cardiac phase in radians (0 = end-diastole, pi = end-systole).
    centre, axis : ndarray (3,)
        Fixed point of the contraction and the heart's long axis (unit).
    amplitude : float
        Fractional shrink at end-systole (e.g. 0.08).
    shift : ndarray (3,)
        Translation (mm) at end-systole, plus any breathing offset the caller adds.
    """
    c = 0.5 * (1.0 - np.cos(phase))  # 0 .. 1 .. 0 over the cycle
    scale = 1.0 - amplitude * c
    twist = np.deg2rad(6.0) * c
    k = axis
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rot = np.eye(3) + np.sin(twist) * kx + (1.0 - np.cos(twist)) * kx @ kx  # Rodrigues
    return (points - centre) @ rot.T * scale + centre + c * shift


@dataclass(frozen=True)
class Camera:
    """Perspective C-arm: source-object distance ``sod`` and ``pixel_mm`` at the isocentre.

    ``iso`` is the world point at the isocentre, imaged at pixel ``(u0, v0)``.
    """

    rot: np.ndarray
    iso: np.ndarray
    sod: float
    pixel_mm: float
    u0: float
    v0: float


def project(points: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Project world points to pixel coordinates.

    Returns
    -------
    uv : ndarray (S, 2)
        Pixel coordinates (column, row); pixel centres are at integers.
    mag : ndarray (S,)
        Pixels per mm at each point's depth (perspective magnification / pixel size).
    """
    pc = (points - cam.iso) @ cam.rot.T
    m = cam.sod / (cam.sod + pc[:, 2]) / cam.pixel_mm
    uv = np.stack([pc[:, 0] * m + cam.u0, pc[:, 1] * m + cam.v0], axis=1)
    return uv, m
