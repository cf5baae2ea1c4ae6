"""3-D coronary centreline trees (LCA, RCA) with tapered radii, stenosis and catheter.

The heart is modelled as a half-ellipsoid (the ventricles): its base plane holds the
atrio-ventricular (AV) groove, its long axis points from the base to the apex (patient's
left, down and anterior). Epicardial vessels run on its surface and are defined in surface
coordinates ``(h, theta)``: ``h`` (mm) along the long axis from the base, ``theta`` (rad)
around it, with ``theta = 0`` anterior (the anterior interventricular groove, LAD),
``theta = +pi/2`` left-lateral (LCx side), ``theta = -pi/2`` right (acute margin, RCA) and
``theta = +-pi`` posterior (posterior interventricular groove, PDA).

World frame (mm): ``x`` towards the patient's left, ``y`` towards the feet, ``z`` anterior.
The base centre of the ventricles is the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import make_interp_spline

__all__ = ["Vessel", "Stenosis", "Tree", "build_tree", "sample_tree"]

LABELS = ("LCA", "RCA")


@dataclass(frozen=True)
class Vessel:
    """One vessel centreline.

    Attributes
    ----------
    name : str
        ``LM``, ``LAD``, ``LCx``, ``D1``.., ``OM1``.., ``RCA``, ``AM1``.., ``PDA``, ``PL`` or
        ``catheter``.
    points : ndarray, float64 (K, 3)
        Centreline in world mm.
    radii : ndarray, float64 (K,)
        Lumen radius in mm at each point (after any stenosis).
    major : bool
        A main vessel (LM, LAD, LCx, RCA) on which a stenosis may be placed.
    """

    name: str
    points: np.ndarray
    radii: np.ndarray
    major: bool = False


@dataclass(frozen=True)
class Stenosis:
    """A local narrowing: ``severity`` is the diameter reduction (0.5-0.9) at ``position``."""

    vessel: str
    position_mm: float
    length_mm: float
    severity: float


@dataclass(frozen=True)
class Tree:
    """A patient's coronary tree (one side), its catheter and the heart frame for motion."""

    label: str
    vessels: tuple[Vessel, ...]
    catheter: Vessel
    centre: np.ndarray  # (3,) heart centre (mm), the fixed point of cardiac contraction
    axis: np.ndarray  # (3,) unit long axis (base -> apex)
    stenosis: Stenosis | None


@dataclass(frozen=True)
class _Heart:
    L: float  # base-to-apex length (mm)
    R: float  # radius at the base (mm)
    a: np.ndarray  # long axis
    e1: np.ndarray  # anterior
    e2: np.ndarray  # left-lateral

    def surface(self, h: np.ndarray, theta: np.ndarray, lift: float = 1.5) -> np.ndarray:
        """Epicardial point at surface coordinates (h mm, theta rad), ``lift`` mm outside."""
        h = np.asarray(h, float)
        theta = np.asarray(theta, float)
        frac = np.clip(h / self.L, 0.0, 0.985)
        r = self.R * np.sqrt(1.0 - frac**2) + lift
        ring = np.cos(theta)[:, None] * self.e1 + np.sin(theta)[:, None] * self.e2
        return h[:, None] * self.a + r[:, None] * ring


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _heart(rng: np.random.Generator) -> _Heart:
    a = _unit(np.array([0.55, 0.45, 0.60]) + rng.normal(0.0, 0.08, 3))
    z = np.array([0.0, 0.0, 1.0])
    e1 = _unit(z - (z @ a) * a)
    x = np.array([1.0, 0.0, 0.0])
    e2 = _unit(x - (x @ a) * a - (x @ e1) * e1)
    return _Heart(L=rng.uniform(58.0, 72.0), R=rng.uniform(38.0, 47.0), a=a, e1=e1, e2=e2)


def _wiggle(t: np.ndarray, rng: np.random.Generator, amp: float, modes: int = 3) -> np.ndarray:
    """Smooth random perturbation, zero at t = 0 (branches stay attached to their parent)."""
    out = np.zeros_like(t)
    for k in range(modes):
        f = rng.uniform(0.7, 3.5)
        out += amp * rng.normal() / (k + 1) * np.sin(np.pi * f * t)
    return out


def _taper(t: np.ndarray, r0: float, r1: float) -> np.ndarray:
    return r0 + (r1 - r0) * t**0.8


_K = 64  # parameter samples per vessel before arc-length resampling


def _line(p0: np.ndarray, p1: np.ndarray, rng: np.random.Generator, bow: float) -> np.ndarray:
    """A gently bowed 3-D segment from p0 to p1."""
    t = np.linspace(0.0, 1.0, _K // 2)
    d = p1 - p0
    side = _unit(np.cross(d, rng.normal(size=3)))
    return p0 + t[:, None] * d + (bow * np.sin(np.pi * t))[:, None] * side


def _lca(hrt: _Heart, rng: np.random.Generator, ostium: np.ndarray, s: float) -> list[Vessel]:
    t = np.linspace(0.0, 1.0, _K)
    hB, thB = rng.uniform(2.0, 7.0), rng.uniform(0.9, 1.2)
    B = hrt.surface(np.array([hB]), np.array([thB]))[0]
    lm_r = rng.uniform(1.6, 2.0) * s
    out = [Vessel("LM", _line(ostium, B, rng, rng.uniform(-2, 2)), np.full(_K // 2, lm_r), major=True)]
    # LAD: quickly to the anterior groove, then down to (and around) the apex
    h_lad = hB + (rng.uniform(0.88, 0.97) * hrt.L - hB) * t + _wiggle(t, rng, 2.0)
    th_lad = thB * np.exp(-t / rng.uniform(0.1, 0.18)) + rng.uniform(-0.15, 0.15) * t + _wiggle(t, rng, 0.06)
    r_lad = _taper(t, 0.9 * lm_r, rng.uniform(0.45, 0.65) * s)
    out.append(Vessel("LAD", hrt.surface(h_lad, th_lad), r_lad, major=True))
    # LCx: in the left AV groove towards the posterior side
    th_end = rng.uniform(2.4, 3.0)
    h_cx = hB + rng.uniform(0.0, 8.0) * t + _wiggle(t, rng, 2.0)
    th_cx = thB + (th_end - thB) * t + _wiggle(t, rng, 0.05)
    r_cx = _taper(t, 0.78 * lm_r, rng.uniform(0.55, 0.8) * s)
    out.append(Vessel("LCx", hrt.surface(h_cx, th_cx), r_cx, major=True))
    # diagonals from the LAD towards the lateral wall
    for i, t0 in enumerate(np.sort(rng.uniform(0.12, 0.6, rng.integers(2, 4)))):
        j = int(t0 * (_K - 1))
        dh, dth = rng.uniform(22.0, 42.0), rng.uniform(0.6, 1.15)
        h = h_lad[j] + dh * t + _wiggle(t, rng, 2.0)
        th = th_lad[j] + dth * t**0.8 + _wiggle(t, rng, 0.05)
        out.append(Vessel(f"D{i + 1}", hrt.surface(h, th), _taper(t, 0.62 * r_lad[j], 0.4 * s)))
    # obtuse marginals from the LCx down towards the apex
    for i, t0 in enumerate(np.sort(rng.uniform(0.25, 0.85, rng.integers(1, 4)))):
        j = int(t0 * (_K - 1))
        h = h_cx[j] + (rng.uniform(0.45, 0.8) * hrt.L - h_cx[j]) * t + _wiggle(t, rng, 2.0)
        th = th_cx[j] + rng.uniform(-0.35, 0.1) * t + _wiggle(t, rng, 0.06)
        out.append(Vessel(f"OM{i + 1}", hrt.surface(h, th), _taper(t, 0.68 * r_cx[j], 0.42 * s)))
    return out


def _rca(hrt: _Heart, rng: np.random.Generator, ostium: np.ndarray, s: float) -> list[Vessel]:
    t = np.linspace(0.0, 1.0, _K)
    h0, th0 = rng.uniform(0.0, 5.0), rng.uniform(-0.6, -0.35)
    th_crux = -np.pi + rng.uniform(0.05, 0.4)
    G0 = hrt.surface(np.array([h0]), np.array([th0]))[0]
    prox = _line(ostium, G0, rng, rng.uniform(-3, 3))
    # C-shaped course in the right AV groove, around the acute margin to the crux
    h_r = h0 + rng.uniform(-2.0, 8.0) * t + _wiggle(t, rng, 2.5)
    th_r = th0 + (th_crux - th0) * t + _wiggle(t, rng, 0.05)
    r0 = rng.uniform(1.8, 2.2) * s
    r_groove = _taper(t, r0, rng.uniform(1.05, 1.35) * s)
    pts = np.vstack([prox[:-1], hrt.surface(h_r, th_r)])
    rad = np.concatenate([np.full(len(prox) - 1, r0), r_groove])
    out = [Vessel("RCA", pts, rad, major=True)]
    # PDA: from the crux down the posterior interventricular groove
    h = h_r[-1] + (rng.uniform(0.55, 0.85) * hrt.L - h_r[-1]) * t + _wiggle(t, rng, 2.0)
    th = th_r[-1] + rng.uniform(-0.25, 0.05) * t + _wiggle(t, rng, 0.05)
    out.append(Vessel("PDA", hrt.surface(h, th), _taper(t, 0.75 * r_groove[-1], 0.42 * s)))
    # postero-lateral branch: continues in the AV groove beyond the crux
    if rng.random() < 0.7:
        h = h_r[-1] + rng.uniform(2.0, 12.0) * t + _wiggle(t, rng, 1.5)
        th = th_r[-1] - rng.uniform(0.35, 0.7) * t + _wiggle(t, rng, 0.04)
        out.append(Vessel("PL", hrt.surface(h, th), _taper(t, 0.7 * r_groove[-1], 0.45 * s)))
    # acute marginals from the mid RCA over the right ventricle towards the apex
    for i, t0 in enumerate(np.sort(rng.uniform(0.25, 0.7, rng.integers(1, 4)))):
        j = int(t0 * (_K - 1))
        h = h_r[j] + (rng.uniform(0.35, 0.65) * hrt.L - h_r[j]) * t + _wiggle(t, rng, 2.0)
        th = th_r[j] + rng.uniform(-0.1, 0.35) * t + _wiggle(t, rng, 0.06)
        out.append(Vessel(f"AM{i + 1}", hrt.surface(h, th), _taper(t, 0.55 * r_groove[j], 0.38 * s)))
    return out


def _arclength(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _stenose(v: Vessel, rng: np.random.Generator) -> tuple[Vessel, Stenosis]:
    s = _arclength(v.points)
    pos = rng.uniform(0.12, 0.55) * s[-1]
    length = rng.uniform(4.0, 10.0)
    sev = rng.uniform(0.5, 0.9)
    x = np.clip((s - pos) / (length / 2.0), -1.0, 1.0)
    narrowing = 1.0 - sev * 0.5 * (1.0 + np.cos(np.pi * x))
    return Vessel(v.name, v.points, v.radii * narrowing, v.major), Stenosis(v.name, float(pos), length, sev)


def _catheter(ostium: np.ndarray, aorta: np.ndarray, rng: np.random.Generator) -> Vessel:
    """Judkins-like catheter: ostium -> aortic root -> ascending aorta -> arch -> descending aorta."""
    j = lambda sd: rng.normal(0.0, sd, 3)  # noqa: E731
    ctrl = np.array(
        [
            ostium,
            aorta + j(2),
            aorta + np.array([-12.0, -45.0, -5.0]) + j(5),
            aorta + np.array([-8.0, -85.0, -20.0]) + j(6),
            aorta + np.array([12.0, -100.0, -45.0]) + j(6),
            aorta + np.array([30.0, -70.0, -65.0]) + j(6),
            aorta + np.array([35.0, 20.0, -70.0]) + j(6),
            aorta + np.array([38.0, 180.0, -70.0]) + j(6),
        ]
    )
    u = _arclength(ctrl)
    spl = make_interp_spline(u, ctrl, k=3)
    pts = spl(np.linspace(0.0, u[-1], 160))
    return Vessel("catheter", pts, np.full(len(pts), rng.uniform(0.85, 1.05)))


def build_tree(label: str, rng: np.random.Generator, *, stenosis: bool) -> Tree:
    """Draw one patient's coronary tree.

    Parameters
    ----------
    label : {"LCA", "RCA"}
        Left coronary artery (LM -> LAD with diagonals, LCx with obtuse marginals) or right
        coronary artery (C-shaped course, acute marginals, PDA, optional postero-lateral).
    rng : numpy.random.Generator
        Experiment randomness (lengths, curvature, radii, heart shape).
    stenosis : bool
        Put one 50-90 % diameter narrowing on a random major segment.

    Returns
    -------
    Tree
        Centrelines in world mm with radii in mm.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    hrt = _heart(rng)
    s = rng.uniform(0.85, 1.15)  # patient calibre
    aorta = -rng.uniform(2.0, 7.0) * hrt.a + rng.uniform(20.0, 26.0) * hrt.e1
    if label == "LCA":  # left sinus: leftward and a little posterior, so the LM is 10-25 mm long
        phi = rng.uniform(1.2, 1.5)
        ostium = aorta + 13.0 * (np.cos(phi) * hrt.e1 + np.sin(phi) * hrt.e2) + rng.uniform(5.0, 9.0) * hrt.e2
    else:
        phi = rng.uniform(-0.75, -0.45)
        ostium = aorta + 13.0 * (np.cos(phi) * hrt.e1 + np.sin(phi) * hrt.e2)
    vessels = (_lca if label == "LCA" else _rca)(hrt, rng, ostium, s)
    sten = None
    if stenosis:
        majors = [i for i, v in enumerate(vessels) if v.major]
        weights = np.array([0.3 if vessels[i].name == "LM" else 1.0 for i in majors])
        k = majors[rng.choice(len(majors), p=weights / weights.sum())]
        vessels[k], sten = _stenose(vessels[k], rng)
    cath = _catheter(ostium, aorta, rng)
    centre = 0.45 * hrt.L * hrt.a
    return Tree(label, tuple(vessels), cath, centre, hrt.a, sten)


def sample_tree(tree: Tree, *, step_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Resample every centreline at a fixed arc-length step for rendering.

    Returns
    -------
    points : ndarray (S, 3)
        Sample centres (mm).
    radii : ndarray (S,)
        Lumen radius at each sample (mm).
    ds : ndarray (S,)
        3-D arc length each sample stands for (mm).
    is_catheter : ndarray of bool (S,)
        Samples of the catheter (rendered, but not part of the vessel mask).
    """
    pts, rad, ds, cat = [], [], [], []
    for v in (*tree.vessels, tree.catheter):
        s = _arclength(v.points)
        n = max(2, int(np.ceil(s[-1] / step_mm)) + 1)
        q = np.linspace(0.0, s[-1], n)
        pts.append(np.stack([np.interp(q, s, v.points[:, d]) for d in range(3)], axis=1))
        rad.append(np.interp(q, s, v.radii))
        w = np.full(n, s[-1] / (n - 1))
        w[0] = w[-1] = w[0] / 2.0
        ds.append(w)
        cat.append(np.full(n, v.name == "catheter"))
    return np.vstack(pts), np.concatenate(rad), np.concatenate(ds), np.concatenate(cat)
