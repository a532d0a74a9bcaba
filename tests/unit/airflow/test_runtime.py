"""Which day an Asset-triggered run scores (`runtime.run_day`), and the readiness schedule of the daily DAG."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from ml_batch.errors import ConfigError


def _context(events: dict, params: dict | None = None) -> dict:
    dag_run = SimpleNamespace(run_type="asset_triggered", run_after=dt.datetime(2026, 6, 9, 7, tzinfo=dt.UTC))
    return {"params": params or {}, "dag_run": dag_run, "run_id": "asset_triggered__1",
            "data_interval_start": dt.datetime(2026, 6, 8, 6, tzinfo=dt.UTC), "triggering_asset_events": events}


def test_a_run_the_readiness_asset_triggers_scores_the_day_of_its_latest_event() -> None:
    from ml_batch.airflow.runtime import run_day

    events = {"s3://loads/events": [SimpleNamespace(extra={"day": "2026-06-06"}),
                                    SimpleNamespace(extra={"day": "2026-06-07"})]}
    assert run_day(_context(events)) == (dt.date(2026, 6, 7), "asset_triggered__1", "asset_triggered")
    with_param = _context(events, {"date": "2026-06-01"})
    assert run_day(with_param)[0] == dt.date(2026, 6, 1), "an operator's date param wins"
    assert run_day(_context({}))[0] == dt.date(2026, 6, 8), "not asset-triggered: the data interval"


def test_an_asset_event_without_a_day_fails_naming_what_was_expected() -> None:
    from ml_batch.airflow.runtime import run_day

    events = {"s3://loads/events": [SimpleNamespace(extra={}, uri="s3://loads/events")]}
    with pytest.raises(ConfigError, match=r"without a day: expected the loader to set extra \{'day': 'YYYY-MM-DD'\}"):
        run_day(_context(events))
