"""`ml-batch drift` and `ml-batch alerts` (`ml_batch.cli.monitoring`), run as a user would (a subprocess), with
a real webhook receiver on 127.0.0.1: reading a day's drift never alerts; the DAG's check does."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ml_batch.config import Settings
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.ops import alerts
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.support.cli import run_cli
from tests.support.toy import AS_OF, trained_toy
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

SHIFTED = AS_OF + dt.timedelta(days=2)



@pytest.fixture()
def drifting(settings: Settings, engine: sa.Engine, tmp_path: Path) -> tuple[Spec, Settings]:
    """The toy model, alerting on the first drifted day, with SHIFTED scored and shifted; the CLI's settings."""
    spec = trained_toy(engine, settings.schema, drift={"alert_after": {"days": 1, "of": 1}})
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET x1 = x1 + 1.5, x2 = x2 * 2 "
                             "WHERE event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(SHIFTED, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(SHIFTED + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})
    score_day(engine, spec, SHIFTED, run_id="shifted")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "toy.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    cli = Settings(home=settings.home, specs_dir=specs, schema=settings.schema, database_url=settings.database_url,
                   user=settings.user)
    return spec, cli


def test_drift_read_twice_and_rechecked_sends_nothing_and_prints_the_stored_result(
        engine: sa.Engine, drifting: tuple[Spec, Settings], alert_webhook: WebhookReceiver) -> None:
    spec, cli = drifting
    first = json.loads(run_cli(cli, "drift", "-m", "toy", "-d", SHIFTED.isoformat(), "--json").stdout)
    assert first["source"] == "checked now" and first["summary"]["sustained_drift"] is True
    second = json.loads(run_cli(cli, "drift", "-m", "toy", "-d", SHIFTED.isoformat(), "--json").stdout)
    assert second["source"] == "stored" and second["summary"] == first["summary"]
    human = run_cli(cli, "drift", "-m", "toy", "-d", SHIFTED.isoformat()).stdout
    assert "DATASET DRIFT" in human and "the stored result of the day's check" in human
    rechecked = json.loads(run_cli(cli, "drift", "-m", "toy", "-d", SHIFTED.isoformat(), "--recheck",
                                   "--json").stdout)
    assert rechecked["source"] == "rechecked" and rechecked["summary"]["dataset_drift"] is True
    assert [b["text"] for b in alert_webhook.received] == []
    assert alerts.recent(engine, "toy", limit=100) == [a for a in alerts.recent(engine, "toy", limit=100)
                                                        if a["kind"] in ("gate_promote", "gate_reject")]

    # The DAG's check of the same day does alert (so the silence above is the CLI's doing), once.
    check_day_drift(engine, spec, SHIFTED, run_id="dag")
    check_day_drift(engine, spec, SHIFTED, run_id="dag-retry")
    assert [b["kind"] for b in alert_webhook.received] == ["dataset_drift"]
    [shown] = json.loads(run_cli(cli, "alerts", "-m", "toy", "--open", "--json").stdout)
    assert (shown["kind"], shown["state"], shown["occurrences"]) == ("dataset_drift", "open", 1)
    assert shown["runbook"] == "README.md#alert-dataset_drift"
    table = run_cli(cli, "alerts", "-m", "toy", "--open").stdout
    assert "dataset_drift" in table and "open" in table and "gate_promote" not in table
