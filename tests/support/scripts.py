"""Loading a script of the checkout (a benchmark) as a module, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_script(path: Path, name: str) -> ModuleType:
    """The module that `path` (a file outside any package) defines, imported afresh under `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"{path} cannot be imported"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: a dataclass of the script looks its module up there
    spec.loader.exec_module(module)
    return module
