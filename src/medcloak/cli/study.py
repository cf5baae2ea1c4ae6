"""``medcloak study``: run the whole study and write a self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["study"]


@app.command()
def study(
    preset: str = typer.Option("demo", "--preset", help="demo | paper | tiny | CONFIG.toml"),
    data: Path | None = typer.Option(None, "--data", help="Run on this dataset folder (labels.csv, e.g. from "
                                     "medcloak dataset) instead of the preset's data; provenance REAL."),
    scheme: str = typer.Option(None, "--scheme", help="Obfuscation scheme instead of the preset's (demo: the "
                               "default setting, pixelate; tiny and paper: paper; its settings: the obfuscation "
                               "table of a CONFIG.toml)."),
    out: Path = typer.Option(..., "--out", help="Study folder (created; a rerun resumes it and skips finished "
                             "stages)."),
    force: bool = typer.Option(False, "--force", help="Discard the results in OUT if another configuration or key "
                               "made them."),
    key_file: Path = typer.Option(None, "--key", help="Key file (medcloak keygen); default: a new key in "
                                  "OUT/secret/key.json."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars and stage lines on stderr."),
) -> None:
    """Run the study (data, scheme fit, obfuscation, utility, attacks T0-T4, overhead, report) in OUT.

    Every stage is cached in OUT/stages and skipped when the same command runs again.

    The log is OUT/study.log. OUT/secret (key and fitted model) must not leave the hospital."""
    import json

    from medcloak.study import load_config, run_study

    from dataclasses import replace

    config = load_config(preset)
    if data is not None:
        config = replace(config, source=str(data.resolve()), name=f"{config.name} on {data.name}")
    if scheme is not None and scheme != config.scheme:
        config = replace(config, scheme=scheme, scheme_options={}, name=f"{config.name} ({scheme})")
    report = run_study(config, out, force=force, progress=progress, key_file=key_file)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    u = metrics["utility"]
    typer.echo(f"study {config.name} ({metrics['data']['provenance']} data, {metrics['data']['n_frames']} frames "
               f"{config.size}x{config.size}); key {metrics['key']['short_fingerprint']}")
    typer.echo(f"accuracy original {u['original']['accuracy']['value']:.3f}, obfuscated "
               f"{u['obfuscated']['accuracy']['value']:.3f}")
    typer.echo(f"report: {report}")
