"""Issue 13 item 3: per-run metrics reach a StatsD listener through Airflow's metrics interface.

The metrics are sent in a subprocess with `[metrics] statsd_on` set through the environment, whose backend is
set up as Airflow's task runner does it (`stats.initialize(factory=get_stats_factory(), ...)`): Airflow reads
its configuration once per process. The test binds the UDP socket on 127.0.0.1 and reads the packets.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from ml_batch.run.publish import RunSummary

REPO = Path(__file__).resolve().parents[3]

PUBLISH = RunSummary(model="credit_default", day=dt.date(2026, 6, 1), run_id="scheduled__2026-06-02", version=3,
                     status="success", extracted=2040, scored=2001, quarantined=39, score_mean=0.125,
                     stage_seconds={"plan": 0.5, "score": 2.25}).to_xcom()
DRIFT = {"status": "checked", "model": "credit_default", "day": "2026-06-01", "version": 3, "share": 0.25,
         "drifted_features": ["income", "age", "channel"], "dataset_drift": False,
         "estimated": {"estimated_roc_auc": 0.81}, "out_of_support": [{"feature": "income", "share": 0.4}],
         "multivariate_drift": True, "estimate_reliable": False}
PERFORMANCE = [{"model_name": "credit_default", "model_version": 3, "partition_date": "2026-05-02",
                "metric": "roc_auc", "value": 0.79, "n": 1800}]

_SEND = textwrap.dedent("""
    import json, sys
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory
    from ml_batch.airflow import stats as ml_stats

    # what airflow.sdk.execution_time.task_runner.main does before a task body runs
    stats.initialize(factory=get_stats_factory(), export_legacy_names=conf.getboolean("metrics", "legacy_names_on"))
    publish, drift, performance = json.loads(sys.argv[1])
    sent = ml_stats.publish_metrics(publish) + ml_stats.drift_metrics(drift)
    sent += ml_stats.performance_metrics("credit_default", performance)
    print(json.dumps(sent))
""")


def _send(statsd_on: bool) -> tuple[list[str], list[str]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        env = {**os.environ, "AIRFLOW__METRICS__STATSD_ON": str(statsd_on),
               "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
               "AIRFLOW__METRICS__STATSD_PORT": str(sock.getsockname()[1]),
               "AIRFLOW__METRICS__STATSD_PREFIX": "airflow"}
        result = subprocess.run([sys.executable, "-c", _SEND, json.dumps([PUBLISH, DRIFT, PERFORMANCE])], env=env,
                                capture_output=True, text=True, timeout=120, cwd=REPO, check=True)
        packets = []
        try:
            while True:
                packets += sock.recv(65536).decode().splitlines()
        except TimeoutError:
            pass
    return json.loads(result.stdout.strip().splitlines()[-1]), packets


def test_run_metrics_arrive_on_a_statsd_listener() -> None:
    sent, packets = _send(statsd_on=True)
    ours = [p for p in packets if p.startswith("airflow.ml_batch.")]  # Airflow sends its own metrics too

    assert set(ours) == {
        "airflow.ml_batch.credit_default.rows_extracted:2040.0|g",
        "airflow.ml_batch.credit_default.rows_scored:2001.0|g",
        "airflow.ml_batch.credit_default.rows_quarantined:39.0|g",
        "airflow.ml_batch.credit_default.score_mean:0.125|g",
        "airflow.ml_batch.credit_default.stage.plan:500.000000|ms",
        "airflow.ml_batch.credit_default.stage.score:2250.000000|ms",
        "airflow.ml_batch.credit_default.runs.success:1|c",
        "airflow.ml_batch.credit_default.drift_share:0.25|g",
        "airflow.ml_batch.credit_default.drifted_features:3.0|g",
        "airflow.ml_batch.credit_default.dataset_drift:0.0|g",
        "airflow.ml_batch.credit_default.estimated_roc_auc:0.81|g",
        "airflow.ml_batch.credit_default.out_of_support:1.0|g",
        "airflow.ml_batch.credit_default.multivariate_drift:1.0|g",
        "airflow.ml_batch.credit_default.estimate_reliable:0.0|g",
        "airflow.ml_batch.credit_default.realized_roc_auc:0.79|g",
    }
    assert len(sent) == len(ours) == 15


def test_without_statsd_on_nothing_is_sent() -> None:
    sent, packets = _send(statsd_on=False)
    # the calls are made; Airflow's no-op backend drops them
    assert [p for p in packets if "ml_batch" in p] == [] and len(sent) == 15


def test_skipped_steps_and_missing_values_send_nothing() -> None:
    from ml_batch.airflow import stats as ml_stats

    assert ml_stats.drift_metrics({"status": "skipped", "reason": "dry run"}) == []
    assert ml_stats.performance_metrics("credit_default", [{"metric": "roc_auc", "value": None}]) == []
    partial = {**PUBLISH, "score_mean": None, "stage_seconds": {"score": float("nan")}}
    assert "ml_batch.credit_default.score_mean" not in ml_stats.publish_metrics(partial)
    assert ml_stats.metric_name("my model", "stage", "gx/validate") == "ml_batch.my_model.stage.gx_validate"
