"""The package version, in one place: ``pyproject.toml`` reads it from here when building.

A plain assignment (setuptools reads it without importing medcloak), so ``import medcloak`` need
not ask ``importlib.metadata`` for it: that import and look-up showed as ~45 ms under
``python -X importtime``; a command that parses its line with typer still imports the module (via
pydantic, ~12 ms) but scans no distributions. A one-file ``obfuscate`` run started 265 -> 235 ms
with this and the batch's plain ``tqdm`` (median of 8 alternating runs).
"""

__version__ = "0.1.0"
