"""The CLI shell: version, help, and one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from medcloak import __version__
from medcloak.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_version_is_the_installed_distributions():
    # medcloak/_version.py is the one source (pyproject reads it); the installed metadata must agree
    from importlib.metadata import version

    assert __version__ == version("medcloak")


def test_obfuscate_run_skips_slow_imports(tmp_path):
    # start-up, measured with python -X importtime: `import medcloak` no longer asks importlib.metadata
    # for the version (import and distribution scan ~45 ms; typer's pydantic still imports the module
    # itself, 12 ms, but scans nothing), and a whole `obfuscate` run (2 workers) does not import asyncio
    # (tqdm.auto did, ~25 ms)
    import numpy as np

    from medcloak.io.images import write_png
    from medcloak.keys import Key

    write_png(tmp_path / "in" / "a.png", np.random.default_rng(0).random((16, 16)))
    Key(b"\x31" * 32).save(tmp_path / "k.key")
    code = ("import sys; from medcloak.cli import main; "
            f"rc = main(['obfuscate', {str(tmp_path / 'in')!r}, {str(tmp_path / 'out')!r}, '--key', "
            f"{str(tmp_path / 'k.key')!r}, '--no-progress', '--workers', '2']); "
            "print(rc, 'asyncio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 False"
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1
    light = subprocess.run([sys.executable, "-c", "import sys, medcloak; print('importlib.metadata' in sys.modules)"],
                           capture_output=True, text=True)
    assert light.stdout.strip() == "False", light.stderr


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "medcloak.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "medcloak" in out.stdout


def test_spawned_worker_does_not_import_the_cli():
    # a spawn worker of `medcloak obfuscate --workers N` re-runs the parent's main script the way
    # multiprocessing.spawn does (runpy.run_path as __mp_main__); the installed script must not
    # pull in typer and the command modules there
    script = Path(sys.executable).parent / "medcloak"
    if not script.is_file():
        pytest.skip("the medcloak console script is not installed beside this interpreter")
    code = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); "
            "print(sorted(m for m in ('typer', 'click', 'pydantic', 'medcloak.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    ran = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.startswith("medcloak "), ran.stderr
