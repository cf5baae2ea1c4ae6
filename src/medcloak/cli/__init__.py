"""Command-line interface: a thin Typer layer over the library API.

Each command group lives in its own module here and only parses arguments, calls the library
and prints a summary. :func:`main` turns :class:`~medcloak.errors.MedcloakError` into a
one-line message and exit status 2.
"""

from __future__ import annotations

import os
import sys

import typer

from medcloak import __version__
from medcloak.cli._app import app
from medcloak.errors import MedcloakError, printable

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


def _environment_error(exc: BaseException) -> str:
    """One line for an ordinary environment error (file system, encoding, memory), no traceback."""
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or type(exc).__name__
        return f"{os.fsdecode(where)}: {reason}" if where != "" else f"{reason} ({type(exc).__name__})"
    if isinstance(exc, MemoryError):
        return "out of memory (lower --workers or the pixel limits, or use smaller inputs)"
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    """Console entry point.

    :class:`MedcloakError` and ordinary environment errors (``OSError`` such as a read-only
    folder or a full disk, ``UnicodeError``, ``MemoryError``) print one line and return 2.
    """
    try:
        app(args=argv, prog_name="medcloak", standalone_mode=True)
    except MedcloakError as exc:
        typer.secho(f"error: {printable(str(exc))}", fg="red", err=True)
        return 2
    except (OSError, UnicodeError, MemoryError) as exc:
        typer.secho(f"error: {printable(' '.join(_environment_error(exc).split()))}", fg="red", err=True)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0



def run() -> None:
    """``medcloak`` console script: exit with :func:`main`'s status, without the interpreter's
    teardown of torch's modules (0.3-0.4 s per command; see :mod:`medcloak.cli._exit`)."""
    from medcloak.cli._exit import exit_now

    exit_now(main())
