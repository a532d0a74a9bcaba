"""The `ml-batch` console script run as a user would (a subprocess), against a test's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ml_batch.config import Settings

REPO = Path(__file__).resolve().parents[2]


def run_cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ML_BATCH_DATABASE_URL": settings.database_url or "",
        "ML_BATCH_SCHEMA": settings.schema,
        "ML_BATCH_HOME": str(settings.home),
        "ML_BATCH_SPECS_DIR": str(settings.specs_dir),
        "ML_BATCH_USER": "cli-test",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "ml_batch.cli", *args], env=env, capture_output=True, text=True, timeout=300,
        cwd=REPO, check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"ml-batch {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
