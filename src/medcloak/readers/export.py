"""Export a reader study: every answer as CSV, and a per-condition summary with agreement.

Files written to ``RUN_DIR/readers/`` (atomically):

``answers.csv``
    One row per answer: reader, item, condition, frame, visibility, artery, artery_truth,
    artery_correct, stenosis, stenosis_truth, elapsed_ms, created.
``summary.json`` / ``summary.csv``
    Per condition (and ``"all"``): mean visibility with a 95 % CI, artery-identification
    accuracy against the ground truth with a 95 % CI, stenosis answers, and inter-reader
    agreement (Fleiss' kappa for two or more readers; Cohen's kappa for exactly two).

Statistics (fixed settings):

- visibility: each item's mean over its readers, then the mean over items and a two-sided
  95 % Student-t interval over items (items are the frames of one condition, so the interval
  reflects frame-to-frame spread, not only reader noise); ``None`` with fewer than 2 items.
- artery accuracy: fraction of answers equal to the truth (``unsure`` counts as wrong; its
  share is reported as ``artery_cannot_tell``), 95 % Wilson score interval over answers.
- stenosis: counts of yes/no/unsure, accuracy (``unsure`` wrong), sensitivity = P(yes | a
  stenosis is present), specificity = P(no | none present).
- agreement: computed on the items answered by *every* reader (``n_items`` says how many).
  Fleiss' kappa (Fleiss 1971) with categories LCA/RCA/unsure for the artery and the five
  visibility scores as nominal categories; Cohen's kappa (unweighted, and quadratic-weighted
  for the ordinal visibility score on the scale 1-5). ``None`` where undefined (one reader,
  no common items, or all answers in one category).
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
from collections.abc import Sequence

import numpy as np
from scipy import stats

from medcloak.io.atomic import atomic_write_text
from medcloak.readers.db import ANSWERS_DB, ARTERY_ANSWERS, VISIBILITY, AnswerDB
from medcloak.readers.items import Item, read_reader_items, readers_dir

__all__ = ["export_answers", "summarise", "fleiss_kappa", "cohen_kappa", "wilson_interval", "t_interval"]

ANSWER_COLUMNS = (
    "reader", "item", "condition", "frame", "visibility", "artery", "artery_truth", "artery_correct",
    "stenosis", "stenosis_truth", "elapsed_ms", "created",
)
SUMMARY_COLUMNS = (
    "condition", "n_items", "n_readers", "n_answers",
    "visibility_mean", "visibility_ci_low", "visibility_ci_high",
    "artery_accuracy", "artery_ci_low", "artery_ci_high", "artery_cannot_tell",
    "stenosis_yes", "stenosis_no", "stenosis_unsure",
    "stenosis_accuracy", "stenosis_sensitivity", "stenosis_specificity",
    "agreement_items", "fleiss_artery", "fleiss_visibility",
    "cohen_artery", "cohen_visibility", "cohen_visibility_quadratic",
)
_SCORES = tuple(range(VISIBILITY[0], VISIBILITY[1] + 1))


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an (items, categories) table of rating counts.

    Parameters
    ----------
    counts : array-like of int, shape (N, K)
        ``counts[i, j]`` = number of raters who put item ``i`` in category ``j``; every row
        must sum to the same number of raters ``m >= 2``.

    Returns
    -------
    float or None
        ``(P_bar - P_e) / (1 - P_e)``; None if there are no items or ``P_e == 1`` (every
        rating in one category).

    References
    ----------
    J. L. Fleiss, "Measuring nominal scale agreement among many raters", Psychological
    Bulletin 76(5), 1971.

    Examples
    --------
    >>> round(fleiss_kappa([[2, 0], [0, 2], [1, 1]]), 4)
    0.3333
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] == 0:
        return None
    m = counts.sum(axis=1)
    if not np.all(m == m[0]) or m[0] < 2:
        raise ValueError("every item needs the same number (>= 2) of ratings")
    m = m[0]
    n_items = counts.shape[0]
    p_i = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    p_j = counts.sum(axis=0) / (n_items * m)
    p_e = float((p_j**2).sum())
    if math.isclose(p_e, 1.0):
        return None
    return float((p_i.mean() - p_e) / (1.0 - p_e))


def cohen_kappa(a: Sequence, b: Sequence, *, categories: Sequence, weights: str | None = None) -> float | None:
    """Cohen's kappa between two raters' answers on the same items.

    Parameters
    ----------
    a, b : sequences of equal length
        The two raters' answers, each a member of ``categories``.
    categories : sequence
        All categories, in scale order (the order matters only for weighted kappa).
    weights : {None, "linear", "quadratic"}
        Disagreement weights ``|i - j|`` or ``(i - j)**2`` on category indices; None = 0/1.

    Returns
    -------
    float or None
        ``1 - sum(w * O) / sum(w * E)`` (O observed, E chance-expected joint proportions);
        None when undefined (no items, or chance disagreement is zero).
    """
    if len(a) != len(b):
        raise ValueError("both raters must answer the same items")
    if not len(a):
        return None
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    obs = np.zeros((k, k))
    for x, y in zip(a, b):
        obs[index[x], index[y]] += 1
    obs /= obs.sum()
    exp = np.outer(obs.sum(axis=1), obs.sum(axis=0))
    i, j = np.indices((k, k))
    if weights is None:
        w = (i != j).astype(np.float64)
    elif weights == "linear":
        w = np.abs(i - j).astype(np.float64)
    elif weights == "quadratic":
        w = ((i - j) ** 2).astype(np.float64)
    else:
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    denom = float((w * exp).sum())
    if math.isclose(denom, 0.0, abs_tol=1e-15):
        return None
    return float(1.0 - (w * obs).sum() / denom)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; None when ``n == 0``."""
    if n == 0:
        return None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float] | None:
    """Two-sided Student-t interval of a mean; None with fewer than 2 values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    mean = float(x.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return (mean - half, mean + half)


def _agreement(rows: list[dict], readers: list[str]) -> dict:
    by_item: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_item.setdefault(r["item"], {})[r["reader"]] = r
    common = sorted(i for i, d in by_item.items() if len(readers) >= 2 and all(n in d for n in readers))
    out = {"agreement_items": len(common), "fleiss_artery": None, "fleiss_visibility": None,
           "cohen_artery": None, "cohen_visibility": None, "cohen_visibility_quadratic": None}
    if not common:
        return out
    art = np.array([[sum(by_item[i][n]["artery"] == c for n in readers) for c in ARTERY_ANSWERS] for i in common])
    vis = np.array([[sum(by_item[i][n]["visibility"] == s for n in readers) for s in _SCORES] for i in common])
    out["fleiss_artery"] = fleiss_kappa(art)
    out["fleiss_visibility"] = fleiss_kappa(vis)
    if len(readers) == 2:
        r1, r2 = readers
        a1 = [by_item[i][r1]["artery"] for i in common]
        a2 = [by_item[i][r2]["artery"] for i in common]
        v1 = [by_item[i][r1]["visibility"] for i in common]
        v2 = [by_item[i][r2]["visibility"] for i in common]
        out["cohen_artery"] = cohen_kappa(a1, a2, categories=ARTERY_ANSWERS)
        out["cohen_visibility"] = cohen_kappa(v1, v2, categories=_SCORES)
        out["cohen_visibility_quadratic"] = cohen_kappa(v1, v2, categories=_SCORES, weights="quadratic")
    return out


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _condition_summary(name: str, items: list[Item], rows: list[dict]) -> dict:
    readers = sorted({r["reader"] for r in rows})
    per_item: dict[str, list[int]] = {}
    for r in rows:
        per_item.setdefault(r["item"], []).append(r["visibility"])
    item_means = [float(np.mean(v)) for v in per_item.values()]
    ci = t_interval(item_means)
    n = len(rows)
    correct = sum(r["artery"] == r["artery_truth"] for r in rows)
    acc_ci = wilson_interval(correct, n)
    pos = [r for r in rows if r["stenosis_truth"]]
    neg = [r for r in rows if not r["stenosis_truth"]]
    sten_correct = sum(r["stenosis"] == ("yes" if r["stenosis_truth"] else "no") for r in rows)
    out = {
        "condition": name,
        "n_items": len(items),
        "n_readers": len(readers),
        "n_answers": n,
        "visibility_mean": float(np.mean(item_means)) if item_means else None,
        "visibility_ci_low": None if ci is None else ci[0],
        "visibility_ci_high": None if ci is None else ci[1],
        "artery_accuracy": _ratio(correct, n),
        "artery_ci_low": None if acc_ci is None else acc_ci[0],
        "artery_ci_high": None if acc_ci is None else acc_ci[1],
        "artery_cannot_tell": _ratio(sum(r["artery"] == "unsure" for r in rows), n),
        "stenosis_yes": sum(r["stenosis"] == "yes" for r in rows),
        "stenosis_no": sum(r["stenosis"] == "no" for r in rows),
        "stenosis_unsure": sum(r["stenosis"] == "unsure" for r in rows),
        "stenosis_accuracy": _ratio(sten_correct, n),
        "stenosis_sensitivity": _ratio(sum(r["stenosis"] == "yes" for r in pos), len(pos)),
        "stenosis_specificity": _ratio(sum(r["stenosis"] == "no" for r in neg), len(neg)),
    }
    out.update(_agreement(rows, readers))
    return out


def _joined(items: list[Item], answers: list[dict]) -> list[dict]:
    by_id = {it.id: it for it in items}
    rows = []
    for a in answers:
        it = by_id.get(a["item"])
        rows.append({
            "reader": a["reader"], "item": a["item"],
            "condition": "" if it is None else it.condition,
            "frame": "" if it is None else it.frame,
            "visibility": int(a["visibility"]), "artery": a["artery"],
            "artery_truth": "" if it is None else it.artery,
            "artery_correct": "" if it is None else int(a["artery"] == it.artery),
            "stenosis": a["stenosis"],
            "stenosis_truth": "" if it is None else int(it.stenosis),
            "elapsed_ms": a["elapsed_ms"], "created": a["created"],
        })
    return rows


def summarise(items: list[Item], answers: list[dict]) -> dict:
    """Summary of a study from its items and its answers (see the module docstring).

    Parameters
    ----------
    items : list of Item
        From :func:`medcloak.readers.items.read_reader_items`.
    answers : list of dict
        From :meth:`medcloak.readers.db.AnswerDB.all_answers` (keys reader, item, visibility,
        artery, stenosis, elapsed_ms, created).

    Returns
    -------
    dict
        ``{"n_items", "n_readers", "readers", "n_answers", "unknown_item_answers",
        "conditions": [per-condition dicts in items order], "all": dict}``; JSON-ready
        (undefined values are None).
    """
    rows = [r for r in _joined(items, answers) if r["condition"] != ""]
    conditions = list(dict.fromkeys(it.condition for it in items))
    per = [
        _condition_summary(c, [it for it in items if it.condition == c], [r for r in rows if r["condition"] == c])
        for c in conditions
    ]
    return {
        "n_items": len(items),
        "n_readers": len({a["reader"] for a in answers}),
        "readers": sorted({a["reader"] for a in answers}),
        "n_answers": len(answers),
        "unknown_item_answers": len(answers) - len(rows),
        "conditions": per,
        "all": _condition_summary("all", items, rows),
    }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell that a spreadsheet will not run as a formula (OWASP "CSV injection").

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    single quote, so ``=HYPERLINK(...)`` is shown as text; numbers are written as they are.

    >>> print(csv_cell('=HYPERLINK("http://x")'), csv_cell("-1"), csv_cell(-1), csv_cell("Dr A"))
    '=HYPERLINK("http://x") '-1 -1 Dr A
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(columns: Sequence[str], rows: list[dict]) -> str:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else csv_cell(r[k])) for k in columns})
    return buf.getvalue()


def export_answers(run_dir: str | os.PathLike) -> dict:
    """Write ``answers.csv``, ``summary.json`` and ``summary.csv`` under ``run_dir/readers``.

    Parameters
    ----------
    run_dir : path-like
        Study output folder holding ``readers/items.csv`` (and, once readers have answered,
        ``readers/answers.sqlite``; a missing database exports zero answers).

    Returns
    -------
    dict
        The summary written to ``summary.json`` (see :func:`summarise`).
    """
    base = readers_dir(run_dir)
    items = read_reader_items(run_dir)
    answers = AnswerDB(base / ANSWERS_DB).all_answers() if (base / ANSWERS_DB).exists() else []
    summary = summarise(items, answers)
    atomic_write_text(base / "answers.csv", _csv(ANSWER_COLUMNS, _joined(items, answers)))
    atomic_write_text(base / "summary.csv", _csv(SUMMARY_COLUMNS, summary["conditions"] + [summary["all"]]))
    atomic_write_text(base / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary

