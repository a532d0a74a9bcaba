"""The Celery worker preload (`ml_batch/airflow/preload.py`), wired by `airflow.env`.

Each check runs in a fresh interpreter: what it asserts is which modules a process has imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.cluster import airflow_settings

HEAVY = ("pandas", "pyarrow", "sklearn", "scipy", "great_expectations", "ml_batch.monitoring.daily",
         "ml_batch.run.shard")

# In the child: build Airflow's Celery app the way every component does, record which heavy modules that
# imported, then fire `worker_init` as a starting Celery worker does and record them again.
_CHILD = """
import json, sys
from celery.signals import worker_init
from airflow.providers.celery.executors.celery_executor_utils import app, get_celery_configuration
from ml_batch.airflow import preload
heavy = json.loads(sys.argv[1])
uses_preload_config = get_celery_configuration() is preload.CELERY_CONFIG
before = [m for m in heavy if m in sys.modules]
worker_init.send(sender=None)
after = [m for m in heavy if m in sys.modules]
print(json.dumps({"uses_preload_config": uses_preload_config, "broker": app.conf.broker_url,
                  "before": before, "after": after}))
"""


def _run_child(tmp_path: object) -> dict[str, object]:
    env = {**os.environ, **airflow_settings(), "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:1/0",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db"}
    result = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(HEAVY)], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_airflow_env_builds_the_celery_app_from_the_preload_config_and_worker_init_preloads(tmp_path):
    seen = _run_child(tmp_path)
    # airflow.env names our config dict; it is Airflow's default configuration (the broker URL is honoured).
    assert seen["uses_preload_config"] is True
    assert seen["broker"] == "redis://127.0.0.1:1/0"
    # Building the app (scheduler, API server) imports none of the heavy libraries ...
    assert seen["before"] == []
    # ... a starting worker imports all of them once, for the task processes it forks.
    assert seen["after"] == list(HEAVY)


def test_preload_config_is_airflows_default_celery_config():
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from ml_batch.airflow.preload import CELERY_CONFIG

    assert CELERY_CONFIG == DEFAULT_CELERY_CONFIG
    assert CELERY_CONFIG is not DEFAULT_CELERY_CONFIG
