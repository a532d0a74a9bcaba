"""Where a registered version's code came from: the package version, plus the git commit of a checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ml_batch


def code_version() -> str:
    """The package version, plus the git commit when ml-batch runs from a checkout.

    Returns:
        `0.1.0` when installed, `0.1.0+g<12 hex digits>` from a git checkout.
    """
    root = Path(ml_batch.__file__).resolve().parents[1]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root, capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ml_batch.__version__
    sha = result.stdout.strip()
    return f"{ml_batch.__version__}+g{sha}" if result.returncode == 0 and sha else ml_batch.__version__
