"""Semi-synthetic X-ray coronary angiography sequences: :func:`generate` returns a :class:`~medcloak.io.frameset.FrameSet`."""

from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from medcloak.errors import MedcloakError
from medcloak.io.frameset import FrameSet
from medcloak.synth.background import BACKGROUND_MODES, make_background
from medcloak.synth.centerlines import build_tree, sample_tree
from medcloak.synth.projection import Camera, cardiac_motion, draw_view, project, rotation
from medcloak.synth.render import beer_lambert, detect, expected_signal, splat_tubes

__all__ = ["generate", "VISIBLE_CONTRAST"]

#: Least Beer-Lambert contrast ``1 - I / I_behind`` (fraction) of a lumen pixel in the noise-free
#: frame for it to count as visible vessel (``FrameSet.masks``). 3 % is about one standard
#: deviation of a pixel's quantum noise in the generated frames (log-intensity noise 0.028 at
#: 128 px, 0.034 at 64 px): a fainter pixel is lost in the noise of its frame.
VISIBLE_CONTRAST = 0.03


def _plan(n: int, fpp: int) -> list[tuple[str, int]]:
    """(label, n_frames) per patient: patients alternate LCA, RCA; frames split n - n//2 / n//2."""
    left = {"LCA": n - n // 2, "RCA": n // 2}
    plan = []
    while left["LCA"] > 0 or left["RCA"] > 0:
        label = "LCA" if len(plan) % 2 == 0 else "RCA"
        k = min(fpp, left[label])
        plan.append((label, k))
        left[label] -= k
    return plan


def _patient(
    index: int, label: str, n_frames: int, *, size: int, seed: int, backgrounds: str,
    visible_contrast: float = VISIBLE_CONTRAST,
) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    has_stenosis = bool(rng.random() < 0.5)
    tree = build_tree(label, rng, stenosis=has_stenosis)
    view = draw_view(label, rng)
    rot = rotation(view)
    # framing: field of view at the isocentre so that the tree fills most of the frame
    vessel_pts = np.vstack([v.points for v in tree.vessels])
    iso = vessel_pts.mean(axis=0)
    sod = rng.uniform(700.0, 800.0)
    uv_mm, _ = project(vessel_pts, Camera(rot, iso, sod, 1.0, 0.0, 0.0))
    lo, hi = uv_mm.min(axis=0), uv_mm.max(axis=0)
    fov = float(np.clip((hi - lo).max() * rng.uniform(1.12, 1.4), 90.0, 220.0))
    pix = fov / size
    centre_mm = (lo + hi) / 2.0
    jit = rng.uniform(-0.07, 0.07, 2) * size
    cam = Camera(rot, iso, sod, pix, (size - 1) / 2.0 - centre_mm[0] / pix + jit[0], (size - 1) / 2.0 - centre_mm[1] / pix + jit[1])
    # background with a margin for breathing shifts
    m = max(2, int(np.ceil(0.06 * size)))
    side = size + 2 * m
    tree_uv = ((size - 1) / 2.0 + jit[0] + m) / side, ((size - 1) / 2.0 + jit[1] + m) / side
    att_bg, _source = make_background(rng, side, mode=backgrounds, tree_uv=tree_uv)
    gain = rng.uniform(0.85, 0.95) / float(np.quantile(np.exp(-att_bg), 0.98))
    photons = rng.uniform(250.0, 700.0) * (128.0 / size) ** 2
    blur = max(0.3, rng.uniform(0.45, 0.8) * size / 128.0)
    mu = rng.uniform(0.14, 0.22)  # iodinated contrast, 1/mm
    mu_cath = mu * rng.uniform(0.55, 0.85)
    # motion over the sequence
    frames_per_beat = rng.uniform(9.0, 15.0)
    phase0 = rng.uniform(0.0, 2.0 * np.pi)
    amp = rng.uniform(0.06, 0.1)
    beat_shift = rng.normal(0.0, 2.0, 3)
    drift = np.array([rng.normal(0.0, 0.3), rng.normal(0.0, 0.5), 0.0])  # breathing, mm per frame
    pts, rad, ds, is_cath = sample_tree(tree, step_mm=0.45 * pix)
    groups = is_cath.astype(np.int64)
    out = {k: [] for k in ("frames", "clean", "masks", "masks_full", "contrast", "catheter")}
    for k in range(n_frames):
        breath = drift * k
        moved = cardiac_motion(
            pts, phase=phase0 + 2.0 * np.pi * k / frames_per_beat, centre=tree.centre, axis=tree.axis,
            amplitude=amp, shift=beat_shift,
        ) + breath
        uv, mag = project(moved, cam)
        lengths, inside = splat_tubes(
            uv, rad * mag, np.pi * rad**2 * ds * mag**2, groups, shape=(size, size), n_groups=2
        )
        dx, dy = np.clip(np.rint(breath[:2] / pix).astype(int), -m, m)
        bg = att_bg[m + dy : m + dy + size, m + dx : m + dx + size]
        trans = beer_lambert(bg, [lengths[0], lengths[1]], [mu * (1.0 + 0.03 * np.sin(k)), mu_cath])
        noisy, clean = detect(trans, gain=gain, photons=photons, blur_px=blur, rng=rng)
        # visible contrast of the vessels: the noise-free frame against the same frame rendered
        # without them (no random draw, so frames are the same as without this step)
        behind = expected_signal(beer_lambert(bg, [lengths[1]], [mu_cath]), gain=gain, blur_px=blur)
        with_v = expected_signal(trans, gain=gain, blur_px=blur)
        contrast = 1.0 - with_v / np.maximum(behind, 1e-12)
        out["frames"].append(noisy)
        out["clean"].append(clean)
        out["masks_full"].append(inside[0])
        out["masks"].append(inside[0] & (contrast >= visible_contrast))
        out["contrast"].append(contrast.astype(np.float32))
        out["catheter"].append(inside[1])
    out["view"] = str(view)
    out["stenosis"] = has_stenosis
    return out


def generate(
    n: int,
    *,
    size: int = 128,
    seed: int = 0,
    frames_per_patient: int = 8,
    backgrounds: str = "auto",
    visible_contrast: float = VISIBLE_CONTRAST,
    progress: bool = False,
) -> FrameSet:
    """Generate ``n`` semi-synthetic coronary angiography frames with vessel masks.

    Every synthetic patient has one view sequence (``frames_per_patient`` frames of one
    coronary side under cardiac and breathing motion). Patients alternate LCA / RCA and the
    frames split exactly ``n - n // 2`` LCA / ``n // 2`` RCA.

    Parameters
    ----------
    n : int
        Number of frames, at least 2.
    size : int
        Frame side in pixels, at least 16.
    seed : int
        Non-negative seed; the same seed gives identical arrays (experiment randomness:
        ``numpy.random.SeedSequence(seed, spawn_key=(patient,))`` per patient).
    frames_per_patient : int
        Frames per patient sequence (the last patient of each class may have fewer).
    backgrounds : {"auto", "real", "synthetic"}
        Chest anatomy behind the vessels; see :func:`medcloak.synth.background.make_background`.
    visible_contrast : float
        Least contrast (fraction in [0, 1)) of a lumen pixel in the noise-free frame for
        ``masks`` (see Returns); 0 makes ``masks`` equal ``masks_full``.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    FrameSet
        Frames and noise-free frames (float32 in [0, 1], vessels dark); ``masks``: the *visible*
        lumen (pixels of ``masks_full`` whose Beer-Lambert contrast in the noise-free frame,
        ``1 - I / I_behind`` against the same frame rendered without the vessels, is at least
        ``visible_contrast``; the catheter excluded); ``masks_full``: the full anatomical lumen
        (pixel centres within ``max(rho, 0.5)`` px of a projected centreline sample of radius
        ``rho``); ``catheter``: its projected lumen (pass it as ``ignore=`` to vessel scores);
        labels, stenosis flags (a 50-90 % stenosis in the frame's tree), patient ids
        ``syn<seed>-<patient>``, frame indices, view angles (e.g. ``"LAO32.1/CRA14.0"``);
        no split assigned, provenance ``"semi-synthetic"``.

    Examples
    --------
    >>> d = generate(4, size=32, frames_per_patient=2)
    >>> d.frames.shape, d.labels
    ((4, 32, 32), ['LCA', 'LCA', 'RCA', 'RCA'])
    """
    for name, val, lo in (("n", n, 2), ("size", size, 16), ("frames_per_patient", frames_per_patient, 1), ("seed", seed, 0)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise MedcloakError(f"{name} must be an integer >= {lo}, got {val!r}")
    if isinstance(visible_contrast, bool) or not isinstance(visible_contrast, (int, float, np.number)) \
            or not 0.0 <= float(visible_contrast) < 1.0:
        raise MedcloakError(f"visible_contrast must be a number in [0, 1), got {visible_contrast!r}")
    if backgrounds not in BACKGROUND_MODES:
        raise MedcloakError(f"backgrounds must be one of {', '.join(BACKGROUND_MODES)}, got {backgrounds!r}")
    n, size, fpp, seed = int(n), int(size), int(frames_per_patient), int(seed)
    frames = np.empty((n, size, size), np.float32)
    clean = np.empty((n, size, size), np.float32)
    masks = np.empty((n, size, size), bool)
    masks_full = np.empty((n, size, size), bool)
    catheter = np.empty((n, size, size), bool)
    labels: list[str] = []
    pids: list[str] = []
    views: list[str] = []
    sten = np.empty(n, bool)
    fidx = np.empty(n, np.int64)
    i = 0
    with tqdm(total=n, disable=not progress, file=sys.stderr, unit="frame", desc="synth") as bar:
        for p, (label, k) in enumerate(_plan(n, fpp)):
            got = _patient(p, label, k, size=size, seed=seed, backgrounds=backgrounds,
                           visible_contrast=float(visible_contrast))
            frames[i : i + k] = got["frames"]
            clean[i : i + k] = got["clean"]
            masks[i : i + k] = got["masks"]
            masks_full[i : i + k] = got["masks_full"]
            catheter[i : i + k] = got["catheter"]
            sten[i : i + k] = got["stenosis"]
            fidx[i : i + k] = np.arange(k)
            labels += [label] * k
            pids += [f"syn{seed}-{p:04d}"] * k
            views += [got["view"]] * k
            i += k
            bar.update(k)
    return FrameSet(frames, labels, pids, stenosis=sten, frame_index=fidx, views=views, clean=clean, masks=masks,
                    masks_full=masks_full, catheter=catheter, provenance="semi-synthetic",
                    source=f"medcloak.synth.generate({n}, size={size}, seed={seed}, frames_per_patient={fpp})")
