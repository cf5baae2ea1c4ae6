"""``medcloak attack``: run the threat models T0-T4 against an obfuscation and score them."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["attack"]


@app.command()
def attack(
    threat: list[str] = typer.Option(["T0", "T1", "T2", "T3", "T4"], "--threat",
                                     help="T0 | T1 | T2 | T3 | T4 (or another registered attack); repeat for "
                                     "several (default: T0-T4)."),
    out: Path = typer.Option(..., "--out", help="Folder for results.json, results.csv and grid.png."),
    size: int = typer.Option(64, "--size", help="Synthetic setup: frame side in pixels."),
    n: int = typer.Option(256, "--n", help="Synthetic setup: victim frames (8 per patient)."),
    seed: int = typer.Option(0, "--seed", help="Synthetic setup: generator and split seed of the victim."),
    levels: int = typer.Option(256, "--levels", help="Synthetic setup: grey levels of the keyed map."),
    order: str = typer.Option("vae-then-map", "--order", help="Synthetic setup: vae-then-map | map-then-vae | map-only."),
    epochs: int = typer.Option(None, "--epochs", help="VAE epochs of the synthetic victim and of the attackers' "
                               "own VAEs (default: the VAE's default)."),
    steps: int = typer.Option(400, "--steps", help="Optimisation steps of each attack network."),
    n_attacker: int = typer.Option(256, "--n-attacker", help="Attacker's own frames (T0, T2) and images (T3)."),
    scheme: str = typer.Option("paper", "--scheme", help="Synthetic setup: the victim's scheme (its default config "
                               "for schemes other than paper); with --model: the scheme the folder must hold."),
    model: Path = typer.Option(None, "--model", help="Attack a real fitted scheme (model folder)..."),
    key_file: Path = typer.Option(None, "--key", help="...under its key file..."),
    dataset: Path = typer.Option(None, "--dataset", help="...on its dataset (train/test splits, 'mask' column)."),
    reid_metric: str = typer.Option("ssim", "--reid-metric", help="Re-identification similarity: ssim | corr."),
    victim_keys: int = typer.Option(5, "--victim-keys", help="Victim keys T0 and T4 are scored under (mean and "
                                    "range; the victim's own and simulated ones; 1: its own only)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr."),
) -> None:
    """Train the attackers, attack the obfuscated test frames, and score every attack beside the prior.

    Without --model: a synthetic victim (semi-synthetic angiograms, a fresh key, a fitted scheme)."""
    from dataclasses import replace

    from medcloak.attacks.own import PublicScheme
    from medcloak.attacks.runner import AttackConfig, dataset_victim, run_attacks, synthetic_victim
    from medcloak.attacks.unet import NetConfig
    from medcloak.errors import MedcloakError
    from medcloak.obfuscation.pipeline import ObfuscationConfig
    from medcloak.obfuscation.vae import VAEConfig
    from medcloak.report.attack_grid import attack_grid

    threats = [t.strip().upper() if t.strip().upper() in ("T0", "T1", "T2", "T3", "T4") else t.strip()
               for t in threat]
    if (model is None) != (key_file is None) or (model is None) != (dataset is None):
        raise MedcloakError("--model, --key and --dataset go together (attack a real fitted obfuscator)")
    if model is not None:
        from medcloak.keys import Key
        from medcloak.obfuscation.scheme import load_scheme

        obf = load_scheme(model, Key.load(key_file), expect=scheme)
        public = obf.config
        if epochs is not None and getattr(obf.config, "vae", None) is not None:
            public = replace(obf.config, vae=replace(obf.config.vae, epochs=epochs))
        victim = dataset_victim(obf, dataset, public=PublicScheme(obf.name, public))
    elif scheme == "paper":
        vae = VAEConfig() if epochs is None else VAEConfig(epochs=epochs)
        victim = synthetic_victim(size=size, n=n, seed=seed, progress=progress,
                                  obfuscation=ObfuscationConfig(levels=levels, order=order, vae=vae))
    else:
        victim = synthetic_victim(size=size, n=n, seed=seed, progress=progress, scheme=scheme)
    config = AttackConfig(net=NetConfig(steps=steps), n_attacker=n_attacker, n_cross=n_attacker,
                          reid_metric=reid_metric, victim_keys=victim_keys)
    typer.echo(f"victim: {victim.description}")
    res = run_attacks(victim, threats, config=config, progress=progress)
    res.to_json(out / "results.json")
    res.to_csv(out / "results.csv")
    attack_grid(res.images, out / "grid.png", masks=res.masks)
    typer.echo(res.table())
    typer.echo(f"wrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'grid.png'} "
               f"({res.meta['seconds']:.0f} s)")
