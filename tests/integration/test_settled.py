"""What a published day settles (`ml_batch.monitoring.settled`), wherever it was published: `ml-batch score`, run
as a user would, closes the alerts the daily DAG's publish task closes. Before, a day refused as incomplete and
then scored by hand kept its `incomplete_day` alert open for good (nothing else resolves it), and its `late`
alert stayed open until the hourly check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.monitoring import late
from ml_batch.monitoring.settled import settle_published_day
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.run.day import score_day
from tests.integration.helpers import write_spec
from tests.support.cli import run_cli
from tests.support.toy import DAY, trained_toy
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

DUE = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)  # publish_by 08:00 passed


def _open(engine: sa.Engine, kind: str) -> list[dict]:
    return [a for a in alerts.recent(engine, "toy") if a["kind"] == kind and a["state"] == "open"]


def _refused_and_late(engine: sa.Engine, schema: str) -> object:
    """The toy model, its day DAY refused as incomplete by the DAG (the alert its failure callback raises) and
    past its publish_by (the hourly check's alert)."""
    spec = trained_toy(engine, schema, publish_by="08:00", start_date="2026-05-01")
    alerts.record(engine, Alert(kind="incomplete_day", severity="critical", model_name="toy", partition_date=DAY,
                                message=f"{DAY} looks incomplete: 32 rows, expected about 60"))
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
