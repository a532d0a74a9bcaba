"""What a published day settles (`ml_batch.monitoring.settled`), wherever it was published: `ml-batch score`, run
as a user would, closes the alerts the daily DAG's publish task closes, and each refused day's `incomplete_day`
alert is closed by that day only. Before, a day refused as incomplete and then scored by hand kept its alert open
until some later day was published by the DAG, which closed it whether or not the refused day was published; its
`late` alert stayed open until the hourly check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from ml_batch.airflow.notifiers import failure_alert
from ml_batch.config import Settings
from ml_batch.errors import DayIncomplete
from ml_batch.monitoring import late
from ml_batch.monitoring.settled import settle_published_day
from ml_batch.ops import alerts
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration.helpers import write_spec
from tests.support.cli import run_cli
from tests.support.toy import DAY, trained_toy
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

DUE = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)  # publish_by 08:00 passed


def _open(engine: sa.Engine, kind: str) -> list[dict]:
    return [a for a in alerts.recent(engine, "toy") if a["kind"] == kind and a["state"] == "open"]


def _refused(engine: sa.Engine, day: dt.date) -> None:
    """The alert the daily DAG's failure notifier raises when its plan refuses `day` as incomplete."""
    refusal = DayIncomplete(f"model 'toy' day {day}: 32 rows, expected about 60")
    failed = RuntimeError("failed without retries")
    failed.__cause__ = refusal  # as fail_fast raises AirflowFailException from the refusal
    context = {"dag_run": SimpleNamespace(dag_id="batch_predict_toy", run_id=f"scheduled__{day}",
                                          run_after=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6),
                                                                        tzinfo=dt.UTC)),
               "run_id": f"scheduled__{day}", "ti": SimpleNamespace(task_id="plan"), "params": {"date": None},
               "data_interval_start": dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC), "exception": failed}
    alert = failure_alert("toy", "run_failure", context)
    assert alert.kind == "incomplete_day" and alert.partition_date == day
    alerts.record(engine, alert)


def _refused_and_late(engine: sa.Engine, schema: str) -> Spec:
    """The toy model, its day DAY refused as incomplete by the DAG and past its publish_by (the hourly check's
    alert)."""
    spec = trained_toy(engine, schema, publish_by="08:00", start_date="2026-05-01")
    _refused(engine, DAY)
    assert late.check_late(engine, spec, DUE).state == "late"
    assert len(_open(engine, "incomplete_day")) == len(_open(engine, "late")) == 1
    return spec


def test_a_day_scored_by_hand_resolves_its_incomplete_day_and_late_alerts(
        settings: Settings, engine: sa.Engine, tmp_path: Path, alert_webhook: WebhookReceiver) -> None:
    spec = _refused_and_late(engine, settings.schema)
    folder = tmp_path / "specs"
    write_spec(spec, folder)
    cli = Settings(home=settings.home, specs_dir=folder, schema=settings.schema, database_url=settings.database_url,
                   user=settings.user)
    alert_webhook.received.clear()

    result = run_cli(cli, "score", "-m", "toy", "--date", str(DAY))
    assert "published to" in result.stdout, result.stdout
    assert _open(engine, "incomplete_day") == []
    [resolved] = [m for m in alert_webhook.received if m["kind"] == "incomplete_day"]
    assert (resolved["state"], resolved["partition_date"]) == ("resolved", str(DAY))
    # The late alert was checked again at once: DAY is no longer among its days (the days after it, up to today's
    # clock, are still missing: the alert moved on to them).
    [still] = _open(engine, "late")
    assert still["partition_date"] > DAY and str(DAY) not in still["details"]["days"], still
    assert still["run_id"].startswith("cli__"), "checked by the CLI's publish, not the hourly check"


def test_a_dry_run_or_a_partial_day_leaves_the_incomplete_day_alert_open(
        settings: Settings, engine: sa.Engine) -> None:
    spec = _refused_and_late(engine, settings.schema)
    checked = score_day(engine, spec, DAY, run_id="dry", dry_run=True)
    assert settle_published_day(engine, spec, checked, DUE) is None
    assert len(_open(engine, "incomplete_day")) == len(_open(engine, "late")) == 1

    partial = score_day(engine, spec, DAY, run_id="partial").model_copy(update={"partial": True})
    assert settle_published_day(engine, spec, partial, DUE).state == "published"
    assert len(_open(engine, "incomplete_day")) == 1, "a day published partial is still incomplete"
    assert _open(engine, "late") == [], "but it is published: not late"


def test_a_later_day_published_whole_leaves_an_earlier_refused_day_open(settings: Settings, engine: sa.Engine) -> None:
    """Before, the two refusals were one alert (per model), and publishing the later day resolved it: the earlier
    day stayed unpublished in silence (without publish_by nothing else says so)."""
    spec = trained_toy(engine, settings.schema, start_date="2026-05-01")
    earlier = DAY - dt.timedelta(days=1)
    _refused(engine, earlier)
    _refused(engine, DAY)
    settle_published_day(engine, spec, score_day(engine, spec, DAY, run_id="day"), DUE)
    assert [a["partition_date"] for a in _open(engine, "incomplete_day")] == [earlier]
    settle_published_day(engine, spec, score_day(engine, spec, earlier, run_id="earlier"), DUE)
    assert _open(engine, "incomplete_day") == []
