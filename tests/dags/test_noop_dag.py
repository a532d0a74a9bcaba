"""The no-op twin of the daily DAG (`build_dag(spec, noop=True)`): the same shape, bodies that return at once.

Benchmarks backfill it next to the real DAG to tell Airflow's own cost per day from ml-batch's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from airflow.sdk import DAG, Asset

from ml_batch.airflow.dag_factory import build_dag
from ml_batch.spec import Spec
from tests.dags.test_dag_integrity import DEMO_SPECS, parse_dags_folder


def _mapped_over(task: Any) -> list[str] | None:
    expand_input = getattr(task, "op_kwargs_expand_input", None)
    return sorted(expand_input.value) if expand_input is not None else None


def _shape(dag: DAG) -> dict[str, Any]:
    return {
        task.task_id: (type(task).__name__, sorted(task.upstream_task_ids), sorted(task.downstream_task_ids),
                       getattr(task, "max_active_tis_per_dagrun", None), task.retries, _mapped_over(task))
        for task in dag.tasks
    }


def test_noop_dag_has_the_daily_dags_shape(spec: Spec) -> None:
    real, noop = build_dag(spec), build_dag(spec, noop=True)
    assert noop.dag_id == f"noop_batch_predict_{spec.name}"
    assert _shape(noop) == _shape(real)
    assert _mapped_over(noop.get_task("score")) == ["shard"]
    assert dict(noop.params.dump()) == dict(real.params.dump())
    assert (noop.max_active_runs, noop.timetable) == (real.max_active_runs, real.timetable)


def test_noop_dag_emits_no_asset_the_real_dags_listen_to(spec: Spec) -> None:
    real, noop = build_dag(spec), build_dag(spec, noop=True)
    names = {a.name for dag in (real,) for t in dag.tasks for a in t.outlets if isinstance(a, Asset)}
    noop_names = {a.name for t in noop.tasks for a in t.outlets if isinstance(a, Asset)}
    assert len(noop_names) == 2 and not names & noop_names


def test_noop_dags_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not any(d.startswith("noop_") for d in parse_dags_folder(DEMO_SPECS).dag_ids)
    monkeypatch.setenv("ML_BATCH_NOOP_DAGS", "1")
    assert "noop_batch_predict_credit_default" in parse_dags_folder(DEMO_SPECS).dag_ids


@pytest.mark.parametrize("shards", [None, 3])
def test_noop_run_maps_score_over_the_shards_param(spec: Spec, airflow_db: None, shards: int | None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_BATCH_NOOP_DAGS", "1")  # dag.test() syncs the DAGs folder, which must hold it
    dag = build_dag(spec, noop=True)
    run = dag.test(logical_date=dt.datetime(2026, 5, 2, tzinfo=dt.UTC), run_conf={"shards": shards})
    assert run.state == "success"
    states: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, []).append(str(ti.state))
    assert states["score"] == ["success"] * (shards or 1)
    assert states["signal_drift"] == ["skipped"]
    assert all(s == ["success"] for t, s in states.items() if t not in ("score", "signal_drift"))
