"""One `retrain_<model>` DAG per model spec: weekly (training.schedule) and on the model's drift Asset.
Wiring only: the DAG shape is in `ml_batch.airflow.dag_factory`, the work in `ml_batch.promotion`."""

from __future__ import annotations

from pathlib import Path

from ml_batch.airflow.dag_factory import build_retrain_dag
from ml_batch.config import specs_dir
from ml_batch.spec import load_specs

SPECS_DIR = specs_dir(project=Path(__file__).resolve().parents[1])

for _spec in load_specs(SPECS_DIR).values():
    build_retrain_dag(_spec, specs_dir=SPECS_DIR)
