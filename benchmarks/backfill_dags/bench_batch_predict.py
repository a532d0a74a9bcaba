"""DAGs of the backfill benchmark (`benchmarks/backfill.py`): for each spec in ML_BATCH_SPECS_DIR, the daily
`batch_predict_<model>` DAG and its no-op twin `noop_batch_predict_<model>` (same tasks, mapping and
dependencies; bodies that return at once), both built by `ml_batch.airflow.dag_factory`.

A `dag_factory` without the `noop` switch (the code before it existed, measured as the baseline) gives
only the daily DAG; the benchmark then reports the no-op figures as not measured.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from ml_batch.airflow.dag_factory import build_dag
from ml_batch.spec_folder import load_specs

SPECS_DIR = Path(os.environ.get("ML_BATCH_SPECS_DIR") or Path(__file__).resolve().parents[2] / "include" / "models")
HAS_NOOP = "noop" in inspect.signature(build_dag).parameters

for _spec in load_specs(SPECS_DIR).values():
    build_dag(_spec)
    if HAS_NOOP:
        build_dag(_spec, noop=True)  # type: ignore[call-arg]
