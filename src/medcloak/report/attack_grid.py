"""The attack figure: one row per test frame, one column per view.

Columns: original | obfuscated | T0 | T1 | T2 | T3 | T4 | prior (those that were run). Each
column is labelled with its mean SSIM against the original over the shown frames; T0 shows the
vessel probability map and is labelled with its Dice against the vessel mask instead.
"""

from __future__ import annotations

import io
import os

import numpy as np

from medcloak.io.atomic import atomic_write_bytes

__all__ = ["COLUMN_ORDER", "attack_grid", "draw_columns"]

COLUMN_ORDER = ("original", "obfuscated", "T0", "T1", "T2", "T3", "T4", "prior")


def draw_columns(axes, columns: list[tuple[str, np.ndarray]], k: int, *, fontsize: int = 8) -> None:
    """Draw ``k`` frames per column on an axes grid of shape (k, len(columns)), grey scale in [0, 1],
    no ticks, each column titled with its label on the first row."""
    for j, (label, col) in enumerate(columns):
        for i in range(k):
            ax = axes[i, j]
            ax.imshow(col[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=fontsize)


def attack_grid(
    images: dict[str, np.ndarray],
    path: str | os.PathLike,
    *,
    masks: np.ndarray | None = None,
    n_frames: int = 8,
    cell_inches: float = 1.3,
    dpi: int = 110,
) -> list[str]:
    """Write the grid as a PNG (matplotlib, Agg backend, atomic write).

    Parameters
    ----------
    images : dict of str to ndarray (k, H, W) in [0, 1]
        Column name to frames; ``"original"`` is required. Usually
        :attr:`medcloak.attacks.runner.AttackResults.images`.
    path : path-like
        Output PNG.
    masks : ndarray of bool (k, H, W), optional
        Vessel masks, for the T0 column's Dice label.
    n_frames : int
        Rows (test frames) shown, at most.

    Returns
    -------
    list of str
        The column names drawn, in order.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from medcloak import metrics

    if "original" not in images:
        raise ValueError("attack_grid needs an 'original' column")
    cols = [c for c in COLUMN_ORDER if c in images] + [c for c in images if c not in COLUMN_ORDER]
    orig = np.asarray(images["original"], np.float32)
    k = min(n_frames, len(orig))
    fig = Figure(figsize=(cell_inches * len(cols), cell_inches * k + 0.5))
    axes = fig.subplots(k, len(cols), squeeze=False)
    columns = []
    for c in cols:
        col = np.asarray(images[c], np.float32)[:k]
        if c == "T0":
            label = "T0 (vessels)"
            if masks is not None:
                label += f"\nDice {metrics.vessel_dice(col > 0.5, np.asarray(masks)[:k]):.2f}"
        elif c == "original":
            label = "original"
        else:
            label = f"{c}\nSSIM {metrics.ssim(col, orig[:k]):.2f}"
        columns.append((label, col))
    draw_columns(axes, columns, k)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close("all")
    atomic_write_bytes(path, buf.getvalue())
    return cols
