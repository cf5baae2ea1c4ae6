"""The CLI shell: version, help, and one-line errors."""

import subprocess
import sys

from medcloak import __version__
from medcloak.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "medcloak.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "medcloak" in out.stdout
