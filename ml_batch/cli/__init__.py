"""`ml-batch`: the command line for operators and ML engineers.

Expected failures (bad spec, unknown version, tampered artifact, unreachable database...) print one line
`error: ...` on stderr and exit with code 1 (usage errors exit with 2); `--json` gives machine-readable output.
The commands live by topic in this package's modules; importing the package registers them all on `app`.
"""

from __future__ import annotations

from ml_batch.cli.common import app, main

# The command modules, in the order `ml-batch --help` lists their commands (importing one registers them).
# isort: off
from ml_batch.cli import models, scoring, monitoring, db, demo, local_airflow  # noqa: F401
from ml_batch.cli import reconcile, status  # noqa: F401
# isort: on

__all__ = ["app", "main"]
