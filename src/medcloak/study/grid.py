"""Utility grid: the same recipe on original and obfuscated frames, over a grid of settings.

An experiment (the study side: it makes keys and obfuscations, which the cloud's ``learn/``
never does). :func:`utility_grid` runs :func:`medcloak.learn.compare.compare`'s comparison over obfuscation
settings (levels ``L`` x VAE settings x classifier sizes, map-only rows, and the documented
level-embedding lever) on one synthetic data set with a patient-wise split, and returns one row
per setting with accuracy (95 % bootstrap CI), ROC-AUC, SSIM(original, obfuscated) of the test
frames (:func:`medcloak.metrics.ssim`) and a ``direct_view_dice`` column filled by an optional
hook (the T0 attack, :mod:`medcloak.attacks.direct_view`).

VAE-then-map rows reuse one fitted VAE per VAE setting across levels: the pipeline's
``vae-then-map`` output is ``IntensityMap(key, L)(Obfuscator.vae_stage(x))`` exactly, so the VAE
stage is computed once and each ``L`` applies its own keyed table.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.learn.compare import Comparison, compare, train_and_evaluate
from medcloak.learn.recipe import Recipe

__all__ = ["GridConfig", "default_configs", "default_vae_settings", "utility_grid", "study_key", "Comparison",
           "compare"]


@dataclass(frozen=True)
class GridConfig:
    """One setting of the utility grid.

    Parameters
    ----------
    order : {"original", "map-only", "vae-then-map"}
        ``original`` trains on unobfuscated frames (the baseline).
    levels : int, optional
        Quantisation levels ``L`` of the keyed map (None for ``original``).
    vae : str, optional
        Name of the VAE setting (a key of ``vae_settings``) for ``vae-then-map``.
    model : {"small", "wide", "densenet"}
        Classifier size.
    input_mode : {"intensity", "level-embedding"}
        ``level-embedding`` is the lever that changes the method (see :mod:`medcloak.learn.models`).
    latent : {"mean", "sampled"}
        ``vae-then-map`` only: the VAE's mean latent or key-derived latent noise
        (:class:`~medcloak.obfuscation.pipeline.ObfuscationConfig` ``latent``).
    """

    order: str
    levels: int | None = None
    vae: str | None = None
    model: str = "small"
    input_mode: str = "intensity"
    latent: str = "mean"

    @property
    def name(self) -> str:
        """Short label, e.g. ``vae-then-map/L16/vae-b1e-3/small/level-embedding``."""
        parts = [self.order]
        if self.levels is not None:
            parts.append(f"L{self.levels}")
        if self.vae:
            parts.append(self.vae)
        if self.latent != "mean":
            parts.append(f"{self.latent}-latent")
        parts.append(self.model)
        if self.input_mode != "intensity":
            parts.append(self.input_mode)
        return "/".join(parts)


def default_vae_settings(*, epochs: int = 20):
    """Two VAE settings for the grid: small vs larger KL weight ``beta`` (spatial latent)."""
    from medcloak.obfuscation.vae import VAEConfig

    return {
        "vae-b1e-3": VAEConfig(beta=1e-3, epochs=epochs, base_channels=16),
        "vae-b1e-1": VAEConfig(beta=1e-1, epochs=epochs, base_channels=16),
    }


def default_configs(
    *,
    levels: Sequence[int] = (256, 64, 16),
    vaes: Sequence[str] = ("vae-b1e-3", "vae-b1e-1"),
    models: Sequence[str] = ("small", "wide"),
    map_only: bool = True,
    embedding: bool = True,
    latents: Sequence[str] = ("mean",),
) -> list[GridConfig]:
    """The grid of the study: originals, ``L x VAE x latent x model``, map-only rows and the embedding lever.

    Embedding-lever rows use the first model only (the lever is about the input layer).
    """
    out = [GridConfig("original", model=m) for m in models]
    for m in models:
        for v in vaes:
            out += [GridConfig("vae-then-map", L, v, m, latent=z) for z in latents for L in levels]
        if map_only:
            out += [GridConfig("map-only", L, None, m) for L in levels]
    if embedding:
        for v in vaes:
            out += [GridConfig("vae-then-map", L, v, models[0], "level-embedding", latent=z)
                    for z in latents for L in levels]
        if map_only:
            out += [GridConfig("map-only", L, None, models[0], "level-embedding") for L in levels]
    return out


def study_key(seed: int):
    """A deterministic key for experiments (NOT for protecting data): SHA-256 of the seed."""
    from medcloak.keys import Key

    return Key(hashlib.sha256(f"medcloak-utility-grid-{int(seed)}".encode()).digest(), created="1970-01-01T00:00:00Z")


def utility_grid(
    data=None,
    *,
    n: int = 512,
    size: int = 64,
    seed: int = 0,
    recipe: Recipe,
    configs: Sequence[GridConfig] | None = None,
    vae_settings: Mapping | None = None,
    key=None,
    n_boot: int = 1000,
    direct_view: Callable[..., float] | None = None,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
    samples: dict | None = None,
) -> list[dict]:
    """Run the utility grid on one synthetic data set.

    Parameters
    ----------
    data : FrameSet, optional
        Frames, labels, patient ids and vessel masks (default: ``medcloak.synth.generate(n,
        size=size, seed=seed)``).
    n, size, seed : int
        Used when ``data`` is None; ``seed`` also fixes the patient-wise split and the bootstrap.
    recipe : Recipe
        The one recipe, passed unchanged (same object) to every training.
    configs : sequence of GridConfig, optional
        Default :func:`default_configs` restricted to the VAE settings given.
    vae_settings : mapping of str to VAEConfig, optional
        Default :func:`default_vae_settings`.
    key : medcloak.keys.Key, optional
        Key of the keyed map and latent noise (default :func:`study_key` of ``seed``).
    n_boot : int
        Bootstrap resamples for the CIs.
    direct_view : callable, optional
        Hook for the T0 column: ``direct_view(config, obfuscated_test, masks_test, ignore_test)
        -> dice``, where ``ignore_test`` is the test frames' catheter mask (pixels counted
        neither way) or None when the data has none. ``None`` leaves ``direct_view_dice`` empty.
    progress : bool
        tqdm bars on stderr.
    callback : callable, optional
        Called with each row as soon as it is finished.
    samples : dict, optional
        When given, filled with ``config name -> first test frame`` as obfuscated for that row
        (for figures), plus ``"original"``.

    Returns
    -------
    list of dict
        One row per config: ``config`` (name) and its fields, ``accuracy``, ``accuracy_ci_low``,
        ``accuracy_ci_high``, ``roc_auc`` (+ CI), ``f1``, ``ssim`` (original vs obfuscated test
        frames; 1.0 for ``original``), ``direct_view_dice``, ``epochs``, ``best_epoch``,
        ``mean_epoch_seconds``, ``overhead_ratio`` (vs the ``original`` row of the same model,
        when present), ``vae_seconds`` (fitting that VAE and running its stage on all frames,
        shared by the rows using it).
    """
    from medcloak.metrics import ssim
    from medcloak.obfuscation.mapping import IntensityMap
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator

    if data is None:
        from medcloak.synth import generate

        data = generate(n, size=size, seed=seed, progress=progress)
    frames = np.asarray(data.frames, dtype=np.float32)
    labels = list(data.labels)
    masks = np.asarray(data.masks) if getattr(data, "masks", None) is not None else None
    catheter = np.asarray(data.catheter) if getattr(data, "catheter", None) is not None else None
    split = data.split_by_patient(seed=seed).split
    idx = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    y = {s: [labels[i] for i in idx[s]] for s in idx}
    vae_settings = dict(vae_settings if vae_settings is not None else default_vae_settings())
    configs = list(configs if configs is not None else default_configs(vaes=tuple(vae_settings)))
    key = key if key is not None else study_key(seed)
    vae_out: dict[tuple[str, str], tuple[np.ndarray, float]] = {}
    baseline_epoch: dict[str, float] = {}
    rows: list[dict] = []
    for cfg in configs:
        if cfg.order == "original":
            x = frames
        elif cfg.order == "map-only":
            x = IntensityMap.from_key(key, levels=cfg.levels)(frames)
        elif cfg.order == "vae-then-map":
            if cfg.vae not in vae_settings:
                raise MedcloakError(f"grid: unknown VAE setting {cfg.vae!r} (have {', '.join(vae_settings)})")
            vk = (cfg.vae, cfg.latent)
            if vk not in vae_out:
                t0 = time.perf_counter()
                fitted = next((o for (v, _), (_, _, o) in vae_out.items() if v == cfg.vae), None)
                if fitted is None:
                    obf = Obfuscator(key, config=ObfuscationConfig(levels=256, order="vae-then-map",
                                                                   latent=cfg.latent, vae=vae_settings[cfg.vae]))
                    obf.fit(frames[idx["train"]], frames[idx["val"]], progress=progress)
                else:  # the same fitted VAE, another latent: no second fit
                    obf = fitted.with_options(latent=cfg.latent)
                vae_out[vk] = (obf.vae_stage(frames), time.perf_counter() - t0, obf)
            x = IntensityMap.from_key(key, levels=cfg.levels)(vae_out[vk][0])
        else:
            raise MedcloakError(f"grid: unknown order {cfg.order!r}")
        options = {}
        if cfg.input_mode == "level-embedding":
            options = {"input_mode": "level-embedding", "levels": int(cfg.levels or 256)}
        splits = {s: (x[idx[s]], y[s]) for s in idx}
        res, met = train_and_evaluate(splits, recipe=recipe, model=cfg.model, n_boot=n_boot, seed=seed,
                               progress=progress, **options)
        if cfg.order == "original" and cfg.input_mode == "intensity":
            baseline_epoch.setdefault(cfg.model, res.mean_epoch_seconds)
        dice = None
        if direct_view is not None and cfg.order != "original" and masks is not None:
            ign = catheter[idx["test"]] if catheter is not None else None
            dice = float(direct_view(cfg, x[idx["test"]], masks[idx["test"]], ign))
        if samples is not None:
            samples.setdefault("original", frames[idx["test"][0]].copy())
            samples[cfg.name] = np.asarray(x[idx["test"][0]], np.float32).copy()
        row = {"config": cfg.name, **asdict(cfg)}
        for m in ("accuracy", "roc_auc", "f1"):
            row[m] = met[m]["value"]
            row[f"{m}_ci_low"] = met[m]["ci_low"]
            row[f"{m}_ci_high"] = met[m]["ci_high"]
        row["ssim"] = 1.0 if cfg.order == "original" else ssim(frames[idx["test"]], x[idx["test"]])
        row["direct_view_dice"] = dice
        row["epochs"] = res.epochs
        row["best_epoch"] = res.best_epoch
        row["mean_epoch_seconds"] = res.mean_epoch_seconds
        base = baseline_epoch.get(cfg.model)
        row["overhead_ratio"] = res.mean_epoch_seconds / base if base else None
        row["vae_seconds"] = vae_out[(cfg.vae, cfg.latent)][1] if cfg.order == "vae-then-map" else None
        row["n_train"], row["n_test"] = len(y["train"]), len(y["test"])
        rows.append(row)
        if callback is not None:
            callback(row)
        if progress:
            print(f"[grid] {cfg.name}: acc {row['accuracy']:.3f} [{row['accuracy_ci_low']:.3f}, "
                  f"{row['accuracy_ci_high']:.3f}] ssim {row['ssim']:.3f}", file=sys.stderr)
    return rows
