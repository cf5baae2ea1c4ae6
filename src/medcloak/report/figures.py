"""The study's figures (matplotlib, Agg canvas, written atomically as PNG).

One function per figure; each takes plain arrays/dicts (as the study stages store them) and a
path, and returns the path:

* :func:`sample_grid` -- rows = test frames; columns original | VAE | obfuscated | T0 | each
  attack's reconstruction | prior, labelled with SSIM against the original (T0: Dice);
* :func:`training_curves` -- VAE loss, classifier loss and validation accuracy per epoch;
* :func:`roc_curves` -- test ROC of the classifier on original vs obfuscated frames;
* :func:`privacy_utility` -- obfuscated accuracy vs T0 Dice and vs SSIM(original, obfuscated);
* :func:`t1_curve` -- T1 (known plaintext) scores over the number of leaked pairs;
* :func:`overhead_table` -- the overhead rows as a table image.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medcloak.io.atomic import atomic_write_bytes

__all__ = ["sample_grid", "training_curves", "roc_curves", "privacy_utility", "t1_curve", "overhead_table",
           "GRID_ORDER"]

#: Column order of :func:`sample_grid` (other names go after the T-columns, before the prior).
GRID_ORDER = ("original", "vae", "obfuscated", "T0")
_ORIG_C, _OBF_C = "#1f77b4", "#d62728"


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _save(fig, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _column_order(names: Sequence[str]) -> list[str]:
    first = [c for c in GRID_ORDER if c in names]
    attacks = sorted(c for c in names if c not in GRID_ORDER and c != "prior")
    return first + attacks + (["prior"] if "prior" in names else [])


def sample_grid(
    images: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    masks: np.ndarray | None = None,
    n_frames: int = 6,
    cell_inches: float = 1.25,
) -> Path:
    """Test frames under every condition, one row per frame.

    Parameters
    ----------
    images : mapping of str to ndarray float32 (k, H, W) in [0, 1]
        ``"original"`` is required; ``"vae"``, ``"obfuscated"``, ``"T0"`` (vessel probability),
        attack reconstructions (``"T1-n50"``, ``"T4"``, ...) and ``"prior"`` are drawn if given.
    masks : ndarray of bool (k, H, W), optional
        Vessel masks of the frames, for T0's Dice label (threshold 0.5).
    n_frames : int
        Rows shown, at most.
    """
    from medcloak import metrics
    from medcloak.report.attack_grid import draw_columns

    cols = _column_order(list(images))
    orig = np.asarray(images["original"], np.float32)
    k = max(1, min(n_frames, len(orig)))
    fig = _figure(cell_inches * len(cols), cell_inches * k + 0.55)
    axes = fig.subplots(k, len(cols), squeeze=False)
    columns = []
    for c in cols:
        col = np.asarray(images[c], np.float32)[:k]
        if c == "original":
            label = "original"
        elif c == "T0":
            label = "T0 vessels"
            if masks is not None:
                label += f"\nDice {metrics.vessel_dice(col > 0.5, np.asarray(masks, bool)[:k]):.2f}"
        else:
            label = f"{'VAE' if c == 'vae' else c}\nSSIM {metrics.ssim(col, orig[:k]):.2f}"
        columns.append((label, col))
    draw_columns(axes, columns, k)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / (cell_inches * k + 0.55),
                        wspace=0.04, hspace=0.04)
    return _save(fig, path)


def training_curves(utility: Mapping, vae_history: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """Three panels: VAE loss per epoch; classifier BCE loss; classifier validation accuracy.

    Parameters
    ----------
    utility : mapping
        ``{"original": {"history": [...]}, "obfuscated": {"history": [...]}}`` (rows of
        :data:`medcloak.learn.train.HISTORY_COLUMNS`).
    vae_history : sequence of mapping
        The scheme's per-epoch rows (the VAE's ``train_loss``, ``val_loss``; every column whose
        name holds "loss" or "mse" is drawn).
    """
    fig = _figure(11, 3.2)
    a, b, c = fig.subplots(1, 3)
    if vae_history:  # every loss-like column of the scheme's history (the VAE's: train_loss, val_loss)
        ep = [r.get("epoch", i + 1) for i, r in enumerate(vae_history)]
        cols = [k for k in vae_history[0] if ("loss" in k or "mse" in k)
                and all(isinstance(r.get(k), (int, float)) for r in vae_history)]
        for k in cols:
            a.plot(ep, [r[k] for r in vae_history], marker=".", label=k.replace("_loss", "").replace("_", " "))
        a.legend(fontsize=8)
    else:
        a.text(0.5, 0.5, "nothing trained (keyed transform only)", ha="center", va="center", transform=a.transAxes)
    a.set_title("owner's scheme training", fontsize=10)
    a.set_xlabel("epoch")
    a.set_ylabel("loss per frame")
    for side, color in (("original", _ORIG_C), ("obfuscated", _OBF_C)):
        hist = utility[side]["history"]
        ep = [r["epoch"] for r in hist]
        b.plot(ep, [r["train_loss"] for r in hist], color=color, ls="--", marker=".", label=f"{side} train")
        b.plot(ep, [r["val_loss"] for r in hist], color=color, marker=".", label=f"{side} val")
        c.plot(ep, [r["val_acc"] for r in hist], color=color, marker=".", label=side)
    b.set_title("cloud classifier: loss", fontsize=10)
    b.set_xlabel("epoch")
    b.set_ylabel("BCE loss")
    b.legend(fontsize=7)
    c.set_title("cloud classifier: validation accuracy", fontsize=10)
    c.set_xlabel("epoch")
    c.set_ylim(0, 1.02)
    c.axhline(0.5, color="grey", lw=0.8, ls=":")
    c.legend(fontsize=8)
    for ax in (a, b, c):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return _save(fig, path)


def roc_curves(utility: Mapping, path: str | os.PathLike) -> Path:
    """Test ROC curves of the classifier on original and on obfuscated frames, with AUC [95 % CI]."""
    fig = _figure(4.6, 4.4)
    ax = fig.subplots()
    for side, color in (("original", _ORIG_C), ("obfuscated", _OBF_C)):
        met = utility[side]["metrics"]
        roc, auc = met.get("roc") or {}, met["roc_auc"]
        if roc.get("fpr"):
            lo, hi = auc.get("ci_low"), auc.get("ci_high")
            ci = "" if lo is None or hi is None else f" [{lo:.2f}, {hi:.2f}]"
            ax.plot(roc["fpr"], roc["tpr"], color=color, label=f"{side}: AUC {auc['value']:.3f}{ci}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("test ROC (LCA vs RCA)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def privacy_utility(
    point: Mapping,
    path: str | os.PathLike,
    *,
    grid_rows: Sequence[Mapping] | None = None,
) -> Path:
    """Utility (accuracy on obfuscated frames) against two privacy axes.

    Parameters
    ----------
    point : mapping
        The study's configuration: ``accuracy``, ``ci_low``, ``ci_high`` (obfuscated side),
        ``original_accuracy``, ``t0_dice`` (may be None), ``ssim`` (original vs obfuscated),
        ``prior_dice``, ``label``.
    grid_rows : sequence of mapping, optional
        Utility-grid rows (``accuracy``, ``ssim``, ``direct_view_dice``, ``config``) drawn as grey
        points for comparison.
    """
    fig = _figure(10, 3.9)
    axes = fig.subplots(1, 2)
    acc, lo, hi = _num(point.get("accuracy")), _num(point.get("ci_low")), _num(point.get("ci_high"))
    yerr = None if math.isnan(lo) or math.isnan(hi) else [[max(acc - lo, 0)], [max(hi - acc, 0)]]
    for ax, key, grid_key, xlabel in (
        (axes[0], "t0_dice", "direct_view_dice", "T0 direct-view vessel Dice (lower = more private)"),
        (axes[1], "ssim", "ssim", "SSIM(original, obfuscated) (lower = less similar)"),
    ):
        if grid_rows:
            xs = [_num(r.get(grid_key)) for r in grid_rows]
            ys = [_num(r.get("accuracy")) for r in grid_rows]
            ok = [(x, y) for x, y in zip(xs, ys) if not (math.isnan(x) or math.isnan(y))]
            if ok:
                ax.scatter(*zip(*ok), s=18, color="#999999", label="utility grid settings", zorder=2)
        x = _num(point.get(key))
        if not math.isnan(x):
            ax.errorbar([x], [acc], yerr=yerr, fmt="o", color=_OBF_C, capsize=4, ms=7, zorder=3,
                        label=point.get("label", "this study"))
        else:
            ax.text(0.5, 0.1, "not measured (T0 not run)", ha="center", transform=ax.transAxes, fontsize=8)
        ax.axhline(_num(point.get("original_accuracy")), color=_ORIG_C, ls="--", lw=1,
                   label="classifier on original frames")
        ax.axhline(0.5, color="grey", ls=":", lw=0.8, label="chance")
        if key == "t0_dice" and not math.isnan(_num(point.get("prior_dice"))):
            ax.axvline(_num(point.get("prior_dice")), color="black", ls=":", lw=0.8, label="prior (no knowledge)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(0.3, 1.03)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("test accuracy on obfuscated frames", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("privacy vs utility: the goal is the top-left corner", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def t1_curve(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """T1 scores over the number of leaked (original, obfuscated) pairs, beside the prior and T4.

    Parameters
    ----------
    rows : sequence of mapping
        Attack rows (:data:`medcloak.attacks.runner.COLUMNS`); the ``T1`` rows make the curve; each
        score's baseline (the T1 rows' ``prior_<score>``: mean frame, location prior, chance; else
        the ``prior`` row) and the last ``T4`` row (if present) are drawn as horizontal lines.
    """
    t1 = sorted((r for r in rows if r.get("threat") == "T1"), key=lambda r: _num(r.get("n_pairs")))
    ref = {r["threat"]: r for r in rows if r.get("threat") in ("prior", "T4")}
    fig = _figure(11, 3.2)
    axes = fig.subplots(1, 3)
    for ax, key, title in ((axes[0], "ssim", "SSIM vs original"), (axes[1], "vessel_dice", "vessel Dice"),
                           (axes[2], "reid_top1", "re-identification top-1")):
        if t1:
            ax.plot([_num(r["n_pairs"]) for r in t1], [_num(r.get(key)) for r in t1], marker="o", color=_OBF_C,
                    label="T1 known plaintext")
            ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "T1 not run", ha="center", va="center", transform=ax.transAxes)
        for name, style in (("prior", ":"), ("T4", "--")):
            # the prior line is each score's baseline (mean frame, location prior, chance) as the rows carry it
            value = _num(t1[0].get(f"prior_{key}")) if name == "prior" and t1 else math.nan
            if math.isnan(value) and name in ref:
                value = _num(ref[name].get(key))
            if not math.isnan(value):
                ax.axhline(value, color="black" if name == "prior" else "#2ca02c", ls=style, lw=1,
                           label=f"{name} ({'no knowledge' if name == 'prior' else 'ciphertext only'})")
        ax.set_xlabel("leaked pairs n")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def overhead_table(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """The overhead rows (``figure``, ``value``, ``unit``, ``note``) drawn as a table."""
    cells = [[r["figure"], _fmt(r.get("value")), r.get("unit", ""), r.get("note", "")] for r in rows]
    fig = _figure(10, 0.32 * (len(cells) + 1) + 0.2)
    ax = fig.subplots()
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=["figure", "value", "unit", "note"], loc="center",
                     cellLoc="left", colLoc="left", colWidths=[0.36, 0.1, 0.06, 0.48])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.25)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01)
    return _save(fig, path)


def _fmt(v) -> str:
    x = _num(v)
    if math.isnan(x):
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
