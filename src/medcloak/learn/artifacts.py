"""Write a training run's files: model, metrics, curves (CSV + PNG), ROC (PNG), confusion matrix.

Layout of ``DIR`` (every file written atomically)::

    model.pt        the classifier (medcloak.learn.models.save_classifier)
    metrics.json    test metrics with 95 % bootstrap CIs, training summary (epochs, best epoch,
                    mean epoch seconds), recipe, classifier config, data sizes
    curves.csv      one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds
    curves.png      losses and accuracies per epoch
    roc.png         test ROC curve with its AUC
    confusion.csv   2x2 confusion matrix, rows = truth, columns = prediction, class names as labels
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
from pathlib import Path

import numpy as np

from medcloak.io.atomic import atomic_open, atomic_write_text
from medcloak.learn.models import save_classifier
from medcloak.learn.train import HISTORY_COLUMNS, TrainResult

__all__ = ["write_run", "plot_curves", "plot_roc", "summary", "RUN_FILES"]

RUN_FILES = ("model.pt", "metrics.json", "curves.csv", "curves.png", "roc.png", "confusion.csv")


def summary(result: TrainResult, metrics: dict) -> dict:
    """JSON-serialisable summary of a training run and its test metrics (``metrics.json``)."""
    keep = {k: v for k, v in metrics.items() if k not in ("prob", "roc")}
    return {
        "test": keep,
        "training": {
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "mean_epoch_seconds": result.mean_epoch_seconds,
            "total_seconds": result.total_seconds,
        },
        "classes": result.classes,
        "image_size": list(result.image_size),
        "classifier": result.config.to_dict(),
        "recipe": result.recipe.to_dict(),
        **({"data": result.extra} if result.extra else {}),
    }


def _savefig(fig, path: Path) -> None:
    with atomic_open(path) as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")


def plot_curves(history: list[dict], path: str | os.PathLike, *, title: str = "") -> None:
    """Two panels: train/val loss and train/val accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(ep, [r["train_loss"] for r in history], label="train")
    a.plot(ep, [r["val_loss"] for r in history], label="val")
    a.set_xlabel("epoch"), a.set_ylabel("BCE loss"), a.legend()
    b.plot(ep, [r["train_acc"] for r in history], label="train")
    b.plot(ep, [r["val_acc"] for r in history], label="val")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.set_ylim(0, 1.02), b.legend()
    if title:
        fig.suptitle(title)
    _savefig(fig, Path(path))
    plt.close(fig)


def plot_roc(metrics: dict, path: str | os.PathLike, *, title: str = "") -> None:
    """Test ROC curve (from :func:`medcloak.learn.evaluate.binary_metrics`) with AUC and CI."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    roc = metrics.get("roc") or {}
    auc = metrics["roc_auc"]
    if roc.get("fpr"):
        ax.plot(roc["fpr"], roc["tpr"],
                label=f"AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set_xlabel("false positive rate"), ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    ax.set_title(title or "test ROC")
    _savefig(fig, Path(path))
    plt.close(fig)


def write_run(out: str | os.PathLike, result: TrainResult, metrics: dict) -> Path:
    """Write all :data:`RUN_FILES` of a training run into ``out`` (created); returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_classifier(out, result.model, classes=result.classes, image_size=result.image_size,
                    recipe=result.recipe.to_dict())
    atomic_write_text(out / "metrics.json", json.dumps(summary(result, metrics), indent=2) + "\n")
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HISTORY_COLUMNS)
    for r in result.history:
        w.writerow([r["epoch"]] + [f"{r[c]:.6g}" for c in HISTORY_COLUMNS[1:]])
    atomic_write_text(out / "curves.csv", buf.getvalue())
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    c = result.classes
    w.writerow(["truth\\predicted", *c])
    for name, row in zip(c, np.asarray(metrics["confusion"]).tolist()):
        w.writerow([name, *row])
    atomic_write_text(out / "confusion.csv", buf.getvalue())
    plot_curves(result.history, out / "curves.png", title=f"{result.config.model} classifier")
    plot_roc(metrics, out / "roc.png")
    return out
