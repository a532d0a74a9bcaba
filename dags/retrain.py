"""One `retrain_<model>` DAG per model spec: weekly (training.schedule) and on the model's drift Asset.
Wiring only: the DAG shape is in `ml_batch.airflow.dag_factory`, the work in `ml_batch.jobs`."""

from __future__ import annotations

import os
from pathlib import Path

from ml_batch.airflow.dag_factory import build_retrain_dag
from ml_batch.spec import load_specs

SPECS_DIR = Path(os.environ.get("ML_BATCH_SPECS_DIR") or Path(__file__).resolve().parents[1] / "include" / "models")

for _spec in load_specs(SPECS_DIR).values():
    build_retrain_dag(_spec)
