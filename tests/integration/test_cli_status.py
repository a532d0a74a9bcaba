"""`ml-batch status` (`ml_batch.cli.status`, `ml_batch.monitoring.status`) run as a user would, each number checked
against the database; and the unknown-model and cut-error fixes of `runs` and `alerts`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.tables import performance
from ml_batch.db.tables import runs as runs_table
from ml_batch.model import registry
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.monitoring.late import LOOKBACK_DAYS
from ml_batch.monitoring.performance import realized_performance
from ml_batch.monitoring.status import model_status
from ml_batch.ops import alerts
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run import runs
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration.helpers import shift_toy_day, toy_spec, write_spec
from tests.support.cli import run_cli
from tests.support.toy import AS_OF, DAY, trained_toy

pytestmark = pytest.mark.integration

SHIFTED = DAY + dt.timedelta(days=1)
ATTENTION_EXIT = 3


@pytest.fixture()
def two_models(settings: Settings, engine: sa.Engine, tmp_path: Path) -> tuple[Spec, Spec, Settings]:
    """`toy` with two scored days, SHIFTED drifted and checked by the DAG's check (an open dataset_drift alert);
    `calm` on the same source, nothing due yet (its start_date is ahead), DAY scored, checked and labelled."""
    toy = trained_toy(engine, settings.schema, drift={"alert_after": {"days": 1, "of": 1}})
    score_day(engine, toy, DAY, run_id="day")
    shift_toy_day(engine, toy, SHIFTED, by=3.0)
    shift_toy_day(engine, toy, SHIFTED, by=3.0, column="x2")
    score_day(engine, toy, SHIFTED, run_id="shifted")
    check_day_drift(engine, toy, DAY, run_id="dag-day")
    check_day_drift(engine, toy, SHIFTED, run_id="dag-shifted")

    ahead = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    calm = toy_spec(settings.schema, name="calm", start_date=ahead.isoformat(),
                    predictions={"table": f"{settings.schema}.calm_predictions"})
    train_and_register(engine, calm, AS_OF, actor="t", promote=True)
    score_day(engine, calm, DAY, run_id="calm-day")
    check_day_drift(engine, calm, DAY, run_id="calm-dag")
    realized_performance(engine, calm, DAY + dt.timedelta(days=calm.labels.delay_days))

    folder = tmp_path / "specs"
    write_spec(toy, folder)
    write_spec(calm, folder)
    cli = Settings(home=settings.home, specs_dir=folder, schema=settings.schema, database_url=settings.database_url,
                   user=settings.user)
    return toy, calm, cli


def test_status_shows_each_model_from_the_database_and_exits_3_with_the_reasons(
        engine: sa.Engine, two_models: tuple[Spec, Spec, Settings]) -> None:
    _, calm, cli = two_models
    result = run_cli(cli, "status", "--json", check=False)
    assert result.returncode == ATTENTION_EXIT, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == ["calm", "toy"]

    shown = rows["toy"]
    assert shown["champion"] == registry.aliases(engine, "toy")[registry.CHAMPION]
    with engine.connect() as conn:
        run = conn.execute(sa.select(runs_table).where(runs_table.c.model_name == "toy",
                                                       runs_table.c.run_id == "shifted")).mappings().one()
    last = shown["last_run"]
    assert (last["day"], last["run_id"], last["status"]) == (SHIFTED.isoformat(), "shifted", "success")
    assert last["rows_extracted"] == run["rows_extracted"] > 0
    assert last["quarantine_share"] == pytest.approx(run["rows_quarantined"] / run["rows_extracted"])
    assert (shown["drift_day"], shown["dataset_drift"]) == (SHIFTED.isoformat(), True)
    opened = alerts.open_alerts(engine, "toy")
    assert {a["kind"] for a in opened} == {"dataset_drift", "out_of_support"}  # x1 and x2 out of support
    assert {a["severity"] for a in opened} == {"warning"}
    assert (shown["open_alerts"], shown["worst_severity"]) == (len(opened), "warning")
    reasons = shown["needs_attention"]
    assert any(r.startswith(f"dataset drift on {SHIFTED}") for r in reasons)
    assert f"{len(opened)} open alerts, the worst warning (`ml-batch alerts -m toy --open`)" in reasons
    # Nothing ran for the day the schedule (06:00 UTC daily) should have published by now.
    due = shown["due_day"]
    assert due is not None and f"{due} is not published (no run of it)" in " ".join(reasons)
    # and the days before it back to the lookback: the toy days were published in May
    earlier = dt.date.fromisoformat(due) - dt.timedelta(days=LOOKBACK_DAYS)
    assert shown["missing_days"][0] == earlier.isoformat() and len(shown["missing_days"]) == LOOKBACK_DAYS
    assert (f"{LOOKBACK_DAYS} earlier scheduled days are not published: {earlier}, "
            f"{earlier + dt.timedelta(days=1)}") in " ".join(reasons)

    quiet = rows["calm"]
    assert quiet["needs_attention"] == [] and quiet["due_day"] is None
    assert quiet["next_day"] == calm.start_date.isoformat()
    with engine.connect() as conn:
        realized = conn.execute(sa.select(performance.c.value).where(
            performance.c.model_name == "calm", performance.c.partition_date == DAY,
            performance.c.metric == "roc_auc", performance.c.detail["kind"].astext == "published")).scalar_one()
    assert (quiet["realized_day"], quiet["realized"]) == (DAY.isoformat(), pytest.approx(realized))
    assert (quiet["floor"], quiet["realized_meets_floor"]) == (0.6, True)
    assert quiet["estimate_reliable"] in (True, False) and quiet["estimate"] is not None

    human = run_cli(cli, "status", check=False)
    assert human.returncode == ATTENTION_EXIT
    assert f"needs attention toy: dataset drift on {SHIFTED}" in human.stdout
    assert "needs attention calm" not in human.stdout


def test_status_of_a_model_with_nothing_wrong_exits_0(two_models: tuple[Spec, Spec, Settings]) -> None:
    _, _, cli = two_models
    result = run_cli(cli, "status", "-m", "calm")
    assert "everything is fine" in result.stdout and "calm" in result.stdout and "needs attention" not in result.stdout


@pytest.mark.parametrize("command", [["status"], ["runs"], ["alerts"], ["performance"]])
def test_an_unknown_model_is_an_error_naming_the_known_ones(
        settings: Settings, tmp_path: Path, command: list[str]) -> None:
    # Before: `runs -m nope` printed "no runs of nope" and `alerts -m nope` "no alerts", both exiting 0.
    folder = write_spec(toy_spec(settings.schema), tmp_path / "specs")
    cli = Settings(home=settings.home, specs_dir=folder, schema=settings.schema, database_url=settings.database_url,
                   user=settings.user)
    result = run_cli(cli, *command, "-m", "nope", check=False)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error: no spec for model 'nope'")
    assert "(known models: toy)" in result.stderr


def test_the_runs_table_shows_a_long_error_whole(settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    # Before: the error was cut at 60 characters (`batch failed valida`).
    folder = write_spec(toy_spec(settings.schema), tmp_path / "specs")
    cli = Settings(home=settings.home, specs_dir=folder, schema=settings.schema, database_url=settings.database_url,
                   user=settings.user)
    error = ("batch failed validation: column x1 has 17 values above the maximum 10.0 and column color has 3 "
             "values outside the categories red, blue (quarantine them or fix the source)")
    with engine.begin() as conn:
        runs.start(conn, model="toy", run_id="long", day=DAY, run_type="cli", dry_run=False, version=1,
                   sha256="0" * 64, shards=1, spec_sha256="0" * 64)
    assert runs.fail(engine, model="toy", run_id="long", error=error)
    table = run_cli(cli, "runs", "-m", "toy").stdout
    cells = " ".join(line.split("│")[2].strip() for line in table.splitlines() if line.count("│") > 3)
    assert cells.split() == f"failed: {error}".split()


def test_days_left_behind_by_a_scheduler_that_was_down_need_attention(settings: Settings, engine: sa.Engine) -> None:
    # The scheduler was down for two days and, catchup being off, scored only the latest day when it came back:
    # the due day is published, and status once said nothing of the two days between.
    toy = trained_toy(engine, settings.schema, start_date="2026-05-01")
    first, second, latest = (DAY + dt.timedelta(days=n) for n in (1, 2, 3))
    score_day(engine, toy, DAY, run_id="before")
    score_day(engine, toy, latest, run_id="after")
    now = dt.datetime.combine(latest + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)  # its run fired at 06:00

    (status,) = model_status(engine, [toy], now=now)
    assert (status.due_day, status.due_status, status.missing_days) == (latest, runs.SUCCESS, (first, second))
    assert "2 earlier scheduled days are not published: 2026-05-22, 2026-05-23 (backfill them)" in \
        status.needs_attention

    score_day(engine, toy, first, run_id="backfill-1")
    score_day(engine, toy, second, run_id="backfill-2")
    (status,) = model_status(engine, [toy], now=now)
    assert status.missing_days == () and not any("earlier" in r for r in status.needs_attention)
