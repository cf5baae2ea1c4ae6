"""The privacy-utility figure: classifier accuracy against what a viewer recovers, per setting.

:func:`privacy_utility_figure` draws, for the rows of :func:`medcloak.study.grid.utility_grid`
(or the study's own rows), accuracy against the direct-view (T0) vessel Dice and accuracy against
SSIM(original, obfuscated), with the issue's target region shaded (accuracy >= ``acc_target``,
Dice <= ``dice_target``, SSIM <= ``ssim_target``), and beside them one sample test frame per
setting, so a reader sees what each point looks like.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from medcloak.io.atomic import atomic_write_bytes

__all__ = ["privacy_utility_figure"]

_MARKERS = {"original": "*", "map-only": "s", "vae-then-map": "o", "map-then-vae": "^"}


def _colour(row: Mapping) -> str:
    levels = row.get("levels")
    return {None: "black", 256: "tab:blue", 64: "tab:orange", 32: "tab:purple", 16: "tab:green"}.get(
        None if levels in (None, "") or (isinstance(levels, float) and math.isnan(levels)) else int(levels), "tab:gray")


def _short(name: str) -> str:
    """Two-line thumbnail title: ``vae-then-map/L16/vae-b1e-3`` -> ``VAE b1e-3 > map\nL=16``."""
    parts = name.split("/")
    if parts[0] == "original":
        return "original"
    level = next((p[1:] for p in parts if p.startswith("L") and p[1:].isdigit()), "?")
    vae = next((p[4:] for p in parts if p.startswith("vae-") and p != "vae-then-map"), None)
    head = f"VAE {vae} > map" if vae else parts[0]
    tail = ", sampled latent" if "sampled-latent" in parts else ""
    return f"{head}\nL={level}{tail}"


def _num(v) -> float | None:
    if v is None or v == "":
        return None
    f = float(v)
    return None if math.isnan(f) else f


def privacy_utility_figure(
    rows: Sequence[Mapping],
    path: str | os.PathLike,
    *,
    samples: Mapping[str, np.ndarray] | None = None,
    acc_target: float = 0.90,
    dice_target: float = 0.30,
    ssim_target: float = 0.10,
    title: str | None = None,
    dpi: int = 110,
) -> None:
    """Write the figure as a PNG (atomically).

    Parameters
    ----------
    rows : sequence of mapping
        Each with ``config`` (name), ``order``, ``levels``, ``model``, ``input_mode``,
        ``accuracy`` (+ ``accuracy_ci_low``/``_high``), ``ssim`` and ``direct_view_dice``
        (None where not measured: such rows are left out of the Dice panel).
    path : path-like
        Output PNG.
    samples : mapping of str to ndarray (H, W), optional
        ``config name -> one obfuscated test frame`` (and ``"original"``); drawn as thumbnails,
        one per distinct obfuscation (rows that differ only in the classifier share one).
    acc_target, dice_target, ssim_target : float
        The target region drawn on both panels.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    thumbs: list[tuple[str, np.ndarray]] = []
    if samples:
        seen = set()
        for name in ["original", *[str(r["config"]) for r in rows]]:
            if name not in samples:
                continue
            parts = name.split("/")
            look = "/".join(p for p in parts if p not in ("small", "wide", "densenet", "level-embedding"))
            if look in seen:
                continue
            seen.add(look)
            thumbs.append((look, np.asarray(samples[name], np.float32)))
    accs = [a for a in (_num(r.get("accuracy_ci_low")) or _num(r.get("accuracy")) for r in rows) if a is not None]
    y_low = min([0.3] + [a - 0.05 for a in accs])
    ncols = 2 + (1 if thumbs else 0)
    fig = Figure(figsize=(5.2 * 2 + (4.2 if thumbs else 0), 5.2))
    gs = fig.add_gridspec(1, ncols, width_ratios=[1, 1] + ([0.85] if thumbs else []))
    panels = (("direct_view_dice", "direct-view (T0) vessel Dice  (lower = more private)", dice_target),
              ("ssim", "SSIM(original, obfuscated)  (lower = more private)", ssim_target))
    for j, (col, xlabel, xt) in enumerate(panels):
        ax = fig.add_subplot(gs[0, j])
        ax.fill_between([0, xt], acc_target, 1.02, color="tab:green", alpha=0.12, label="target region")
        for r in rows:
            x, y = _num(r.get(col)), _num(r.get("accuracy"))
            if x is None or y is None:
                continue
            lo, hi = _num(r.get("accuracy_ci_low")), _num(r.get("accuracy_ci_high"))
            emb = r.get("input_mode") == "level-embedding"
            ax.errorbar([x], [y], yerr=None if lo is None else [[y - lo], [hi - y]], fmt="none",
                        ecolor=_colour(r), alpha=0.35, lw=1)
            ax.scatter([x], [y], marker=_MARKERS.get(str(r.get("order")), "o"), s=70 if r.get("model") == "wide" else 38,
                       facecolors="none" if emb else _colour(r), edgecolors=_colour(r), linewidths=1.4, zorder=3)
        ax.axhline(0.5, color="gray", lw=0.8, ls=":")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(y_low, 1.02)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("test accuracy (95 % bootstrap CI)", fontsize=9)
        ax.grid(alpha=0.3)
        if j == 0:
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], marker=m, ls="", color="k", label=o) for o, m in _MARKERS.items()
                       if any(r.get("order") == o for r in rows)]
            handles += [Line2D([], [], marker="o", ls="", color=_colour({"levels": L}), label=f"L={L}")
                        for L in sorted({int(r["levels"]) for r in rows if _num(r.get("levels")) is not None},
                                        reverse=True)]
            handles += [Line2D([], [], marker="o", ls="", mfc="none", color="k", label="level-embedding (changes method)"),
                        Line2D([], [], marker="o", ls="", ms=9, color="k", label="wide classifier (big marker)")]
            ax.legend(handles=handles, fontsize=7, loc="center left")
    if thumbs:
        k = len(thumbs)
        c = int(math.ceil(math.sqrt(k)))
        rws = int(math.ceil(k / c))
        sub = gs[0, 2].subgridspec(rws, c, wspace=0.05, hspace=0.35)
        for i, (name, img) in enumerate(thumbs):
            ax = fig.add_subplot(sub[i // c, i % c])
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(_short(name), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close("all")
    atomic_write_bytes(path, buf.getvalue())
