"""``python -m medcloak`` and the ``medcloak`` console script.

The console script names :func:`run` here, not :func:`medcloak.cli.run`, so that importing the
script imports nothing but this module: a ``spawn`` worker process (``obfuscate --workers N``)
re-runs the parent's main script before its first task, and with the script importing
``medcloak.cli`` each worker imported typer, click and pydantic it never uses (``-X importtime``
counted 0.11 s for it in a worker while the other core was busy; a one-file 2-worker run through
the script took ~20 ms less wall and CPU time, median of 15 alternating runs on 2 cores).
"""


def run() -> None:
    """Parse the command line and exit (:func:`medcloak.cli.run`)."""
    from medcloak.cli import run as cli_run

    cli_run()


if __name__ == "__main__":
    run()
