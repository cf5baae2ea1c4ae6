"""The work of each study stage: a few lines each over the library (orchestrated by :mod:`.run`).

Every function takes the run's context (:class:`Context`) and the stage's folder, writes its
files there and returns the stage's small JSON outputs (its ``done.json`` payload). The data are
read from their files once per run: :attr:`Context.data` loads the cached
:class:`~medcloak.io.frameset.FrameSet` once and every later stage reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_text, atomic_write_with
from medcloak.io.frameset import SPLITS, FrameSet
from medcloak.study.stages import StageCache, jsonable

__all__ = ["Context", "data", "fit", "obfuscate", "utility", "attack_config", "attacks", "overhead", "readers",
           "report", "report_still_valid"]

_DATA = "frameset.npz"


@dataclass
class Context:
    """One study run: its config, folder, key, stage cache, log and device."""

    config: object
    out: Path
    key: object
    key_source: str
    cache: StageCache
    log: object
    progress: bool
    device: str

    @cached_property
    def data(self) -> FrameSet:
        """The study's frames (read once per run from the data stage's file)."""
        return FrameSet.load(self.cache.folder("data") / _DATA)

    @cached_property
    def scheme(self):
        """The owner's fitted scheme (``OUT/secret/model``)."""
        from medcloak.obfuscation.scheme import load_scheme

        return load_scheme(self.out / "secret" / "model", self.key, expect=self.config.scheme)

    @cached_property
    def obfuscated(self) -> dict[str, np.ndarray]:
        """``obfuscated`` (every frame) and the scheme's intermediates (the paper's ``vae``)."""
        return _load(self.cache.folder("obfuscate") / "obfuscated.npz")


def _save(path: Path, **arrays) -> None:
    atomic_write_with(path, lambda fh: np.savez(fh, **arrays))


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write_json(path: Path, doc) -> None:
    atomic_write_text(path, json.dumps(jsonable(doc), indent=2) + "\n")


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


# ============================================================================ stages


def data(ctx: Context, folder: Path) -> dict:
    """Generate (or load) the frames, split patient-wise, and cache them as one FrameSet."""
    c = ctx.config
    if c.synthetic:
        from medcloak.synth import generate

        fs = generate(c.n_frames, size=c.size, seed=c.seed, frames_per_patient=c.frames_per_patient,
                      progress=ctx.progress).split_by_patient(seed=c.seed)
        masks_source = "the generator's visible-lumen masks (catheter ignored)"
    else:
        from medcloak.io.frameset import load_dataset

        fs = load_dataset(c.source, c.size, seed=c.seed)
        masks_source = fs.source.partition("; ")[2] or "the dataset's 'mask' column"
    counts = {s: int((fs.split == s).sum()) for s in SPLITS}
    for s in SPLITS:
        if counts[s] == 0:
            raise MedcloakError(f"the data has no '{s}' frames after the patient-wise split (too few patients)")
    if len(set(fs.subset("train").labels)) < 2:
        raise MedcloakError("the training split holds only one class")
    fs.save(folder / _DATA)
    ctx.__dict__["data"] = fs  # this run reuses it instead of reading it back
    return {
        "provenance": c.provenance, "source": fs.source.partition("; ")[0], "masks": masks_source,
        "n_frames": len(fs), "size": c.size, "n_patients": len(set(fs.patient_ids)), "frames_per_split": counts,
        "patients_per_split": {s: len(set(fs.subset(s).patient_ids)) for s in SPLITS},
        "classes": {lab: fs.labels.count(lab) for lab in sorted(set(fs.labels))},
        "stenosis_frames": int(fs.stenosis.sum()),
    }


def fit(ctx: Context, folder: Path) -> dict:
    """Fit the scheme on the training frames; save it in ``OUT/secret/model`` (secret)."""
    from medcloak.obfuscation.scheme import make_scheme

    c, fs = ctx.config, ctx.data
    train, val = fs.subset("train"), fs.subset("val")
    scheme = make_scheme(c.scheme, c.scheme_config())
    options = {"val_target": val.clean} if c.scheme == "paper" else {}
    t0 = time.perf_counter()
    scheme.fit(train, ctx.key, val=val, progress=ctx.progress, **options)
    seconds = time.perf_counter() - t0
    scheme.save(ctx.out / "secret" / "model", overwrite=True)
    ctx.__dict__.pop("scheme", None)
    history = scheme.history
    _write_json(folder / "history.json", history)
    return {"scheme": scheme.name, "model_fingerprint": scheme.model_fingerprint,
            "obfuscation": scheme.config.to_dict(), "fit_seconds": seconds, "epochs": len(history),
            "final": history[-1] if history else None,
            "val_target": "noise-free frames" if options.get("val_target") is not None else "the validation frames"}


def obfuscate(ctx: Context, folder: Path) -> dict:
    """Obfuscate every frame, timing each stage of the scheme per frame."""
    from medcloak import metrics

    from medcloak.attacks.own import image_like

    frames = ctx.data.frames
    obfuscated, stage_ms, intermediates = ctx.scheme.apply_timed(frames)
    _save(folder / "obfuscated.npz", obfuscated=obfuscated, **intermediates)
    ctx.__dict__.pop("obfuscated", None)
    test = ctx.data.split == "test"
    seen = image_like(obfuscated[test], frames.shape[1:], output=ctx.scheme.output)  # low-res upsampled; tokens: None
    out = {
        "n_frames": len(frames), "ms_per_frame": sum(stage_ms.values()), "stage_ms_per_frame": stage_ms,
        "vae_ms_per_frame": stage_ms.get("vae"), "map_ms_per_frame": stage_ms.get("map"),
        "output": ctx.scheme.output, "output_shape": list(obfuscated.shape[1:]),
        "distinct_output_levels": int(len(np.unique(obfuscated))),
        "test_ssim_original_obfuscated": None if seen is None else metrics.ssim(frames[test], seen),
        "test_psnr_original_obfuscated": None if seen is None else metrics.psnr(frames[test], seen),
    }
    if "vae" in intermediates:
        out["test_ssim_original_vae"] = metrics.ssim(frames[test], intermediates["vae"][test])
        out["test_psnr_original_vae"] = metrics.psnr(frames[test], intermediates["vae"][test])
    return out


def utility(ctx: Context, folder: Path) -> dict:
    """The cloud's classifier on original and on obfuscated frames, one recipe object for both;
    the view task (LCA vs RCA), then the stenosis task when the data hold both classes."""
    from medcloak.learn.compare import compare, frameset_splits
    from medcloak.learn.recipe import Recipe

    c, fs = ctx.config, ctx.data
    recipe = Recipe(max_epochs=c.max_epochs, patience=c.patience, batch_size=c.batch_size, lr=c.lr, seed=c.seed)
    obf_fs = fs.with_frames(ctx.obfuscated["obfuscated"])
    tasks = {"view": None}
    sten = ["stenosis" if v else "none" for v in fs.stenosis]
    if c.stenosis_task and len(set(np.asarray(sten)[fs.split == "train"].tolist())) == 2:
        tasks["stenosis"] = sten
    doc: dict = {"recipe": recipe.to_dict(), "same_recipe_object": True, "tasks": list(tasks)}
    summary: dict = {}
    for task, labels in tasks.items():
        a, b = (x if labels is None else replace(x, labels=labels) for x in (fs, obf_fs))
        obf = frameset_splits(b)
        cmp = compare(frameset_splits(a), obf, recipe=recipe, model=c.classifier_config(), n_boot=c.n_boot,
                      seed=c.seed, progress=ctx.progress)
        assert cmp.original.recipe is cmp.obfuscated.recipe is recipe  # one recipe object for both sides
        part = {"classifier": cmp.original.config.to_dict(), "classes": cmp.original.classes}
        for side, res, met in (("original", cmp.original, cmp.metrics_original),
                               ("obfuscated", cmp.obfuscated, cmp.metrics_obfuscated)):
            part[side] = {"metrics": {k: v for k, v in met.items() if k != "prob"}, "history": res.history,
                          "epochs": res.epochs, "best_epoch": res.best_epoch, "stopped_early": res.stopped_early,
                          "mean_epoch_seconds": res.mean_epoch_seconds, "total_seconds": res.total_seconds}
        if task == "view":  # the main task keeps the top level of utility.json (the report reads it there)
            doc.update(part)
            for side in ("original", "obfuscated"):
                met = doc[side]["metrics"]
                summary[side] = {m: met[m] for m in ("accuracy", "roc_auc", "f1", "precision", "recall") if m in met}
                summary[side].update(n_test=met["n"], epochs=doc[side]["epochs"], best_epoch=doc[side]["best_epoch"],
                                     mean_epoch_seconds=doc[side]["mean_epoch_seconds"])
            summary["epoch_time_ratio"] = cmp.overhead_ratio
            summary["n_train"], summary["n_val"] = len(obf["train"][1]), len(obf["val"][1])
        else:
            doc[task] = part
            summary[task] = {side: part[side]["metrics"]["accuracy"] for side in ("original", "obfuscated")}
    if "stenosis" not in tasks:
        summary["stenosis"] = None
    _write_json(folder / "utility.json", doc)
    return summary


def attack_config(c):
    """The attackers' effort of a study config (:class:`~medcloak.attacks.runner.AttackConfig`)."""
    from medcloak.attacks.runner import AttackConfig
    from medcloak.attacks.unet import NetConfig

    net = NetConfig(channels=c.attack_channels, steps=c.attack_steps, lr=c.attack_lr, batch_size=c.attack_batch_size,
                    seed=c.seed)
    return AttackConfig(net=net, t0_net=replace(net, steps=c.t0_steps), t1_n=c.t1_n, n_attacker=c.n_attacker,
                        n_cross=c.n_attacker, t0_copies=c.t0_copies, victim_keys=c.victim_keys,
                        t4_options={"restarts": c.t4_restarts})


def attacks(ctx: Context, folder: Path) -> dict:
    """Every threat of the config against the test frames, scored beside the prior."""
    from medcloak.attacks.runner import AttackVictim, figure_index, run_attacks

    c, fs = ctx.config, ctx.data
    test = fs.split == "test"
    victim = AttackVictim.from_frameset(
        fs, ctx.scheme, obfuscated=ctx.obfuscated["obfuscated"], pool_ciphertexts="T4" in c.threats and c.t4_all_frames,
        description=f"study {c.name}: {c.provenance} frames {c.size}x{c.size}, key {ctx.key.short_fingerprint}")
    acfg = attack_config(c)
    res = run_attacks(victim, c.threats, config=acfg, n_figure=c.reader_frames, progress=ctx.progress)
    res.to_json(folder / "results.json")
    res.to_csv(folder / "results.csv")
    fig_idx = figure_index(int(test.sum()), c.reader_frames)
    names = {k: k for k in res.images}
    t1_rows = [r for r in res.rows if r["threat"] == "T1"]
    if t1_rows:
        names["T1"] = f"T1-n{max(int(r['n_pairs']) for r in t1_rows)}"
    _save(folder / "images.npz", index=fig_idx, masks=res.masks,
          **{f"img_{names[k]}": np.asarray(v, np.float32) for k, v in res.images.items()})
    keep = ("threat", "variant", "n_pairs", "ssim", "psnr", "vessel_dice", "reid_top1", "d_ssim", "d_vessel_dice",
            "seconds", "n_keys", "ssim_min", "ssim_max", "vessel_dice_min", "vessel_dice_max")
    return {"rows": [{k: r.get(k) for k in keep} for r in res.rows], "seconds": res.meta.get("seconds"),
            "n_test": int(test.sum()), "n_attacker": res.meta.get("n_attacker"),
            "t3_sources": res.meta.get("t3_sources"), "config": acfg.to_dict()}


def overhead(ctx: Context, folder: Path) -> dict:
    """The study's measured costs as one table."""
    r = ctx.cache.results
    fit_, obf, util, att = (r[n].outputs for n in ("fit", "obfuscate", "utility", "attacks"))
    paper = ctx.config.scheme == "paper"
    rows = [
        {"figure": "VAE fit (owner, once per key/model)" if paper else f"{ctx.config.scheme} fit (owner, once per key)",
         "value": fit_["fit_seconds"], "unit": "s", "note": f"{fit_['epochs']} epochs on {util['n_train']} training frames"},
        {"figure": "obfuscate one frame (VAE + map)" if paper else f"obfuscate one frame ({ctx.config.scheme})",
         "value": obf["ms_per_frame"], "unit": "ms",
         "note": f"{ctx.config.size}x{ctx.config.size}" + (", one frame per VAE pass" if paper else "")},
    ]
    if obf.get("vae_ms_per_frame") is not None:
        rows += [{"figure": "  of which VAE stage", "value": obf["vae_ms_per_frame"], "unit": "ms", "note": ""},
                 {"figure": "  of which quantise + keyed map", "value": obf["map_ms_per_frame"], "unit": "ms",
                  "note": ""}]
    rows += [
        {"figure": "cloud training epoch, original frames", "value": util["original"]["mean_epoch_seconds"],
         "unit": "s", "note": f"{ctx.config.classifier} classifier, mean over epochs"},
        {"figure": "cloud training epoch, obfuscated frames", "value": util["obfuscated"]["mean_epoch_seconds"],
         "unit": "s", "note": "same recipe object"},
        {"figure": "epoch time ratio obfuscated / original", "value": util["epoch_time_ratio"], "unit": "x",
         "note": "target <= 1.05 (benchmarks/training_overhead.py measures it carefully)"},
    ]
    for row in att["rows"]:
        if row["threat"] not in ("obfuscated", "prior", "T0-handmade"):
            label = row["threat"] + (f" ({row['variant']})" if row["threat"] in ("T1", "T4") else "")
            rows.append({"figure": f"attacker effort: {label}", "value": row["seconds"], "unit": "s",
                         "note": "training + applying the attack"})
    _write_json(folder / "overhead.json", rows)
    return {"rows": rows, "device": ctx.device, "threads": _threads()}


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _reader_images(ctx: Context) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Condition -> the same N test frames (original, vae, obfuscated, each reconstruction)."""
    imgs = _load(ctx.cache.folder("attacks") / "images.npz")
    test_idx = np.flatnonzero(ctx.data.split == "test")[imgs["index"]]
    from medcloak.attacks.own import image_like

    obf = ctx.obfuscated
    out = {"original": ctx.data.frames[test_idx]}
    if "vae" in obf:
        out["vae"] = obf["vae"][test_idx]
    seen = image_like(obf["obfuscated"][test_idx], ctx.data.frames.shape[1:], output=ctx.scheme.output)
    if seen is not None:  # patch tokens are not shown to readers
        lo, hi = float(seen.min()), float(seen.max())
        out["obfuscated"] = seen if 0.0 <= lo and hi <= 1.0 else (seen - lo) / max(hi - lo, 1e-12)
    for k in imgs:
        name = k[4:] if k.startswith("img_") else None
        if name and name not in ("original", "obfuscated", "prior", "T0"):  # T0 segments, the prior is one frame
            out[name] = imgs[k]
    return out, test_idx


def readers(ctx: Context, folder: Path) -> dict:
    """Blinded expert-reader items of the figure frames (:func:`medcloak.readers.items.write_reader_items`)."""
    from medcloak.readers.items import write_reader_items

    images, test_idx = _reader_images(ctx)
    path = write_reader_items(ctx.out, images, artery=[ctx.data.labels[i] for i in test_idx],
                              stenosis=[bool(v) for v in ctx.data.stenosis[test_idx]], seed=ctx.config.seed)
    return {"items": str(path), "conditions": list(images), "frames": int(len(test_idx))}


def _summary_digest(out: Path) -> str | None:
    p = out / "readers" / "summary.json"
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def report_still_valid(ctx: Context, doc: dict) -> bool:
    """Rerun the report when ``readers/summary.json`` appeared or changed, or a file went missing."""
    outputs = doc.get("outputs", {})
    if outputs.get("readers_summary_sha256") != _summary_digest(ctx.out):
        return False
    return all((ctx.out / f).exists() for f in outputs.get("files", []))


def report(ctx: Context, folder: Path) -> dict:
    """``report.html``, ``metrics.json``, the CSV tables and the figures (:mod:`medcloak.report`)."""
    from medcloak.report import StudyResults, write_report

    r = ctx.cache.results
    images, _ = _reader_images(ctx)
    att_images = _load(ctx.cache.folder("attacks") / "images.npz")
    summary_path = ctx.out / "readers" / "summary.json"
    summary = None
    if summary_path.is_file():
        try:
            summary = _read_json(summary_path)
        except (OSError, ValueError):
            ctx.log.info("readers/summary.json is unreadable; the report leaves it out")
    results = StudyResults(
        config=ctx.config, config_hash=ctx.cache.config_hash,
        key={"fingerprint": ctx.key.fingerprint, "short_fingerprint": ctx.key.short_fingerprint,
             "source": ctx.key_source},
        stages={n: res.outputs for n, res in r.items()}, stage_seconds={n: res.seconds for n, res in r.items()},
        utility=_read_json(ctx.cache.folder("utility") / "utility.json"),
        attacks=_read_json(ctx.cache.folder("attacks") / "results.json"),
        history=_read_json(ctx.cache.folder("fit") / "history.json"), images=images,
        t0_map=att_images.get("img_T0"), prior=att_images.get("img_prior"), masks=att_images.get("masks"),
        readers=summary, device=ctx.device, threads=_threads(),
    )
    return {"files": write_report(ctx.out, results), "readers_summary_sha256": _summary_digest(ctx.out)}
