"""The comparison report: the privacy-utility frontier of every scheme, and which one to use.

:func:`write_compare_report` writes, into the comparison folder ``OUT``:

``frontier.csv`` / ``frontier.json``
    one row per setting (:func:`medcloak.study.compare.frontier_rows`): view and stenosis
    accuracy on obfuscated frames (and on originals, same model family), T0 vessel Dice beside
    the prior's, the strongest reconstruction attack by SSIM gain and by re-identification;
``figures/frontier.png``
    view accuracy against T0 vessel Dice and against the strongest re-identification; stenosis
    accuracy in a third panel; originals and the no-knowledge prior as anchors; one sample
    obfuscated frame per setting;
``report.html``
    the table with each figure against its bar, a "which scheme" verdict, links to each setting's
    own study report.

Bars (issue [target]): view accuracy >= 0.90 and within 0.05 of originals; T0 Dice <= 0.30 and
<= prior + 0.05 (the location prior); every reconstruction attack's SSIM gain over the prior <= 0.05 and re-ID <= 0.10.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medcloak.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["write_compare_report", "frontier_figure", "verdict", "protects_sentence", "best_by_rule", "privacy_bars", "RULE", "BARS",
           "THREAT_WORDS"]

#: The target's bars (issue [target]).
BARS = {"view_acc": 0.90, "view_gap": 0.05, "t0_dice": 0.30, "t0_over_prior": 0.05, "d_ssim": 0.05, "reid": 0.10}


#: Each threat in plain words: who the attacker is (docs/threat-model.md has what each one knows).
THREAT_WORDS = {
    "T0": "a viewer of the released frames with a trained vessel finder (T0)",
    "T0-handmade": "a viewer with hand-made vessel filters (T0 floor)",
    "T1": "whoever obtains 10 leaked original/released pairs and trains an inverse network (T1)",
    "T1-secret": "whoever obtains a few leaked pairs and reads the key's secret off them (T1-secret)",
    "T2": "an attacker who knows the algorithm and owns other angiograms (T2)",
    "T3": "an attacker who knows the algorithm and owns only other kinds of images (T3)",
    "T4": "the cloud itself, from statistics of all the frames it holds (T4)",
    "jigsaw": "the cloud solving the block puzzle from all the frames it holds (jigsaw)",
    "matching": "the cloud matching token statistics to its own encoder (matching)",
}


#: How the default setting is chosen when no setting meets the whole target (README "Which scheme?").
RULE = ("Rule for the best point when none meets the target: among settings fitted without task labels that "
        "meet every privacy bar (direct view, reconstruction, re-identification), the highest view accuracy "
        "(ties: the smaller SSIM gain of the strongest attack)")


def best_by_rule(rows: Sequence[Mapping]) -> Mapping | None:
    """The setting :data:`RULE` picks, or None when no label-free setting meets the privacy bars."""
    ok = [r for r in rows if not r.get("uses_labels") and _num(r.get("view_acc")) is not None
          and all(verdict(r)[k] is True for k in ("direct view", "reconstruction", "re-identification"))]
    return max(ok, key=lambda r: (float(r["view_acc"]), -(_num(r.get("strongest_d_ssim")) or 0.0)), default=None)


def protects_sentence(row: Mapping) -> str:
    """What the setting protects against and what it does not, in plain words, from its attacks."""
    words = [THREAT_WORDS.get(t, t) for t in row.get("held") or []]
    bad = [THREAT_WORDS.get(t, t) for t in row.get("broken_by") or []]
    out = []
    if words:
        out.append("Held off " + "; ".join(words) + ".")
    if bad:
        out.append("Does NOT protect against " + "; ".join(bad) + ".")
    v = verdict(row)
    if v["useful"] is False:
        out.append("The cloud's model did not reach the utility bar on these frames.")
    out.append("Obfuscation is not encryption: attacks not run here may do better.")
    return " ".join(out)


def _num(v) -> float | None:
    if v is None or v == "":
        return None
    f = float(v)
    return None if math.isnan(f) else f


def privacy_bars(*, dice: float | None = None, prior_dice: float | None = None, d_ssim: float | None = None,
                 reid: float | None = None) -> dict[str, bool | None]:
    """The three privacy bars of :data:`BARS`: True (met), False (missed), None (not given). Vessel
    Dice against the absolute bar and the prior; SSIM gain over the prior; re-identification top-1."""
    return {
        "direct view": None if dice is None else dice <= BARS["t0_dice"] and dice <= (prior_dice or 0) + BARS["t0_over_prior"],
        "reconstruction": None if d_ssim is None else d_ssim <= BARS["d_ssim"],
        "re-identification": None if reid is None else reid <= BARS["reid"],
    }


def verdict(row: Mapping) -> dict[str, bool | None]:
    """Each bar of :data:`BARS` for one frontier row: True (met), False (missed) or None (not measured)."""
    acc, orig, dice, prior = (_num(row.get(k)) for k in ("view_acc", "view_acc_original", "t0_dice", "prior_dice"))
    d_ssim, reid = _num(row.get("strongest_d_ssim")), _num(row.get("strongest_reid"))
    out = {
        "useful": None if acc is None or orig is None else acc >= BARS["view_acc"] and orig - acc <= BARS["view_gap"],
        **privacy_bars(dice=dice, prior_dice=prior, d_ssim=d_ssim, reid=reid),
    }
    out["all"] = all(v is True for v in out.values()) and not row.get("uses_labels")
    return out


def _sample(out: Path, slug: str) -> np.ndarray | None:
    p = out / "settings" / slug / "stages" / "attacks" / "images.npz"
    try:
        with np.load(p, allow_pickle=False) as z:
            img = np.asarray(z["img_obfuscated"][0], np.float32)
    except (OSError, KeyError, ValueError):
        return None
    lo, hi = float(np.min(img)), float(np.max(img))
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def frontier_figure(rows: Sequence[Mapping], out: Path, path: Path) -> Path:
    """Three panels (view accuracy vs T0 Dice, vs strongest re-ID; stenosis accuracy) and thumbnails."""
    from matplotlib.figure import Figure

    n = len(rows)
    fig = Figure(figsize=(16, 5.2 + 1.6 * math.ceil(n / 8)), layout="constrained")
    grid = fig.add_gridspec(2, 8, height_ratios=[3.2, 1.4 * math.ceil(n / 8)])
    axes = [fig.add_subplot(grid[0, 0:3]), fig.add_subplot(grid[0, 3:6]), fig.add_subplot(grid[0, 6:8])]
    colours = {r["label"]: c for r, c in zip(rows, [f"C{i % 10}" for i in range(n)])}
    for ax, key, xlabel, bar in ((axes[0], "t0_dice", "T0 direct-view vessel Dice (lower = more private)", BARS["t0_dice"]),
                                 (axes[1], "strongest_reid", "strongest attack: re-identification top-1", BARS["reid"])):
        ax.axhspan(BARS["view_acc"], 1.02, xmin=0, xmax=1, color="#e8f5e9", zorder=0)
        ax.axvline(bar, color="#2e7d32", ls="--", lw=1)
        for r in rows:
            x, y = _num(r.get(key)), _num(r.get("view_acc"))
            if x is None or y is None:
                continue
            lo, hi = _num(r.get("view_acc_low")), _num(r.get("view_acc_high"))
            xlo, xhi = _num(r.get(f"{key}_min")), _num(r.get(f"{key}_max"))  # the range over victim keys
            # the mean of equal values can land an ulp outside their range: clamp (matplotlib refuses < 0)
            xerr = None if xlo is None or xhi is None else [[max(x - xlo, 0.0)], [max(xhi - x, 0.0)]]
            ax.errorbar([x], [y], xerr=xerr, yerr=[[y - (lo or y)], [(hi or y) - y]], fmt="o", color=colours[r["label"]],
                        mfc="white" if r.get("uses_labels") else colours[r["label"]], capsize=2, label=r["label"])
        prior = next((_num(r.get("prior_dice" if key == "t0_dice" else "prior_reid")) for r in rows), None)
        if prior is not None:
            ax.axvline(prior, color="grey", lw=1, ls=":")
            ax.text(prior, 0.42, " prior", color="grey", fontsize=8)
        orig = [_num(r.get("view_acc_original")) for r in rows if _num(r.get("view_acc_original")) is not None]
        if orig:
            ax.axhline(float(np.mean(orig)), color="black", lw=1, ls="-.")
            ax.text(0.0, float(np.mean(orig)) + 0.01, "originals", fontsize=8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(0.4, 1.04)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("view accuracy, obfuscated (95 % CI)", fontsize=9)
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7, loc="lower right")
    ax = axes[2]
    ys = np.arange(n)
    for i, r in enumerate(rows):
        a, o = _num(r.get("stenosis_acc")), _num(r.get("stenosis_acc_original"))
        if a is not None:
            ax.barh(i, a, color=colours[r["label"]])
        if o is not None:
            ax.plot([o], [i], "k|", ms=12)
    ax.set_yticks(ys, [r["label"] for r in rows], fontsize=7)
    ax.axvline(0.5, color="grey", ls=":")
    ax.set_xlim(0, 1)
    ax.set_xlabel("stenosis accuracy (bar: obfuscated; |: originals)", fontsize=9)
    for i, r in enumerate(rows):
        img = _sample(out, r["slug"])
        sub = fig.add_subplot(grid[1, i % 8]) if i < 8 else None
        if sub is None:
            break
        if img is not None:
            sub.imshow(img if img.ndim == 2 else img.reshape(img.shape[0], -1), cmap="gray", interpolation="nearest")
        sub.set_title(r["label"], fontsize=7)
        sub.set_xticks([])
        sub.set_yticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _f(v, digits: int = 3) -> str:
    v = _num(v)
    return "-" if v is None else f"{v:.{digits}f}"


def _ranged(r: Mapping, key: str) -> str:
    """``mean [min-max over n keys]`` of a frontier figure scored over victim keys."""
    lo, hi, n = r.get(f"{key}_min"), r.get(f"{key}_max"), r.get(f"{key}_keys")
    if _num(r.get(key)) is None or lo is None or not n or int(n) < 2:
        return _f(r.get(key))
    return f"{_f(r.get(key))} <small>[{_f(lo, 2)}&ndash;{_f(hi, 2)}, {int(n)} keys]</small>"


def _mark(ok: bool | None) -> str:
    return "<td>-</td>" if ok is None else ("<td class=good>meets</td>" if ok else "<td class=bad>misses</td>")


def write_compare_report(out: Path, config, rows: Sequence[Mapping]) -> Path:
    """Write ``frontier.csv``, ``frontier.json``, ``figures/frontier.png`` and ``report.html`` in ``out``."""
    out = Path(out)
    (out / "figures").mkdir(exist_ok=True)
    cols = list(rows[0]) if rows else []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None else (json.dumps(r[c]) if isinstance(r[c], list) else r[c]) for c in cols])
    atomic_write_text(out / "frontier.csv", buf.getvalue())
    atomic_write_text(out / "frontier.json", json.dumps({"config": config.to_dict(), "bars": BARS, "rows": list(rows)},
                                                        indent=2, default=str) + "\n")
    fig = frontier_figure(rows, out, out / "figures" / "frontier.png")
    import base64

    uri = "data:image/png;base64," + base64.b64encode(fig.read_bytes()).decode()
    e = html.escape
    p = ["<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>medcloak comparison</title><style>"
         "body{font-family:Helvetica,Arial,sans-serif;max-width:1200px;margin:24px auto;color:#1d2330}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #d5d9e0;padding:4px 7px}"
         "th{background:#eef0f4}.good{color:#1b5e20;font-weight:600}.bad{color:#b71c1c;font-weight:600}"
         ".banner{background:#fff6d6;border:2px solid #e0b400;padding:10px}</style></head><body>",
         f"<h1>medcloak comparison: {e(config.name)}</h1>",
         f"<p class=banner>Data provenance: <b>{e(config.base.provenance.upper())}</b>, {config.base.n_frames} frames "
         f"{config.base.size}x{config.base.size}, one shared key for every setting. Obfuscation is not encryption: "
         "each row says what was measured against which attack.</p>",
         "<h2>Which scheme</h2>"]
    good = [r for r in rows if verdict(r)["all"]]
    if good:
        p.append("<p class=good>Meets every bar: " + ", ".join(e(r["label"]) for r in good) + ".</p>")
    else:
        p.append("<p class=bad>No setting meets every bar of the target (useful AND private against every attack "
                 "run here).</p>")
    b = best_by_rule(rows)
    if b is not None:
        p.append(f"<p>{e(RULE)}: <b>{e(b['label'])}</b> (view accuracy {_f(b['view_acc'])}, T0 Dice "
                 f"{_f(b['t0_dice'])}, strongest attack's SSIM gain {_f(b['strongest_d_ssim'])}).</p>")
    else:
        p.append("<p>No setting fitted without labels meets the privacy bars, so the rule picks none here.</p>")
    p.append("<table><tr><th>setting</th><th>scheme</th><th>cloud model</th><th>view acc (orig)</th>"
             "<th>useful</th><th>stenosis acc (orig)</th><th>T0 Dice (prior)</th><th>direct view</th>"
             "<th>strongest SSIM attack: SSIM (gain)</th><th>reconstruction</th><th>strongest re-ID</th>"
             "<th>re-identification</th><th>report</th></tr>")
    for r in rows:
        v = verdict(r)
        p.append(f"<tr><td>{e(r['label'])}{' (uses labels)' if r.get('uses_labels') else ''}</td><td>{e(r['scheme'])} "
                 f"<code>{e(r['options'])}</code></td><td>{e(r['classifier'])}</td>"
                 f"<td>{_f(r['view_acc'])} [{_f(r['view_acc_low'])}, {_f(r['view_acc_high'])}] "
                 f"({_f(r['view_acc_original'])})</td>{_mark(v['useful'])}"
                 f"<td>{_f(r['stenosis_acc'])} ({_f(r['stenosis_acc_original'])})</td>"
                 f"<td>{_ranged(r, 't0_dice')} ({_f(r['prior_dice'])})</td>{_mark(v['direct view'])}"
                 f"<td>{e(str(r.get('strongest_ssim_attack') or '-'))}: {_ranged(r, 'strongest_ssim')} "
                 f"({_f(r['strongest_d_ssim'])})</td>{_mark(v['reconstruction'])}"
                 f"<td>{e(str(r.get('strongest_reid_attack') or '-'))}: {_ranged(r, 'strongest_reid')}</td>"
                 f"{_mark(v['re-identification'])}<td><a href='settings/{e(r['slug'])}/report.html'>study</a></td></tr>")
    p.append("</table>")
    p.append("<h3>What each setting protects against</h3><ul>")
    for r in rows:
        p.append(f"<li><b>{e(r['label'])}</b>: {e(protects_sentence(r))}</li>")
    p.append("</ul>")
    p.append(f"<p>Bars: view accuracy >= {BARS['view_acc']} and within {BARS['view_gap']} of originals; T0 Dice <= "
             f"{BARS['t0_dice']} and <= prior + {BARS['t0_over_prior']}; strongest reconstruction SSIM gain over the "
             f"prior <= {BARS['d_ssim']}; re-identification top-1 <= {BARS['reid']}. A row counts only with the "
             "attacks listed in its study report; a scheme's row means little until the attack made for it ran. "
             "Figures attacked under several victim keys are the mean over keys, their range in brackets (and as "
             "horizontal bars in the figure); the bars are judged on the mean. T0's prior is the location prior "
             "(the attacker's mean vessel mask).</p>")
    p.append(f"<figure><img src='{uri}' style='max-width:100%'><figcaption>The frontier: each point one setting "
             "(hollow: fitted with task labels); the green band is the utility bar, the dashed line the privacy "
             "bar, the dotted line the no-knowledge prior, the dash-dot line the originals' accuracy.</figcaption>"
             "</figure></body></html>")
    atomic_write_text(out / "report.html", "\n".join(p) + "\n")
    return out / "report.html"
