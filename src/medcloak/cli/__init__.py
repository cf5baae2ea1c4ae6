"""Command-line interface: a thin Typer layer over the library API.

Each command group lives in its own module here and only parses arguments, calls the library
and prints a summary. :func:`main` turns :class:`~medcloak.errors.MedcloakError` into a
one-line message and exit status 2.
"""

from __future__ import annotations

import sys

import typer

from medcloak import __version__
from medcloak.cli._app import app
from medcloak.errors import MedcloakError

# Command modules, imported for their registrations on ``app`` (order = order in --help).
from medcloak.cli import synth, dataset, keys, fit, obfuscate, attack, learn, study, compare, readers  # noqa: E402,F401,I001


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"medcloak {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Obfuscate medical images with a secret key and measure privacy and utility."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        app(args=argv, prog_name="medcloak", standalone_mode=True)
    except MedcloakError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0



def run() -> None:
    """``medcloak`` console script: exit with :func:`main`'s status."""
    sys.exit(main())
