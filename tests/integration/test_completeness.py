"""A day is published only when it is whole: volume against history, readiness, null shares (real PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.errors import DayIncomplete
from ml_batch.run.day import score_day
from ml_batch.run.runs import list_runs
from ml_batch.spec import Spec
from tests.integration.helpers import write_spec
from tests.support.cli import run_cli
from tests.support.toy import DAY, ROWS_PER_DAY

pytestmark = pytest.mark.integration

#: Two Thursdays before DAY (2026-05-21, a Thursday): enough history to judge DAY by its weekday.
HISTORY = [DAY - dt.timedelta(days=14), DAY - dt.timedelta(days=7)]


def _publish_history(engine: sa.Engine, spec: Spec) -> None:
    for day in HISTORY:
        score_day(engine, spec, day, run_id=f"history-{day}")


def _keep_share(engine: sa.Engine, spec: Spec, day: dt.date, share: float) -> int:
    """Delete all but `share` of the day's source rows (the rest of the day has not landed yet); rows kept."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    keep = round(ROWS_PER_DAY * share)
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"DELETE FROM {spec.source.table} WHERE id IN (SELECT id FROM {spec.source.table} "
            "WHERE event_time >= :s AND event_time < :e ORDER BY id OFFSET :keep)"),
            {"s": start, "e": start + dt.timedelta(days=1), "keep": keep})
    return keep


def _published(engine: sa.Engine, spec: Spec, day: dt.date) -> int:
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": spec.predictions.table}).scalar() is None:
            return 0  # a refused first plan rolls back everything, the predictions table included
        return conn.execute(sa.text(f"SELECT count(*) FROM {spec.predictions.table} WHERE partition_date = :d"),
                            {"d": day}).scalar_one()


def test_a_day_at_40_percent_of_its_weekday_is_refused_and_nothing_is_published(engine: sa.Engine, toy) -> None:
    _publish_history(engine, toy)
    kept = _keep_share(engine, toy, DAY, 0.4)
    with pytest.raises(DayIncomplete) as refused:
        score_day(engine, toy, DAY, run_id="partial-day")
    message = str(refused.value)
    assert f"{kept} rows, expected about {ROWS_PER_DAY}" in message
    assert "median of the 2 Thursdays" in message and "validation.min_volume_ratio 0.5" in message
    assert "--allow-partial" in message and refused.value.waitable
    assert _published(engine, toy, DAY) == 0
    assert [r["run_id"] for r in list_runs(engine, "toy")] == [f"history-{d}" for d in reversed(HISTORY)]


def test_allow_partial_publishes_the_day_and_marks_the_run_partial(engine: sa.Engine, toy) -> None:
    _publish_history(engine, toy)
    kept = _keep_share(engine, toy, DAY, 0.4)
    summary = score_day(engine, toy, DAY, run_id="partial-ok", allow_partial=True)
    assert summary.partial and summary.status == "success" and _published(engine, toy, DAY) == kept
    run = list_runs(engine, "toy")[0]
    assert run["partial"] is True and run["day_check"]["volume"]["verdict"] == "low"
    assert run["day_check"]["volume"]["expected"] == ROWS_PER_DAY
    # A partial day is not history: the next Thursday is judged against the whole ones.
    with engine.connect() as conn:
        from ml_batch.run.completeness import expected_volume

        assert expected_volume(conn, toy, DAY + dt.timedelta(days=7))[0] == ROWS_PER_DAY


def test_a_holiday_at_75_percent_of_its_weekday_passes_with_the_defaults(engine: sa.Engine, toy) -> None:
    _publish_history(engine, toy)
    kept = _keep_share(engine, toy, DAY, 0.75)
    summary = score_day(engine, toy, DAY, run_id="holiday")
    assert not summary.partial and summary.extracted == kept == _published(engine, toy, DAY)
    check = list_runs(engine, "toy")[0]["day_check"]
    assert check["volume"]["verdict"] == "ok" and check["volume"]["ratio"] == pytest.approx(0.75)


def test_a_day_without_history_is_published_and_says_why_it_was_not_checked(engine: sa.Engine, toy) -> None:
    summary = score_day(engine, toy, DAY, run_id="first-day")
    volume = list_runs(engine, "toy")[0]["day_check"]["volume"]
    assert summary.status == "success" and volume["verdict"] == "unchecked"
    assert volume["basis"].startswith("not checked: 0 day(s) published in the 4 weeks before 2026-05-21")


def test_the_cli_refuses_the_day_with_one_error_line_and_publishes_it_with_allow_partial(
        settings: Settings, engine: sa.Engine, toy, tmp_path: Path) -> None:
    _publish_history(engine, toy)
    kept = _keep_share(engine, toy, DAY, 0.4)
    # The spec goes to a folder of the test's own (never the repo's include/models, which the DAGs read).
    settings = dataclasses.replace(settings, specs_dir=write_spec(toy, tmp_path / "specs"))
    refused = run_cli(settings, "score", "-m", "toy", "-d", str(DAY), check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    errors = refused.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and f"{kept} rows, expected about 80" in errors[0]
    assert _published(engine, toy, DAY) == 0
    allowed = run_cli(settings, "score", "-m", "toy", "-d", str(DAY), "--allow-partial")
    assert allowed.returncode == 0, allowed.stderr
    assert "PARTIAL" in allowed.stdout and _published(engine, toy, DAY) == kept
    listed = run_cli(settings, "runs", "-m", "toy")
    assert f"partial: {kept} of ~{ROWS_PER_DAY} rows" in listed.stdout


def _null_out(engine: sa.Engine, spec: Spec, day: dt.date, column: str) -> None:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET {column} = NULL "
                             "WHERE event_time >= :s AND event_time < :e"),
                     {"s": start, "e": start + dt.timedelta(days=1)})


def test_a_feature_that_turned_null_fails_the_day_naming_it(engine: sa.Engine, toy) -> None:
    _null_out(engine, toy, DAY, "x2")
    with pytest.raises(DayIncomplete) as refused:
        score_day(engine, toy, DAY, run_id="null-x2", allow_partial=True)  # not waived by allow_partial
    assert "feature 'x2' is null in 100.0% of the day's rows but in 0.0% of the training data" in str(refused.value)
    assert not refused.value.waitable and _published(engine, toy, DAY) == 0


def test_the_null_share_opt_out_publishes_the_day(engine: sa.Engine, toy) -> None:
    features = [{**f.model_dump(), "null_share_check": f.name != "x2"} for f in toy.features]
    exempt = toy.model_copy(update={"features": [type(toy.features[0]).model_validate(f) for f in features]})
    _null_out(engine, exempt, DAY, "x2")
    summary = score_day(engine, exempt, DAY, run_id="null-x2-exempt")
    assert summary.status == "success" and summary.scored == ROWS_PER_DAY
    shares = list_runs(engine, "toy")[0]["day_check"]["null_shares"]
    assert shares["x2"] == {"day": 1.0, "training": 0.0} and shares["x1"]["day"] == 0.0


def test_a_ready_query_that_says_no_refuses_the_day_before_reading_it(engine: sa.Engine, toy, settings) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{settings.schema}".load_log (day date primary key, done boolean)'))
        conn.execute(sa.text(f'INSERT INTO "{settings.schema}".load_log VALUES (:d, false)'), {"d": DAY})
    query = f'SELECT done FROM "{settings.schema}".load_log WHERE day = :day'
    ready = toy.model_copy(update={"source": toy.source.model_copy(update={"ready_query": query})})
    with pytest.raises(DayIncomplete, match=r"source\.ready_query says the day is not complete yet"):
        score_day(engine, ready, DAY, run_id="not-ready")
    with engine.begin() as conn:
        conn.execute(sa.text(f'UPDATE "{settings.schema}".load_log SET done = true'))
    assert score_day(engine, ready, DAY, run_id="ready").status == "success"
    assert list_runs(engine, "toy")[0]["day_check"]["ready"] is True
