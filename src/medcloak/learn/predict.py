"""The deployed path: (owner) obfuscate new frames with the same key, (cloud) predict.

:func:`predict_files` reads image files (multi-frame files give one row per frame), resizes
each frame to the classifier's input size (:func:`medcloak.io.arrays.resize`, as training data
were loaded; nearest-neighbour for a ``level-embedding`` classifier fed already-obfuscated frames
so that grey-level codes survive), obfuscates it with the owner's
fitted scheme (any callable ``frames -> frames`` with an ``input_size``) when one is given, and returns the predicted
label and the probability of that label. A file that cannot be read is reported in its row and
the batch goes on.
"""

from __future__ import annotations

import csv
import io as _io
import os
import sys
from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from medcloak.device import model_device
from medcloak.errors import MedcloakError, printable
from medcloak.io.atomic import atomic_write_text

__all__ = ["predict_proba", "predict_files", "format_predictions", "write_predictions", "PREDICTION_COLUMNS"]

PREDICTION_COLUMNS = ("path", "frame", "label", "probability", "error")


def predict_proba(model, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Probability of the positive class (``classes[1]``) for each frame.

    Parameters
    ----------
    model : Classifier
    x : ndarray float (N, H, W) in [0, 1]
    batch_size : int

    Returns
    -------
    ndarray float64 (N,) in [0, 1]
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise MedcloakError(f"frames must be (N, H, W), got shape {a.shape}")
    model.eval()
    dev = model_device(model)
    out = []
    with torch.no_grad():
        for i in range(0, a.shape[0], batch_size):
            xb = model.prepare(a[i : i + batch_size]).to(dev)
            out.append(torch.sigmoid(model(xb)).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def _fit_size(img: np.ndarray, size: tuple[int, int], *, nearest: bool) -> np.ndarray:
    if img.shape == tuple(size):
        return img
    if nearest:
        from skimage.transform import resize as _resize

        return _resize(img, size, order=0, mode="edge", anti_aliasing=False, preserve_range=True).astype(np.float32)
    from medcloak.io.arrays import resize

    return resize(img, size)


def predict_files(
    model_dir: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    *,
    obfuscator=None,
    progress: bool = True,
) -> list[dict]:
    """Predict the class of every frame of every input.

    Parameters
    ----------
    model_dir : path-like
        Folder holding ``model.pt`` (from ``medcloak train``) or the file itself.
    inputs : iterable of path-like
        Files or folders (walked recursively with :func:`medcloak.io.load.iter_inputs`).
    obfuscator : callable, optional
        The owner's fitted scheme (same key and model as the training data), called on
        (N, H, W) frames; its ``input_size`` (or None) is checked against the classifier's. Without it the
        inputs are taken as already obfuscated (or, for a model trained on originals, original).
    progress : bool
        tqdm bar over files on stderr.

    Returns
    -------
    list of dict
        One per frame (or one per failed file) with :data:`PREDICTION_COLUMNS`: ``path``,
        ``frame`` (index in the file), ``label`` (predicted class name), ``probability`` (of the
        predicted label, in [0.5, 1]), ``error`` (empty on success).
    """
    from medcloak.io.load import iter_inputs, read_frames
    from medcloak.learn.models import load_classifier

    model, info = load_classifier(model_dir)
    size = tuple(info["image_size"])
    classes = info["classes"]
    nearest = obfuscator is None and info["config"].input_mode == "level-embedding"
    if obfuscator is not None and obfuscator.input_size is not None and tuple(obfuscator.input_size) != size:
        raise MedcloakError(
            f"the obfuscator works on {obfuscator.input_size[0]}x{obfuscator.input_size[1]} frames but the "
            f"classifier on {size[0]}x{size[1]}", model_dir)
    rows: list[dict] = []

    def skipped(path, why: str) -> None:  # an unlistable subfolder or a FIFO: reported, the rest goes on
        rows.append({"path": os.fspath(path), "frame": "", "label": "", "probability": "",
                     "error": f"{os.fspath(path)}: {why}"})

    files = [p for root in inputs for p in iter_inputs(root, on_error=skipped)]
    for path in tqdm(files, disable=not progress, file=sys.stderr, unit="file", desc="predict"):
        try:
            frames = read_frames(path)
            x = np.stack([_fit_size(f.pixels, size, nearest=nearest) for f in frames])
            if obfuscator is not None:
                x = obfuscator(x)
            prob = predict_proba(model, x)
        except MedcloakError as exc:
            rows.append({"path": os.fspath(path), "frame": "", "label": "", "probability": "", "error": str(exc)})
            continue
        for k, p in enumerate(prob):
            pos = bool(p >= 0.5)
            rows.append({"path": os.fspath(path), "frame": k, "label": classes[1] if pos else classes[0],
                         "probability": float(p if pos else 1.0 - p), "error": ""})
    return rows


def format_predictions(rows: list[dict]) -> str:
    """Prediction rows as CSV text (header :data:`PREDICTION_COLUMNS`, probabilities to 6 decimals)."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PREDICTION_COLUMNS)
    for r in rows:
        prob = r["probability"]
        # file names that are not UTF-8 are written as escaped text (\xNN), so the CSV is always written
        w.writerow([printable(r["path"]), r["frame"], r["label"], f"{prob:.6f}" if isinstance(prob, float) else prob,
                    printable(r["error"])])
    return buf.getvalue()


def write_predictions(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write :func:`format_predictions` to ``path`` atomically."""
    atomic_write_text(path, format_predictions(rows))
