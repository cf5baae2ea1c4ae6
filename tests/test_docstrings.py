"""Every ``>>>`` example in a docstring of the library runs and gives what it shows
(after ``opacus/tests/docstring_examples_test.py``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import medcloak

MODULES = sorted(m.name for m in pkgutil.walk_packages(medcloak.__path__, "medcloak.")
                 if not m.name.endswith("__main__"))


def test_the_modules_were_found():
    assert {"medcloak.io.frameset", "medcloak.obfuscation.scheme", "medcloak.attacks.base"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, one_torch_thread):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed"
