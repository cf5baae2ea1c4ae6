"""``python -m medcloak``."""

from medcloak.cli import run

run()
