"""Test-set metrics of a binary classifier, each with a seeded percentile bootstrap CI.

Point metrics are scikit-learn's (``accuracy_score``, ``precision_score``, ``recall_score``,
``f1_score`` with ``zero_division=0``, ``roc_auc_score``) on the positive class ``1``
(``classes[1]``) at a probability threshold of 0.5. The 95 % confidence interval of each is the
2.5th and 97.5th percentile over ``n_boot`` resamples of the test set (frames drawn with
replacement by ``numpy.random.default_rng(seed)``); resamples holding one class only are skipped
for ROC-AUC (it is undefined there). The resamples' metrics are computed vectorised
(:func:`resample_metrics`, tested equal to scikit-learn's) because 1000 x 5 scikit-learn calls
take tens of seconds.

Note: test frames of one patient are correlated, so a frame-level bootstrap understates the
uncertainty of a patient-level claim; ``patients=`` switches to resampling whole patients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from medcloak.errors import MedcloakError

__all__ = ["binary_metrics", "bootstrap_ci", "resample_metrics", "evaluate", "METRICS"]

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _point(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    pred = (prob >= threshold).astype(np.int64)
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, prob)) if len(np.unique(y)) == 2 else float("nan"),
    }
    return out


def resample_metrics(y_rows: np.ndarray, p_rows: np.ndarray, *, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """:data:`METRICS` of many resamples at once (vectorised; equal to scikit-learn's per row).

    Parameters
    ----------
    y_rows : ndarray of int (B, n)
        0/1 truth, one resample per row.
    p_rows : ndarray of float (B, n)
        Probabilities of class 1.
    threshold : float
        Decision threshold (``prob >= threshold`` is class 1).

    Returns
    -------
    dict
        ``metric -> ndarray (B,)``. Precision, recall and F1 are 0 where undefined
        (``zero_division=0``); ROC-AUC is NaN for rows holding one class. ROC-AUC is the
        Mann-Whitney statistic with average ranks for ties, which equals the area under the
        trapezoidal ROC curve of :func:`sklearn.metrics.roc_auc_score`.
    """
    from scipy.stats import rankdata

    y = np.asarray(y_rows) == 1
    p = np.asarray(p_rows, dtype=np.float64)
    pred = p >= threshold
    tp = (pred & y).sum(1).astype(np.float64)
    fp = (pred & ~y).sum(1).astype(np.float64)
    fn = (~pred & y).sum(1).astype(np.float64)
    n = y.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "accuracy": (n - fp - fn) / n,
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
        }
        n1 = y.sum(1).astype(np.float64)
        n0 = n - n1
        ranks = rankdata(p, axis=1)
        u = (ranks * y).sum(1) - n1 * (n1 + 1) / 2.0
        out["roc_auc"] = np.where((n1 > 0) & (n0 > 0), u / (n1 * n0), np.nan)
    return out


def bootstrap_ci(
    y_true: np.ndarray,
    prob: np.ndarray,
    *,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Sequence | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of :data:`METRICS`.

    Parameters
    ----------
    y_true : ndarray of int (N,)
        0/1 truth.
    prob : ndarray of float (N,)
        Probability of class 1, in [0, 1].
    threshold : float
        A frame is predicted 1 when ``prob >= threshold``.
    n_boot : int
        Resamples (>= 1).
    seed : int
        Seed of ``numpy.random.default_rng``.
    level : float
        Coverage, e.g. 0.95 for the 2.5th-97.5th percentiles.
    groups : sequence, optional
        Group (patient) of each frame; if given, whole groups are resampled.

    Returns
    -------
    dict
        ``metric -> (low, high)``; ``(nan, nan)`` when no resample was defined.
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(prob, dtype=np.float64)
    n = y.size
    rng = np.random.default_rng(seed)
    samples: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    if groups is None:
        chunk = max(1, min(int(n_boot), 2_000_000 // max(n, 1)))
        done = 0
        while done < n_boot:
            b = min(chunk, int(n_boot) - done)
            idx = rng.integers(0, n, (b, n))
            for m, v in resample_metrics(y[idx], p[idx], threshold=threshold).items():
                samples[m].append(v)
            done += b
    else:
        g = np.asarray([str(v) for v in groups])
        uniq, inv = np.unique(g, return_inverse=True)
        members = [np.flatnonzero(inv == k) for k in range(uniq.size)]
        for _ in range(int(n_boot)):
            pick = rng.integers(0, len(members), len(members))
            idx = np.concatenate([members[k] for k in pick])[None]
            for m, v in resample_metrics(y[idx], p[idx], threshold=threshold).items():
                samples[m].append(v)
    alpha = (1.0 - level) / 2.0
    out = {}
    for m in METRICS:
        s = np.concatenate(samples[m]) if samples[m] else np.zeros(0)
        s = s[np.isfinite(s)]
        out[m] = (float(np.quantile(s, alpha)), float(np.quantile(s, 1.0 - alpha))) if s.size else (
            float("nan"), float("nan"))
    return out


def binary_metrics(
    y_true: Sequence,
    prob: Sequence,
    *,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence | None = None,
) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC with 95 % bootstrap CIs, confusion matrix, ROC.

    Parameters
    ----------
    y_true : sequence of int
        0/1 truth (1 = the positive class, ``classes[1]``).
    prob : sequence of float
        Predicted probability of class 1, in [0, 1].
    threshold, n_boot, seed, groups
        See :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``n``; for each metric of :data:`METRICS` a dict ``{"value", "ci_low", "ci_high"}``;
        ``confusion``: 2x2 list ``[[TN, FP], [FN, TP]]`` (rows truth, columns prediction);
        ``roc``: ``{"fpr": [...], "tpr": [...], "thresholds": [...]}`` (empty lists with one
        class); ``threshold``, ``n_boot``, ``seed``.

    Examples
    --------
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], n_boot=50)
    >>> m["accuracy"]["value"], m["confusion"]
    (0.75, [[1, 1], [0, 2]])
    """
    y = np.asarray(list(y_true)).astype(np.int64)
    p = np.asarray(list(prob), dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape or y.size == 0:
        raise MedcloakError(f"need equal non-empty 1-D truth and probabilities, got {y.shape} and {p.shape}")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise MedcloakError("truth must be 0/1")
    point = _point(y, p, threshold)
    ci = bootstrap_ci(y, p, threshold=threshold, n_boot=n_boot, seed=seed, groups=groups)
    pred = (p >= threshold).astype(np.int64)
    out: dict = {"n": int(y.size), "threshold": float(threshold), "n_boot": int(n_boot), "seed": int(seed)}
    for m in METRICS:
        out[m] = {"value": point[m], "ci_low": ci[m][0], "ci_high": ci[m][1]}
    out["confusion"] = confusion_matrix(y, pred, labels=[0, 1]).tolist()
    if len(np.unique(y)) == 2:
        fpr, tpr, thr = roc_curve(y, p)
        out["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": np.nan_to_num(thr, posinf=1.0).tolist()}
    else:
        out["roc"] = {"fpr": [], "tpr": [], "thresholds": []}
    return out


def evaluate(
    model,
    x: np.ndarray,
    y: Sequence,
    *,
    classes: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    groups: Sequence | None = None,
    batch_size: int = 256,
) -> dict:
    """Evaluate a trained classifier on frames ``x`` with labels ``y``.

    Parameters
    ----------
    model : Classifier
        From :func:`~medcloak.learn.train.train_classifier` (``result.model``).
    x : ndarray float32 (N, H, W) in [0, 1]
    y : sequence of str or int
        Class names or 0/1.
    classes : sequence of 2 str, optional
        ``[negative, positive]`` used in training (default: sorted distinct names of ``y``;
        pass ``result.classes`` when the test set might hold one class only).
    n_boot, seed, threshold, groups
        See :func:`binary_metrics`.

    Returns
    -------
    dict
        :func:`binary_metrics`' dict plus ``classes`` and ``prob`` (list of P(classes[1])).
    """
    from medcloak.learn.predict import predict_proba
    from medcloak.learn.train import encode_labels

    yy, classes = encode_labels(y, classes)
    prob = predict_proba(model, x, batch_size=batch_size)
    out = binary_metrics(yy, prob, threshold=threshold, n_boot=n_boot, seed=seed, groups=groups)
    out["classes"] = list(classes)
    out["prob"] = prob.tolist()
    return out
