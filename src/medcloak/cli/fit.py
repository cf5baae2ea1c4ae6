"""``medcloak fit``: fit the obfuscator's VAE on the owner's dataset and save it (secret)."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["fit"]


@app.command()
def fit(
    dataset: Path = typer.Argument(..., help="Dataset folder holding labels.csv (train/val splits assigned)."),
    key_file: Path = typer.Option(..., "--key", help="Key file (medcloak keygen)."),
    out: Path = typer.Option(..., "--out", help="Model folder to create (secret material: mode 0700)."),
    scheme: str = typer.Option(None, "--scheme", help="Obfuscation scheme. Default: the tool's default setting "
                               "(pixelate, 8-px cells, Laplace noise at epsilon 1; README 'Which scheme?'). paper = "
                               "the paper's VAE + keyed map; the options below from --preset on are the paper's."),
    config_json: str = typer.Option(None, "--config", help="The scheme's config fields as a JSON object, e.g. "
                                    "'{\"cell\": 16}' (other schemes than paper; default: the default setting's "
                                    "options for the default scheme, the scheme's own defaults otherwise)."),
    preset: str = typer.Option(None, "--preset", help="VAE setting: fast (default; 20 epochs, vessel Dice "
                               "0.73 at 128 px) | fidelity (40 epochs, vessel Dice 0.81; slow on CPU)."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default: the preset's)."),
    size: int = typer.Option(128, "--size", help="Frames are resized to SIZE x SIZE."),
    levels: int = typer.Option(None, "--levels", help="Quantisation levels before the keyed map (default 256)."),
    out_levels: int = typer.Option(None, "--out-levels", help="Output levels of the keyed map (default: LEVELS)."),
    order: str = typer.Option(None, "--order", help="vae-then-map (default) | map-then-vae | map-only."),
    latent: str = typer.Option(None, "--latent", help="mean (default) | sampled (key-derived latent noise)."),
    engine: str = typer.Option(None, "--vae-engine", help="The VAE's inference engine when obfuscating: fp32 (default; "
                               "the outputs of earlier versions) | bf16 (about 2.8x faster per frame on a CPU with "
                               "AVX512-BF16, other outputs; part of the model fingerprint). Training is float32."),
    batch_size: int = typer.Option(None, "--batch-size", help="VAE training batch size."),
    beta: float = typer.Option(None, "--beta", help="Weight of the VAE's KL term."),
    seed: int = typer.Option(None, "--seed", help="Seed of VAE initialisation and shuffling (not protective)."),
    val_target: str = typer.Option(None, "--val-target", help="labels.csv column whose files the validation "
                                   "reconstructions are compared to (e.g. 'clean'); default the frames."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model in OUT."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates",
                                          help="labels.csv: warn, not fail, when an image is listed twice."),
    allow_split_leak: bool = typer.Option(False, "--allow-split-leak",
                                          help="labels.csv: warn, not fail, when a patient is in two splits."),
) -> None:
    """Fit a scheme (the paper's: its VAE) on a dataset's train split and save it, bound to the key.

    The validation curve (val split) is printed per epoch. The model folder records the scheme
    and its config; 'medcloak obfuscate --scheme' refuses a folder of another scheme."""
    import json
    from dataclasses import replace

    from medcloak.errors import MedcloakError
    from medcloak.io.arrays import load_split
    from medcloak.io.dataset import read_manifest
    from medcloak.keys import Key
    from medcloak.obfuscation.pipeline import ObfuscationConfig
    from medcloak.obfuscation.scheme import SCHEME_JSON, make_scheme
    from medcloak.obfuscation.vae import vae_preset

    from medcloak.obfuscation.scheme import DEFAULT_OPTIONS, DEFAULT_SCHEME

    paper_only = {"--preset": preset, "--epochs": epochs, "--levels": levels, "--out-levels": out_levels,
                  "--order": order, "--latent": latent, "--vae-engine": engine, "--batch-size": batch_size,
                  "--beta": beta, "--seed": seed, "--val-target": val_target}
    if scheme is None:
        scheme = DEFAULT_SCHEME
        if not config_json:
            config_json = json.dumps(DEFAULT_OPTIONS)
    given = [k for k, v in paper_only.items() if v is not None]
    if scheme != "paper" and given:
        raise MedcloakError(f"{', '.join(given)} set the paper scheme's VAE and map; add --scheme paper "
                            f"(the default scheme is {DEFAULT_SCHEME})")
    preset, levels, order, latent = preset or "fast", levels or 256, order or "vae-then-map", latent or "mean"
    key = Key.load(key_file)
    if ((out / SCHEME_JSON).exists() or (out / "obfuscator.json").exists()) and not overwrite:
        raise MedcloakError("already holds a medcloak model; choose another folder or pass --overwrite", out)
    if scheme == "paper":
        if config_json:
            raise MedcloakError("the paper scheme takes its own options (--levels, --order, ...), not --config")
        overrides = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "beta": beta, "seed": seed}.items()
                     if v is not None}
        config = ObfuscationConfig(levels=levels, out_levels=out_levels, order=order, latent=latent,
                                   engine=engine or "fp32", image_size=size,
                                   vae=replace(vae_preset(preset), **overrides))
    else:
        try:
            config = json.loads(config_json or "{}")
        except ValueError as exc:
            raise MedcloakError(f"--config is not a JSON object ({exc})") from None
        if not isinstance(config, dict):
            raise MedcloakError("--config must be a JSON object of the scheme's config fields")
    obf = make_scheme(scheme, config)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = read_manifest(dataset, allow_duplicates=allow_duplicates, allow_split_leak=allow_split_leak)
    for w in caught:
        typer.secho(f"warning: {w.message}", fg="yellow", err=True)
    train = load_split(manifest, "train", size=size)
    if len(train) == 0:
        raise MedcloakError("the dataset has no 'train' split rows", manifest.root / "labels.csv")
    val = load_split(manifest, "val", size=size)
    val = val if len(val) else None
    target = None
    if val is not None and val_target:
        target = load_split(manifest, "val", column=val_target, size=size)
    settings = (f"order {order}, latent {latent}, levels {levels}, engine {config.engine}" if scheme == "paper"
                else f"config {obf.config}")
    typer.echo(f"key {key.short_fingerprint}; {len(train)} train / {0 if val is None else len(val)} val frames "
               f"at {size}x{size}; scheme {scheme}: {settings}")
    n_epochs = config.vae.epochs if scheme == "paper" and config.vae is not None else 0

    def show(row: dict) -> None:
        val_part = "" if row.get("val_loss") is None else (
            f"  val_loss {row['val_loss']:.5f}  val_ssim {row['val_ssim']:.4f}")
        typer.echo(f"epoch {row['epoch']:>3}/{n_epochs}  train_loss {row['train_loss']:.5f}{val_part}"
                   f"  ({row['seconds']:.1f} s)")

    options = {"val_target": target, "callback": show} if scheme == "paper" else {}
    obf.fit(train, key, val=val, progress=progress, **options)
    obf.save(out, overwrite=overwrite)
    typer.echo(f"saved {scheme} model to {out} (model fingerprint {obf.model_fingerprint[:16]}, "
               f"bound to key {key.short_fingerprint}); keep it as secret as the key")
