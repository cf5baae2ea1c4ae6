"""``medcloak readers serve`` and ``medcloak readers export``: the expert-reader study."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["readers_app", "serve", "export"]

readers_app = typer.Typer(
    name="readers",
    help="Blinded expert-reader assessment of a study run: serve the web app, export the answers.",
    no_args_is_help=True,
)
app.add_typer(readers_app, name="readers")


def _fmt(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


@readers_app.command()
def serve(
    run_dir: Path = typer.Argument(..., help="Study output folder holding readers/items.csv."),
    port: int = typer.Option(8765, "--port", "-p", min=1, max=65535, help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
) -> None:
    """Serve the reader web app; answers go to RUN_DIR/readers/answers.sqlite at once."""
    import uvicorn

    from medcloak.readers.app import create_app

    web = create_app(run_dir)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        typer.secho(f"warning: listening on {host}: anyone who can reach it can see the images (answers need "
                    "a reader code); the traffic is not encrypted", fg="yellow", err=True)
    n = len(web.state.db.readers())
    if n == 0:
        typer.secho("warning: no reader registered yet: add each one with 'medcloak readers add RUN_DIR NAME' "
                    "(prints their code)", fg="yellow", err=True)
    typer.echo(f"reader study of {run_dir}: open http://{host}:{port}/ (readers so far: {n}); Ctrl-C stops")
    uvicorn.run(web, host=host, port=port, log_level="warning")


@readers_app.command()
def add(
    run_dir: Path = typer.Argument(..., help="Study output folder holding readers/items.csv."),
    name: str = typer.Argument(..., help="The reader's name (as it will appear in the export)."),
    new_token: bool = typer.Option(False, "--new-token", help="Replace the token of an existing reader."),
) -> None:
    """Register a reader and print their personal token (shown once; only its hash is stored)."""
    from medcloak.readers.db import ANSWERS_DB, AnswerDB
    from medcloak.readers.items import read_reader_items, readers_dir

    read_reader_items(run_dir)  # a study run, not any folder
    token = AnswerDB(readers_dir(run_dir) / ANSWERS_DB).add_reader(name, new_token=new_token)
    typer.echo(token)
    typer.echo(f"reader {name.strip()!r}: give them this code privately; it is shown only once "
               "(--new-token replaces it)", err=True)


@readers_app.command()
def export(
    run_dir: Path = typer.Argument(..., help="Study output folder holding readers/items.csv."),
) -> None:
    """Write answers.csv, summary.json and summary.csv under RUN_DIR/readers."""
    from medcloak.readers.export import export_answers

    s = export_answers(run_dir)
    out = Path(run_dir) / "readers"
    typer.echo(f"{s['n_answers']} answers from {s['n_readers']} reader(s) on {s['n_items']} images")
    typer.echo(f"{'condition':<16} {'answers':>7} {'visibility (95% CI)':>22} {'artery acc':>10} "
               f"{'Fleiss art':>10} {'Fleiss vis':>10}")
    for c in s["conditions"] + [s["all"]]:
        ci = f"[{_fmt(c['visibility_ci_low'])}, {_fmt(c['visibility_ci_high'])}]"
        typer.echo(f"{c['condition']:<16} {c['n_answers']:>7} {_fmt(c['visibility_mean']):>6} {ci:>15} "
                   f"{_fmt(c['artery_accuracy']):>10} {_fmt(c['fleiss_artery']):>10} {_fmt(c['fleiss_visibility']):>10}")
    if s["unknown_item_answers"]:
        typer.secho(f"warning: {s['unknown_item_answers']} answer(s) name items no longer in items.csv "
                    "(kept in answers.csv, left out of the summary)", fg="yellow", err=True)
    typer.echo(f"wrote {out / 'answers.csv'}, {out / 'summary.json'}, {out / 'summary.csv'}")
