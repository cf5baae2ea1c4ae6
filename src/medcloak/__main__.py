"""``python -m medcloak`` and the ``medcloak`` console script.

The console script names :func:`run` here, not :func:`medcloak.cli.run`, so that importing the
script imports nothing but this module: a ``spawn`` worker process (``obfuscate --workers N``)
re-runs the parent's main script before its first task, and with the script importing
``medcloak.cli`` each worker imported typer, click and pydantic it never uses (~0.11 s of a
worker's start-up on the 2-core benchmark machine, measured with ``-X importtime``).
"""


def run() -> None:
    """Parse the command line and exit (:func:`medcloak.cli.run`)."""
    from medcloak.cli import run as cli_run

    cli_run()


if __name__ == "__main__":
    run()
