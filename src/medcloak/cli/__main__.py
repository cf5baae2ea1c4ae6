"""``python -m medcloak.cli``."""

from medcloak.cli import run

run()
