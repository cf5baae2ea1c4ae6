"""``medcloak obfuscate``: obfuscate a folder (or file) of images, resumably, with a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["obfuscate"]


@app.command()
def obfuscate(
    in_path: Path = typer.Argument(..., help="Input folder (walked recursively) or file; never modified."),
    out_dir: Path = typer.Argument(..., help="Output folder (new, or an earlier run's output to resume)."),
    key_file: Path = typer.Option(..., "--key", help="Key file (medcloak keygen)."),
    model: Path = typer.Option(None, "--model", help="Model folder from 'medcloak fit'; without it the scheme runs "
                               "untrained (paper: the keyed mapping only, weaker)."),
    scheme: str = typer.Option(None, "--scheme", help="Obfuscation scheme; a --model folder of another scheme "
                               "is refused (default: the model's scheme, or paper)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    fmt: str = typer.Option("png", "--format", help="png | npy | dicom."),
    batch_size: int = typer.Option(8, "--batch-size", help="Files per task handed to a worker."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
) -> None:
    """Obfuscate every image under IN into OUT with the key (and the fitted VAE, if --model).

    Writes OUT/manifest.jsonl; rerunning resumes; exits 0 only if every file succeeded."""
    from medcloak.keys import Key
    from medcloak.obfuscation.batch import obfuscate_tree

    key = Key.load(key_file)
    if model is None and scheme in (None, "paper"):
        typer.secho("WARNING: no VAE model: mapping only (weaker: pass --model from 'medcloak fit')",
                    fg="yellow", err=True)
    summary = obfuscate_tree(in_path, out_dir, key=key, model_dir=model, workers=workers, fmt=fmt,
                             batch_size=batch_size, progress=progress, scheme=scheme)
    for rel, message in summary.errors:
        typer.secho(f"failed: {message if rel in message else f'{rel}: {message}'}", fg="red", err=True)
    mode = (("no VAE model: mapping only" if scheme in (None, "paper") else f"scheme {scheme}, untrained")
            if summary.map_only else f"model {summary.model_fingerprint[:16]}")
    typer.echo(f"{summary.line()}; key {key.short_fingerprint}; {mode}; manifest {summary.manifest}")
    if not summary.ok:
        raise typer.Exit(1)
