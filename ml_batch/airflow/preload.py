"""Import the libraries ml-batch's tasks use once per Celery worker, not once per task.

In Airflow 3 a Celery worker runs each task through `supervise()`, which `os.fork()`s the task process from
the worker's pool process (bare fork on Linux; only macOS execs a fresh interpreter). Whatever the pool
process has imported, the task process inherits for free. Left alone, every task imports pandas, pyarrow,
scikit-learn, SciPy and Great Expectations again (seconds per task, most of a backfill's time).

How it is wired: Airflow's `[celery] celery_config_options` names the dict the Celery app is built from.
`airflow.env` points it at `CELERY_CONFIG` below: Airflow's own default configuration, unchanged. Importing
this module to read that dict also connects `_preload` to Celery's `worker_init` signal, which only a Celery
worker sends (in its main process, before the prefork pool forks its children). The scheduler and the API
server import the same module to build the same Celery app, and for them the signal never fires.

`worker_init` rather than `worker_process_init`: the latter runs in each pool child and must finish within
`worker_proc_alive_timeout` (4 s by default), less than these imports take on a loaded machine; importing
once in the main process before the fork also shares the pages between the pool children.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

logger = logging.getLogger(__name__)

# Airflow's default Celery configuration, unchanged: this module only adds the worker_init hook below.
CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)

# What the daily and retraining DAGs' task bodies import (ml_batch.airflow.tasks imports them lazily), and
# what a task process parses its DAG file with. Importing these has no side effect: nothing in ml_batch
# opens a connection or reads a file at import time (tests/dags/test_parse_time.py).
PRELOAD_MODULES: tuple[str, ...] = (
    "airflow.sdk.execution_time.task_runner",
    "ml_batch.airflow.dag_factory",
    "ml_batch.airflow.tasks",
    "ml_batch.airflow.runtime",
    "ml_batch.spec",
    "ml_batch.spec_folder",
    "ml_batch.run.runs",
    "ml_batch.model.registry",
    "ml_batch.run.plan",
    "ml_batch.run.shard",
    "ml_batch.run.publish",
    "ml_batch.validation.passes",
    "ml_batch.monitoring.daily",
    "ml_batch.monitoring.drift",
    "ml_batch.monitoring.profile",
    "ml_batch.monitoring.performance",
    "ml_batch.monitoring.shadow",
    "ml_batch.monitoring.report",
    "ml_batch.monitoring.estimate",
    "ml_batch.model.training",
    "ml_batch.features",
    "ml_batch.promotion.retrain",
    "ml_batch.promotion.shadow",
    "ml_batch.ops.alerts",
)


def preload(modules: tuple[str, ...] = PRELOAD_MODULES) -> dict[str, float]:
    """Import `modules` and Great Expectations (the way `ml_batch.validation` does); seconds per module.

    A module that fails to import is logged and skipped: the task that needs it imports it again and fails
    there, with its own traceback in its own log, instead of the whole worker refusing to start.
    """
    seconds: dict[str, float] = {}
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except ImportError as exc:
            logger.warning("preload: cannot import %s (%s); tasks that need it import it themselves", name, exc)
            continue
        seconds[name] = time.perf_counter() - started
    started = time.perf_counter()
    from ml_batch.validation.session import warm_gx

    warm_gx()
    seconds["great_expectations"] = time.perf_counter() - started
    return seconds


@worker_init.connect(weak=False)
def _preload(**_: Any) -> None:
    started = time.perf_counter()
    seconds = preload()
    slowest = sorted(seconds.items(), key=lambda item: -item[1])[:5]
    logger.info("preloaded %d modules for task processes in %.1fs (slowest: %s)", len(seconds),
                time.perf_counter() - started, ", ".join(f"{name} {s:.1f}s" for name, s in slowest))
