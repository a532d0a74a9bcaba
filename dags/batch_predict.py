"""One `batch_predict_<model>` DAG per valid model spec in the specs folder (`ml_batch.config.specs_dir`:
ML_BATCH_SPECS_DIR, else `include/models/` next to this folder); an invalid spec file is reported by
`model_specs.py`, and every other model keeps its DAGs. Wiring only: the DAG shape is in
`ml_batch.airflow.dag_factory`, the work in `ml_batch.run`. Parsing reads the spec files and nothing else.

With ML_BATCH_NOOP_DAGS=1 (benchmarks), each model also gets `noop_batch_predict_<model>`: the same shape
with bodies that return at once, which measures what Airflow itself costs per day."""

from __future__ import annotations

import os
from pathlib import Path

from ml_batch.airflow.dag_factory import build_dag, valid_specs
from ml_batch.config import specs_dir

SPECS_DIR = specs_dir(project=Path(__file__).resolve().parents[1])
NOOP_DAGS = os.environ.get("ML_BATCH_NOOP_DAGS") == "1"

for _spec in valid_specs(SPECS_DIR):
    build_dag(_spec, specs_dir=SPECS_DIR)
    if NOOP_DAGS:
        build_dag(_spec, specs_dir=SPECS_DIR, noop=True)
