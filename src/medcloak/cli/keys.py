"""``medcloak keygen`` and ``medcloak key-info``: create and inspect a secret key file."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app
from medcloak.keys import Key

__all__ = ["keygen", "key_info"]


@app.command()
def keygen(
    keyfile: Path = typer.Argument(..., help="Key file to create (mode 0600; never overwritten)."),
) -> None:
    """Create a new 256-bit secret key file (keep it like a password).

    Whoever holds the key (and the model) can re-create your obfuscation."""
    key = Key.generate()
    key.save(keyfile)
    typer.echo(f"wrote {keyfile} (mode 0600)")
    typer.echo(f"fingerprint {key.short_fingerprint}  ({key.fingerprint})")
    typer.echo("keep this file secret and backed up; outputs made with it cannot be reproduced without it")


@app.command("key-info")
def key_info(
    keyfile: Path = typer.Argument(..., help="Key file to describe (the secret is never printed)."),
) -> None:
    """Print a key file's fingerprint, creation time and parameters (never the secret)."""
    key = Key.load(keyfile)
    typer.echo(f"key file    {keyfile}")
    typer.echo(f"fingerprint {key.short_fingerprint}  ({key.fingerprint})")
    typer.echo(f"created     {key.created}")
    for name, value in key.params.items():
        typer.echo(f"{name:<11} {value}")
