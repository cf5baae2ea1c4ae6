"""The study's report folder: ``report.html`` (self-contained), ``metrics.json``, CSV tables, PNGs.

:func:`write_report` writes, into the study folder ``OUT`` (every file atomically):

``report.html``
    one self-contained page (inline CSS, every figure a ``data:image/png;base64`` URI, no
    script, no external resource) stating the data's provenance, the configuration, the
    versions, the key's fingerprint (never the key), the SSIM/PSNR settings, utility, attacks,
    overhead and -- when ``OUT/readers/summary.json`` exists -- the expert readers' summary;
``metrics.json``
    every number of the page (see :func:`build_metrics`);
``utility.csv``, ``attacks.csv``, ``overhead.csv``
    the tables;
``config.toml``
    the configuration, readable back by ``medcloak study --preset OUT/config.toml``;
``figures/*.png``
    the figures of :mod:`medcloak.report.figures`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import platform
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medcloak.io.atomic import atomic_write_text
from medcloak.report import figures as F
from medcloak.report.results import StudyResults
from medcloak.study.stages import jsonable

__all__ = ["write_report", "build_metrics", "versions", "METRIC_SETTINGS", "THREAT_KNOWS", "FIGURES", "EMBEDDED"]

#: The similarity settings every SSIM/PSNR number of the report uses (from :mod:`medcloak.metrics`).
METRIC_SETTINGS = {
    "ssim": "skimage.metrics.structural_similarity on float frames in [0, 1] with data_range=1.0, Gaussian "
            "window sigma=1.5 (11x11, truncate 3.5), K1=0.01, K2=0.03, population covariance "
            "(Wang et al. 2004); mean over the valid region of each frame, then over frames",
    "psnr": "10*log10(1/MSE) per frame with data_range=1.0 on [0, 1] frames (skimage "
            "peak_signal_noise_ratio), averaged in dB over frames; identical frames count as 100 dB",
    "vessel_dice": "Dice of medcloak.metrics.vessel_map (fixed log-contrast top-hat thresholds) of the "
                   "reconstruction against the vessel masks, catheter pixels ignored; T0: Dice of its "
                   "thresholded segmentation",
    "reid_top1": "share of reconstructions whose most SSIM-similar test original is their own frame",
}

#: What each row's attacker knows (threat-model names of docs/threat-model.md).
THREAT_KNOWS = {
    "obfuscated": "nothing: the obfuscated frame itself, scored as a reconstruction",
    "prior": "nothing: its own mean angiogram (no-knowledge baseline)",
    "T0": "the algorithm; trains a vessel segmenter on its own frames under many own keys",
    "T0-handmade": "hand-made filters on the obfuscated frame (floor of T0)",
    "T1": "n leaked (original, obfuscated) pairs under the victim's key and VAE",
    "T2": "the algorithm, its own angiograms, its own VAE and key",
    "T3": "the algorithm and its own non-angiography images",
    "T4": "only the victim's obfuscated frames (ciphertext-only statistics)",
}

#: Figure files (under ``OUT/figures``) and their captions.
FIGURES = {
    "sample-grid.png": "Test frames (rows) as the owner has them, after the VAE, as the cloud receives them "
                       "(obfuscated), and as each attacker reconstructs them. Column titles: mean SSIM against "
                       "the original over the rows shown (T0: Dice of its vessel map).",
    "training-curves.png": "Training curves: the owner's VAE, and the cloud's classifier on original vs "
                           "obfuscated frames with one recipe.",
    "roc.png": "Test ROC curves of the classifier trained on original vs on obfuscated frames.",
    "privacy-utility.png": "Privacy vs utility of this configuration (red, 95 % CI of accuracy); grey points: "
                           "utility-grid settings when the configuration names a grid CSV.",
    "t1-curve.png": "Known-plaintext attack T1 over the number of leaked pairs, beside the prior and the "
                    "ciphertext-only attack T4.",
    "overhead.png": "Measured costs of this run.",
}

#: Figures embedded in report.html (the overhead table is there as an HTML table instead).
EMBEDDED = tuple(f for f in FIGURES if f != "overhead.png")

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:1160px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #e3e6eb;
padding-bottom:4px}h3{font-size:16px;margin:20px 0 6px}
.sub{color:#5a6270;margin:0 0 16px}
.banner{padding:12px 16px;border-radius:6px;margin:12px 0;font-size:15px;line-height:1.4}
.synthetic{background:#fff6d6;border:2px solid #e0b400}.real{background:#fde3e3;border:2px solid #c62828}
.secret{background:#eef3ff;border:1px solid #7a95d6}
.verdict{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin:12px 0}
.card{border:1px solid #dde1e7;border-radius:6px;padding:10px 14px}.card h3{margin-top:4px}
.bad{color:#b71c1c;font-weight:600}.good{color:#1b5e20;font-weight:600}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.hl td{background:#fff0f0}
figure{margin:12px 0 20px}figure img{max-width:100%;height:auto;border:1px solid #e3e6eb}
figcaption{font-size:13px;color:#4a5160;margin-top:4px}
code{background:#f0f1f4;padding:1px 4px;border-radius:3px;font-size:12.5px}
.kv td:first-child{font-weight:600;white-space:nowrap}
.small{font-size:12.5px;color:#5a6270}
.row{display:flex;gap:24px;align-items:flex-start}.row .grow{flex:1 1 auto}.row .side{flex:0 0 400px}
"""


def versions() -> dict:
    """medcloak, torch, numpy, Python versions and the platform."""
    import torch

    from medcloak import __version__

    return {"medcloak": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


# ============================================================================ metrics / tables


def _metric(met: Mapping, name: str) -> dict:
    m = met.get(name) or {}
    return {"value": m.get("value"), "ci_low": m.get("ci_low"), "ci_high": m.get("ci_high")}


def build_metrics(*, config, config_hash: str, key: Mapping, stages: Mapping, utility: Mapping, attacks: Mapping,
                  readers: Mapping | None, device: str, threads: int,
                  stage_seconds: Mapping[str, float] | None = None) -> dict:
    """The ``metrics.json`` document.

    Keys: ``study`` (name, created, config hash, device, threads), ``versions``, ``config``,
    ``key`` (fingerprint and its source only), ``model_fingerprint``, ``data`` (provenance, sizes,
    splits), ``metric_settings``, ``obfuscation`` (SSIM/PSNR of the test frames, timing),
    ``utility`` (``original`` / ``obfuscated``: accuracy, roc_auc, f1, precision, recall with 95 %
    CIs, epochs; ``recipe``; ``classifier``; ``epoch_time_ratio``), ``attacks`` (``rows`` with
    every column of :data:`medcloak.attacks.runner.COLUMNS`, ``meta``), ``overhead`` (rows),
    ``readers`` (the readers' summary or None), ``stage_seconds``.
    """
    util: dict = {"recipe": utility["recipe"], "classifier": utility["classifier"], "classes": utility["classes"],
                  "same_recipe_object": utility.get("same_recipe_object", False)}
    for side in ("original", "obfuscated"):
        met = utility[side]["metrics"]
        util[side] = {m: _metric(met, m) for m in ("accuracy", "roc_auc", "f1", "precision", "recall")}
        util[side].update(n_test=met.get("n"), confusion=met.get("confusion"), epochs=utility[side]["epochs"],
                          best_epoch=utility[side]["best_epoch"],
                          mean_epoch_seconds=utility[side]["mean_epoch_seconds"])
    util["epoch_time_ratio"] = stages["utility"].get("epoch_time_ratio")
    if utility.get("stenosis"):
        st = utility["stenosis"]
        util["stenosis"] = {side: {m: _metric(st[side]["metrics"], m) for m in ("accuracy", "roc_auc")}
                            for side in ("original", "obfuscated")}
        util["stenosis"]["n_test"] = st["original"]["metrics"].get("n")
    else:
        util["stenosis"] = None
    return jsonable({
        "study": {"name": config.name, "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
                  "config_hash": config_hash, "device": device, "torch_threads": threads},
        "versions": versions(),
        "config": config.to_dict(),
        "key": {"fingerprint": key["fingerprint"], "short_fingerprint": key["short_fingerprint"],
                "source": key["source"]},
        "model_fingerprint": stages["fit"].get("model_fingerprint"),
        "data": stages["data"],
        "metric_settings": METRIC_SETTINGS,
        "obfuscation": {**stages["obfuscate"], "config": stages["fit"].get("obfuscation"),
                        "vae_fit_seconds": stages["fit"].get("fit_seconds")},
        "utility": util,
        "attacks": {"rows": attacks["rows"], "meta": attacks.get("meta", {})},
        "overhead": {"rows": stages["overhead"]["rows"]},
        "readers": readers,
        "stage_seconds": dict(stage_seconds or {}),
    })


def _csv(rows: Sequence[Sequence]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in r])
    return buf.getvalue()


def _utility_csv(m: Mapping) -> str:
    head = ["frames", "n_test", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "roc_auc", "roc_auc_ci_low",
            "roc_auc_ci_high", "f1", "epochs", "best_epoch", "mean_epoch_seconds"]
    rows = [head]
    for side in ("original", "obfuscated"):
        u = m["utility"][side]
        rows.append([side, u["n_test"], u["accuracy"]["value"], u["accuracy"]["ci_low"], u["accuracy"]["ci_high"],
                     u["roc_auc"]["value"], u["roc_auc"]["ci_low"], u["roc_auc"]["ci_high"], u["f1"]["value"],
                     u["epochs"], u["best_epoch"], u["mean_epoch_seconds"]])
    return _csv(rows)


def _attacks_csv(attacks: Mapping) -> str:
    cols = attacks.get("columns") or list(attacks["rows"][0])
    return _csv([cols] + [[r.get(c) for c in cols] for r in attacks["rows"]])


def _overhead_csv(rows: Sequence[Mapping]) -> str:
    return _csv([["figure", "value", "unit", "note"]] + [[r["figure"], r["value"], r["unit"], r["note"]] for r in rows])


# ============================================================================ HTML helpers


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _fr(r: Mapping, key: str, digits: int = 3) -> str:
    """``mean (min-max)`` for rows scored over several victim keys, else the value alone."""
    lo, hi = r.get(f"{key}_min"), r.get(f"{key}_max")
    if (r.get("n_keys") or 1) > 1 and lo is not None and hi is not None and r.get(key) is not None:
        return f"{_f(r[key], digits)} ({_f(lo, digits)}–{_f(hi, digits)})"
    return _f(r.get(key), digits)


def _f(v, digits: int = 3) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        x = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not np.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


def _ci(m: Mapping) -> str:
    if m.get("value") is None:
        return "–"
    if m.get("ci_low") is None:
        return _f(m["value"])
    return f"{_f(m['value'])} <span class=small>[{_f(m['ci_low'])}, {_f(m['ci_high'])}]</span>"


_NUMERIC = re.compile(r"^\s*(?:[-–−]?\d[\d.,]*(?:\s*%|\s*\(\d+\))?\s*(?:<span|$)|–\s*$)")


def _table(head: Sequence[str], rows: Sequence[Sequence], *, cls: str = "",
           highlight: Sequence[bool] | None = None) -> str:
    """An HTML table; cells already escaped/formatted. Numeric cells are right-aligned (not in ``kv``)."""
    out = [f"<table class='{cls}'><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        tr = "<tr class=hl>" if highlight and highlight[i] else "<tr>"
        out.append(tr + "".join(f"<td class=n>{c}</td>" if cls != "kv" and j and _NUMERIC.match(str(c))
                                else f"<td>{c}</td>" for j, c in enumerate(r)) + "</tr>")
    return "".join(out) + "</tbody></table>"


def _img(path: Path, caption: str, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _generic(value, depth: int = 0) -> str:
    """Render any JSON value as tables (dict of scalars -> key/value; dict of dicts -> grid)."""
    if isinstance(value, Mapping):
        scalars = {k: v for k, v in value.items() if not isinstance(v, (Mapping, list))}
        nested = {k: v for k, v in value.items() if isinstance(v, (Mapping, list))}
        parts = []
        if scalars:
            parts.append(_table(["", "value"], [[_e(k), _f(v) if not isinstance(v, str) else _e(v)]
                                                for k, v in scalars.items()], cls="kv"))
        for k, v in nested.items():
            parts.append(f"<h3>{_e(k)}</h3>" + _generic(v, depth + 1))
        return "".join(parts)
    if isinstance(value, list):
        if value and all(isinstance(r, Mapping) for r in value):
            cols = list(dict.fromkeys(c for r in value for c in r))
            return _table(cols, [[_f(r.get(c)) if not isinstance(r.get(c), (str, Mapping, list)) else
                                  _e(r.get(c) if isinstance(r.get(c), str) else json.dumps(r.get(c)))
                                  for c in cols] for r in value])
        return f"<code>{_e(json.dumps(value))}</code>"
    return _e(value)


def _readers_table(summary: Mapping) -> str:
    """Mean visibility / artery accuracy / kappa per condition, then any further keys as tables."""
    conds = summary.get("conditions") if isinstance(summary, Mapping) else None
    if isinstance(conds, Mapping) and all(isinstance(v, Mapping) for v in conds.values()):
        rest = {k: v for k, v in summary.items() if k != "conditions"}
        cols = list(dict.fromkeys(c for v in conds.values() for c in v if not isinstance(v[c], (Mapping, list))))
        table = _table(["condition", *cols], [[_e(name), *(_f(v.get(c)) if not isinstance(v.get(c), str)
                                                             else _e(v.get(c)) for c in cols)]
                                               for name, v in conds.items()])
        return table + _generic(rest)
    return _generic(summary)


# ============================================================================ verdicts


def _row_name(r: Mapping) -> str:
    """``T1 n=10``, ``T4 <variant>``, or the threat alone (rows of one threat told apart)."""
    return r["threat"] + (f" {r['variant']}" if r["threat"] in ("T1", "T4") and r.get("variant") else "")


def _at_risk(rows: Sequence[Mapping], margin: float = 0.05) -> list[tuple[str, str]]:
    """Attacks that beat the prior by more than ``margin`` on vessel Dice, re-ID top-1 or SSIM."""
    out = []
    for r in rows:
        if r["threat"] not in ("T0", "T1", "T2", "T3", "T4"):
            continue
        why = []
        for key, label in (("d_vessel_dice", "vessel Dice"), ("d_reid_top1", "re-ID"), ("d_ssim", "SSIM")):
            v = r.get(key)
            if v is not None and np.isfinite(v) and v > margin:
                why.append(f"{label} +{v:.2f}")
        if why:
            out.append((_row_name(r), ", ".join(why)))
    return out


def _risk_by_threat(rows: Sequence[Mapping], margin: float = 0.05) -> list[str]:
    """One phrase per threat that beats the prior: its largest gains over the rows (settings) of that threat."""
    out = []
    for threat in ("T0", "T1", "T2", "T3", "T4"):
        mine = [r for r in rows if r["threat"] == threat]
        gains = []
        for key, label in (("d_vessel_dice", "vessel Dice"), ("d_reid_top1", "re-ID top-1"), ("d_ssim", "SSIM")):
            vals = [r[key] for r in mine if r.get(key) is not None and np.isfinite(r[key])]
            if vals and max(vals) > margin:
                gains.append(f"{label} {'up to ' if len(vals) > 1 else ''}+{max(vals):.2f}")
        if gains:
            n = f", {len(mine)} settings" if len(mine) > 1 else ""
            out.append(f"<b>{_e(threat)}</b> ({_e(', '.join(gains))}{_e(n)})")
    return out


def _best(rows: Sequence[Mapping], key: str) -> Mapping | None:
    cand = [r for r in rows if r["threat"] in ("T0", "T1", "T2", "T3", "T4") and r.get(key) is not None]
    return max(cand, key=lambda r: r[key]) if cand else None


# ============================================================================ the report


def write_report(out: Path, results: StudyResults) -> list[str]:
    """Write the report folder's files (see the module docstring); return their paths relative to ``out``.

    Parameters
    ----------
    out : Path
        The study folder.
    results : StudyResults
        What the study produced.
    """
    r = results
    config, stages, utility, attacks = r.config, r.stages, r.utility, r.attacks
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    metrics = build_metrics(config=config, config_hash=r.config_hash, key=r.key, stages=stages, utility=utility,
                            attacks=attacks, readers=r.readers, device=r.device, threads=r.threads,
                            stage_seconds=r.stage_seconds)
    rows = metrics["attacks"]["rows"]

    # ---- figures
    grid_images = dict(r.images)
    if r.t0_map is not None:
        grid_images["T0"] = r.t0_map
    if r.prior is not None:
        grid_images["prior"] = r.prior
    F.sample_grid(grid_images, figdir / "sample-grid.png", masks=r.masks, n_frames=config.figure_frames)
    F.training_curves(utility, r.history, figdir / "training-curves.png")
    F.roc_curves(utility, figdir / "roc.png")
    t0 = next((r for r in rows if r["threat"] == "T0"), None)
    prior_rows = [r for r in rows if r["threat"] == "prior"]  # the location prior is the vessel-Dice baseline
    prior_row = next((r for r in prior_rows if r.get("variant") == "location prior"), prior_rows[0] if prior_rows else None)
    obf_acc = metrics["utility"]["obfuscated"]["accuracy"]
    point = {"accuracy": obf_acc["value"], "ci_low": obf_acc["ci_low"], "ci_high": obf_acc["ci_high"],
             "original_accuracy": metrics["utility"]["original"]["accuracy"]["value"],
             "t0_dice": t0["vessel_dice"] if t0 else None,
             "ssim": metrics["obfuscation"].get("test_ssim_original_obfuscated"),
             "prior_dice": prior_row["vessel_dice"] if prior_row else None,
             "label": f"this study ({config.setting_label})"}
    F.privacy_utility(point, figdir / "privacy-utility.png", grid_rows=_grid_rows(config.utility_grid_csv))
    F.t1_curve(rows, figdir / "t1-curve.png")
    F.overhead_table(metrics["overhead"]["rows"], figdir / "overhead.png")

    # ---- tables and metrics
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out / "utility.csv", _utility_csv(metrics))
    atomic_write_text(out / "attacks.csv", _attacks_csv(attacks))
    atomic_write_text(out / "overhead.csv", _overhead_csv(metrics["overhead"]["rows"]))
    atomic_write_text(out / "config.toml", config.to_toml())

    # ---- html
    atomic_write_text(out / "report.html", _html(out, config, metrics, point, stages))
    return (["report.html", "metrics.json", "utility.csv", "attacks.csv", "overhead.csv", "config.toml"]
            + [f"figures/{name}" for name in FIGURES])


def _grid_rows(path: str) -> list[dict] | None:
    if not path:
        return None
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return None


def _html(out: Path, config, m: Mapping, point: Mapping, stages: Mapping) -> str:
    figdir = out / "figures"
    data, util, rows = m["data"], m["utility"], m["attacks"]["rows"]
    synthetic = data["provenance"] == "semi-synthetic"
    p: list[str] = []
    p.append("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             "<meta name=viewport content='width=device-width, initial-scale=1'>"
             f"<title>medcloak study report: {_e(config.name)}</title><style>{_CSS}</style></head><body><main>")
    p.append(f"<h1>medcloak study report: {_e(config.name)}</h1>")
    what = ("keyed VAE + non-bijective intensity mapping (Popescu et al. 2022)" if config.scheme == "paper"
            else f"{config.setting_label}")
    p.append(f"<p class=sub>Scheme <b>{_e(config.scheme)}</b>: {_e(what)}, measured end to end. "
             f"Made {_e(m['study']['created'])} with medcloak {_e(m['versions']['medcloak'])}; "
             f"configuration hash <code>{_e(m['study']['config_hash'][:16])}</code>.</p>")
    if synthetic:
        p.append("<div class='banner synthetic'><b>Data provenance: SEMI-SYNTHETIC.</b> Every frame in this report "
                 "was generated by <code>medcloak.synth</code> (simulated coronary trees projected over radiograph "
                 "backgrounds); no patient data was used. The numbers describe the method on these frames, "
                 f"not on real angiograms. Source: <code>{_e(data['source'])}</code>.</div>")
    else:
        p.append("<div class='banner real'><b>Data provenance: REAL data</b> from "
                 f"<code>{_e(data['source'])}</code>. This report shows frames derived from patient images: keep it "
                 f"inside the hospital like the data itself. Vessel masks: {_e(data.get('masks', ''))}.</div>")
    p.append("<div class='banner secret'><b>Key:</b> fingerprint "
             f"<code>{_e(m['key']['short_fingerprint'])}</code> (<code>{_e(m['key']['fingerprint'])}</code>), "
             f"{_e(m['key']['source'])}. The key itself is not in this report. The folder <code>secret/</code> "
             "(key and fitted VAE model) must never leave the hospital: whoever holds both can re-create the "
             f"obfuscation. Model fingerprint <code>{_e(str(m.get('model_fingerprint'))[:16])}</code>.</div>")

    # ---- verdict
    o, b = util["original"], util["obfuscated"]
    risk = _at_risk(rows)
    best_dice, best_reid = _best(rows, "vessel_dice"), _best(rows, "reid_top1")
    p.append("<h2>Summary: is it useful, and is it private?</h2><div class=verdict>")
    drop = None if o["accuracy"]["value"] is None or b["accuracy"]["value"] is None else \
        o["accuracy"]["value"] - b["accuracy"]["value"]
    useful = b["accuracy"]["ci_low"] is not None and b["accuracy"]["ci_low"] > 0.5
    p.append("<div class=card><h3>Utility (cloud classifier, LCA vs RCA)</h3>"
             f"<p>Original frames: accuracy {_ci(o['accuracy'])}<br>Obfuscated frames: accuracy {_ci(b['accuracy'])}"
             f"<br>Difference: {_f(drop)}.</p><p class={'good' if useful else 'bad'}>"
             + ("The classifier learns from obfuscated frames (95 % CI above chance)." if useful else
                "The classifier does NOT learn reliably from obfuscated frames (95 % CI reaches chance, 0.5).")
             + "</p></div>")
    p.append("<div class=card><h3>Privacy (attacks vs the no-knowledge prior)</h3><p>")
    if best_dice is not None:
        p.append(f"Best vessel recovery: {_e(best_dice['threat'])} {_e(best_dice.get('variant') or '')} "
                 f"Dice {_f(best_dice['vessel_dice'])} (prior {_f(best_dice.get('prior_vessel_dice'))}).<br>")
    if best_reid is not None:
        p.append(f"Best re-identification: {_e(best_reid['threat'])} {_e(best_reid.get('variant') or '')} "
                 f"top-1 {_f(best_reid['reid_top1'])} (prior {_f(best_reid.get('prior_reid_top1'))}).<br>")
    p.append(f"SSIM(original, obfuscated) = {_f(m['obfuscation'].get('test_ssim_original_obfuscated'))}: "
             "low similarity alone does not mean privacy.</p>")
    if risk:
        p.append("<p class=bad>Not private against: " + "; ".join(_risk_by_threat(rows)) + ".</p>")
    else:
        p.append("<p class=good>No attack run here beat the prior by more than 0.05 on vessel Dice, re-ID or SSIM "
                 "(at this attacker budget; stronger attackers may do better).</p>")
    p.append("</div></div>")
    p.append(_img(figdir / "sample-grid.png", FIGURES["sample-grid.png"], "sample grid"))

    # ---- utility
    p.append("<h2>Utility: the cloud's classifier, original vs obfuscated frames</h2>")
    p.append(f"<p>One <code>Recipe</code> object trained both classifiers ({_e(util['classifier'].get('model'))} "
             f"network; at most {util['recipe']['max_epochs']} epochs, early stopping on validation loss with "
             f"patience {util['recipe']['patience']}, AdamW lr {util['recipe']['lr']}, batch "
             f"{util['recipe']['batch_size']}, shift augmentation only). Test metrics with 95 % bootstrap CIs over "
             f"{o['n_test']} test frames ({data['patients_per_split']['test']} patients, patient-wise split).</p>")
    p.append("<div class=row><div class=grow>")
    p.append(_table(["frames", "accuracy [95 % CI]", "ROC AUC", "F1", "epochs (best)", "s / epoch"],
                    [[side, _ci(util[side]["accuracy"]), _ci(util[side]["roc_auc"]), _ci(util[side]["f1"]),
                      f"{util[side]['epochs']} ({util[side]['best_epoch']})", _f(util[side]["mean_epoch_seconds"], 2)]
                     for side in ("original", "obfuscated")]))
    conf = [[side, _e(json.dumps(util[side].get("confusion")))] for side in ("original", "obfuscated")]
    p.append(f"<p class=small>Confusion matrices [[TN, FP], [FN, TP]], positive class "
             f"{_e(util['classes'][1])}:</p>" + _table(["frames", "confusion"], conf))
    p.append("<p class=small>The ROC curve (right) uses the predicted probabilities of the test frames; its AUC "
             "CI is a bootstrap over frames.</p></div><div class=side>")
    p.append(_img(figdir / "roc.png", FIGURES["roc.png"], "ROC curves") + "</div></div>")
    p.append(_img(figdir / "training-curves.png", FIGURES["training-curves.png"], "training curves"))
    st = util.get("stenosis")
    p.append("<h3>Second task: stenosis present or not</h3>")
    if st:
        p.append("<p>The same recipe and classifier family on the stenosis label (a task that needs detail: a "
                 "narrowing of one vessel). Test metrics with 95 % bootstrap CIs.</p>")
        p.append(_table(["frames", "accuracy [95 % CI]", "ROC AUC"],
                        [[side, _ci(st[side]["accuracy"]), _ci(st[side]["roc_auc"])]
                         for side in ("original", "obfuscated")]))
    else:
        p.append("<p>Not run: the training frames do not hold both classes (or the configuration turned it off).</p>")

    # ---- privacy
    p.append("<h2>Privacy: reconstruction attacks</h2>")
    p.append("<p>Each attacker is scored on the victim's test frames beside the prior (what an attacker gets "
             "knowing nothing); Δ = attack − prior (SSIM: the mean attacker frame; vessel Dice: the location "
             "prior, the attacker's mean vessel mask; re-ID: chance). Highlighted rows beat the prior by more "
             "than 0.05. Rows scored over several victim keys show the mean and, in brackets, the range over "
             "keys. "
             "Threat models: <code>docs/threat-model.md</code>.</p>")
    head = ["attacker", "knows", "SSIM", "PSNR dB", "vessel Dice", "re-ID@1", "re-ID@5", "ΔSSIM", "ΔDice",
            "Δre-ID@1", "s"]
    risky = {n for n, _ in risk}
    trs, hl = [], []
    for r in rows:
        name = r["threat"] + (f" ({r['variant']})" if r.get("variant") and r["threat"] not in ("obfuscated", "prior")
                              else "")
        trs.append([_e(name), _e(THREAT_KNOWS.get(r["threat"], "")), _fr(r, "ssim"), _fr(r, "psnr", 1),
                    _fr(r, "vessel_dice"), _fr(r, "reid_top1"), _fr(r, "reid_top5"), _f(r.get("d_ssim")),
                    _f(r.get("d_vessel_dice")), _f(r.get("d_reid_top1")), _f(r.get("seconds"), 1)])
        hl.append(_row_name(r) in risky)
    p.append(_table(head, trs, highlight=hl))
    meta = m["attacks"]["meta"]
    p.append(f"<p class=small>{_e(meta.get('n_test', ''))} test frames; the attacker owns "
             f"{_e(meta.get('n_attacker', ''))} synthetic angiograms of other patients; T3 sources: "
             f"{_e(', '.join(meta.get('t3_sources') or []) or '–')}. {_e(meta.get('notes', ''))}</p>")
    p.append(_img(figdir / "t1-curve.png", FIGURES["t1-curve.png"], "T1 curve"))
    p.append(_img(figdir / "privacy-utility.png", FIGURES["privacy-utility.png"], "privacy-utility chart"))
    p.append("<h3>How similarity and vessel recovery are measured</h3>")
    p.append(_table(["score", "settings"], [[_e(k), _e(v)] for k, v in METRIC_SETTINGS.items()]))

    # ---- overhead
    p.append("<h2>Overhead</h2>")
    p.append(f"<p>Measured in this run on {_e(m['study']['device'])} with {m['study']['torch_threads']} torch "
             "thread(s); timings on a shared machine are indicative. "
             "<code>benchmarks/</code> measures the overhead ratios carefully.</p>")
    p.append(_table(["figure", "value", "unit", "note"],
                    [[("&nbsp;" * 4 if r["figure"].startswith(" ") else "") + _e(r["figure"].strip()),
                      _f(r["value"], 3), _e(r["unit"]), _e(r["note"])]
                     for r in m["overhead"]["rows"]]))

    # ---- readers
    p.append("<h2>Expert readers</h2>")
    if m.get("readers"):
        p.append("<p>From <code>readers/summary.json</code> (<code>medcloak readers export</code>): blinded readers "
                 "judged vessel visibility, the artery and stenosis per condition.</p>")
        p.append(_readers_table(m["readers"]))
    else:
        p.append("<p>No reader answers yet. Register each reader with <code>medcloak readers add OUT NAME</code> "
                 "(it prints their personal token), run <code>medcloak readers serve OUT</code>, let readers answer, then "
                 "<code>medcloak readers export OUT</code> and rerun this study command: the report is rebuilt with "
                 "their summary (every other stage is skipped).</p>")

    # ---- configuration
    p.append("<h2>Configuration and versions</h2>")
    cfg = config.to_dict()
    cfg_rows = [[_e(k), _e(v if isinstance(v, str) else json.dumps(v))] for k, v in cfg.items()]
    p.append("<div class=verdict><div>" + _table(["setting", "value"], cfg_rows,
                                                  cls="kv") + "</div><div>")
    p.append(_table(["", "value"], [[_e(k), _e(v)] for k, v in m["versions"].items()]
                    + [["device", _e(m["study"]["device"])], ["torch threads", _e(m["study"]["torch_threads"])],
                       ["config hash", f"<code>{_e(m['study']['config_hash'][:16])}</code>"]], cls="kv"))
    split = data["frames_per_split"]
    p.append(_table(["data", "value"], [
        ["provenance", _e(data["provenance"])], ["frames", _e(data["n_frames"])],
        ["patients", _e(data["n_patients"])], ["frame size", f"{config.size} x {config.size}"],
        ["train / val / test frames", f"{split['train']} / {split['val']} / {split['test']}"],
        ["classes", _e(", ".join(f"{k} {v}" for k, v in data["classes"].items()))],
        ["vessel masks", _e(data.get("masks", ""))]], cls="kv"))
    ob = m["obfuscation"]
    oc = ob.get("config") or {}
    p.append(_table(["obfuscation", "value"], [
        ["order", _e(oc.get("order"))], ["levels", _e(oc.get("levels"))], ["latent", _e(oc.get("latent"))],
        ["VAE", _e(json.dumps({k: (oc.get("vae") or {}).get(k) for k in ("epochs", "base_channels", "beta")}))],
        ["distinct output levels", _e(ob.get("distinct_output_levels"))],
        ["SSIM orig/VAE (test)", _f(ob.get("test_ssim_original_vae"))],
        ["SSIM / PSNR orig/obfuscated (test)",
         f"{_f(ob.get('test_ssim_original_obfuscated'))} / {_f(ob.get('test_psnr_original_obfuscated'), 1)} dB"]],
        cls="kv"))
    p.append("</div></div>")
    secs = [[_e(n), _f(v, 1)] for n, v in m["stage_seconds"].items()]
    p.append("<h3>Stages</h3>" + _table(["stage", "seconds (when it ran)"], secs))
    p.append("<p class=small>Files beside this report: <code>metrics.json</code>, <code>utility.csv</code>, "
             "<code>attacks.csv</code>, <code>overhead.csv</code>, <code>config.toml</code>, <code>figures/</code>, "
             "<code>study.log</code>; stage caches in <code>stages/</code>.</p>")
    p.append("</main></body></html>\n")
    return "".join(p)
