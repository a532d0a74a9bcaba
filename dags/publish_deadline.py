"""One `publish_deadline_<model>` DAG per valid model spec that sets `publish_by` (an invalid spec file is
reported by `model_specs.py`). Wiring only: the DAG shape is in `ml_batch.airflow.dag_factory`, the rule in
`ml_batch.monitoring.late`."""

from __future__ import annotations

from pathlib import Path

from ml_batch.airflow.dag_factory import build_deadline_dag, valid_specs
from ml_batch.config import specs_dir

SPECS_DIR = specs_dir(project=Path(__file__).resolve().parents[1])

for _spec in valid_specs(SPECS_DIR):
    build_deadline_dag(_spec, specs_dir=SPECS_DIR)
