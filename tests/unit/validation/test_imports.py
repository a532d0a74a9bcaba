"""Importing validation is cheap: no module of the package imports Great Expectations until it is used."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ml_batch.validation

REPO = Path(__file__).resolve().parents[3]
MODULES = sorted(f"ml_batch.validation.{m.name}" for m in pkgutil.iter_modules(ml_batch.validation.__path__))


def test_every_module_of_the_package_is_checked() -> None:
    assert {"ml_batch.validation.session", "ml_batch.validation.suite", "ml_batch.validation.passes"} <= set(MODULES)


@pytest.mark.parametrize("module", ["ml_batch.validation", *MODULES])
def test_importing_the_module_does_not_import_great_expectations(module: str) -> None:
    code = f"import sys, {module}; assert 'great_expectations' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
