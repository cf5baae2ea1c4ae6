"""The Typer application object every command module registers on."""

import typer

app = typer.Typer(
    name="medcloak",
    help=(
        "Obfuscate medical images with a secret key so an outside party can train deep-learning "
        "models on them, and measure how private and how useful the result is."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
