"""No DAGs: the Airflow import error of this file names every invalid model spec file and its field.

`batch_predict.py` and `retrain.py` build the DAGs of every valid spec and skip the invalid ones; the error
lives here, in a file holding no DAG, because Airflow marks every DAG of a file with an import error stale
(see `ml_batch.airflow.dag_factory`). Fix the file it names (or run `ml-batch specs check`) and the next parse
clears the error."""

from __future__ import annotations

from pathlib import Path

from ml_batch.airflow.dag_factory import refuse_invalid_specs
from ml_batch.config import specs_dir

refuse_invalid_specs(specs_dir(project=Path(__file__).resolve().parents[1]))
