"""The package version, in one place: ``pyproject.toml`` reads it from here when building.

A plain assignment (setuptools reads it without importing medcloak), so ``import medcloak`` need
not ask ``importlib.metadata`` for it: that import and look-up cost ~45 ms of every command's
start-up (measured with ``python -X importtime``).
"""

__version__ = "0.1.0"
