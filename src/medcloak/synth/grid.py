"""A labelled figure of example frames: LCA on the left, RCA on the right."""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_bytes
from medcloak.io.frameset import FrameSet

__all__ = ["make_grid"]


def _pick(labels, pids, fidx, label: str, n: int) -> list[int]:
    """First frame of successive patients of one class, then further frames if patients run out."""
    idx = [i for i in range(len(labels)) if labels[i] == label]
    idx.sort(key=lambda i: (int(fidx[i]), i))  # frame 0 of every patient first
    seen, first = set(), []
    for i in idx:
        if pids[i] not in seen:
            seen.add(pids[i])
            first.append(i)
    rest = [i for i in idx if i not in set(first)]
    return (first + rest)[:n]


def _from_dir(folder: Path):
    from medcloak.io.dataset import read_manifest
    from medcloak.io.load import read_frames

    man = read_manifest(folder)
    labels = [r.label for r in man.records]
    pids = [r.patient_id for r in man.records]
    fidx = [int(r.extra.get("frame") or 0) for r in man.records]
    captions = [
        f"{r.extra.get('view', '')}{'  stenosis' if r.extra.get('stenosis') == '1' else ''}" for r in man.records
    ]
    load = lambda i: read_frames(man.abspath(man.records[i].path))[0].pixels  # noqa: E731
    return labels, pids, fidx, captions, load


def make_grid(data_or_dir: FrameSet | str | os.PathLike, out_png: str | os.PathLike, *, n_per_class: int = 4) -> Path:
    """Save a figure: ``n_per_class`` LCA frames (left panel) beside as many RCA frames (right).

    Each panel has at least two rows; frames come from distinct patients where possible and
    are shown at their own pixel size (nearest neighbour, grey levels 0-1 fixed), captioned
    with the view angles and a stenosis flag.

    Parameters
    ----------
    data_or_dir : FrameSet or path-like
        Generated data, or a dataset folder holding ``labels.csv``.
    out_png : path-like
        Output PNG (written atomically; no timestamps, so the same input gives the same bytes).
    n_per_class : int
        Frames per class, at least 2.

    Returns
    -------
    Path
        ``out_png``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if n_per_class < 2:
        raise MedcloakError(f"n_per_class must be at least 2, got {n_per_class}")
    if isinstance(data_or_dir, FrameSet):
        d = data_or_dir
        labels, pids, fidx = d.labels, d.patient_ids, d.frame_index
        views = d.views or [""] * len(labels)
        captions = [f"{views[i]}{'  stenosis' if d.stenosis[i] else ''}" for i in range(len(labels))]
        load = lambda i: d.frames[i]  # noqa: E731
    else:
        labels, pids, fidx, captions, load = _from_dir(Path(data_or_dir))
    picks = {c: _pick(labels, pids, fidx, c, n_per_class) for c in ("LCA", "RCA")}
    if not picks["LCA"] or not picks["RCA"]:
        raise MedcloakError("need frames of both LCA and RCA to make the grid", None if isinstance(data_or_dir, FrameSet) else data_or_dir)
    cols = int(np.ceil(n_per_class / 2))
    rows = int(np.ceil(n_per_class / cols))
    fig, axes = plt.subplots(rows, 2 * cols + 1, figsize=(2.2 * (2 * cols) + 0.3, 2.4 * rows + 0.5),
                             gridspec_kw={"width_ratios": [1] * cols + [0.12] + [1] * cols}, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for side, label in enumerate(("LCA", "RCA")):
        for j, i in enumerate(picks[label]):
            r, c = divmod(j, cols)
            ax = axes[r, c + side * (cols + 1)]
            ax.imshow(load(i), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(captions[i], fontsize=7)
        name = "LCA (left coronary artery)" if label == "LCA" else "RCA (right coronary artery)"
        x = (0.25 if side == 0 else 0.75)
        fig.text(x, 0.985, name, ha="center", va="top", fontsize=11, weight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    out_png = Path(out_png)
    atomic_write_bytes(out_png, buf.getvalue())
    return out_png
