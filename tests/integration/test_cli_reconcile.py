"""`ml-batch reconcile` run as a user would (a subprocess): its report, its JSON, its exit code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration.helpers import write_spec
from tests.integration.test_reconcile import LATE_ROWS, add_rows, day_ids
from tests.support.cli import run_cli
from tests.support.toy import DAY, ROWS_PER_DAY

pytestmark = pytest.mark.integration


@pytest.fixture()
def toy_settings(settings: Settings, toy: Spec, tmp_path: Path) -> Settings:
    """The test's settings with a specs folder holding the toy spec."""
    return dataclasses.replace(settings, specs_dir=write_spec(toy, tmp_path / "specs"))


def test_dry_run_then_reconcile_then_nothing_left(engine: sa.Engine, toy: Spec, toy_settings: Settings) -> None:
    score_day(engine, toy, DAY, run_id="d1")
    add_rows(engine, toy, DAY, LATE_ROWS)

    dry = json.loads(run_cli(toy_settings, "reconcile", "-m", "toy", "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True
    assert [(d["day"], d["status"], d["published_rows"], d["source_rows"], d["changes"]) for d in dry["days"]] == [
        (DAY.isoformat(), "would_rescore", ROWS_PER_DAY, ROWS_PER_DAY + LATE_ROWS, ["rows", "keys"])]

    human = run_cli(toy_settings, "reconcile", "-m", "toy").stdout
    assert "rescored" in human and f"reconcile__{DAY}__" in human
    assert "toy: 1 day(s) checked" in human and "1 changed" in human

    again = json.loads(run_cli(toy_settings, "reconcile", "-m", "toy", "--days", "3", "--json").stdout)
    assert [(d["status"], d["source_rows"], d["published_rows"]) for d in again["days"]] == [
        ("unchanged", ROWS_PER_DAY + LATE_ROWS, ROWS_PER_DAY + LATE_ROWS)]


def test_a_failed_rescore_prints_the_report_then_one_error_line(engine: sa.Engine, toy: Spec,
                                                                  toy_settings: Settings) -> None:
    for n in (3, 2, 1, 0):
        score_day(engine, toy, DAY - dt.timedelta(days=n), run_id=f"d{n}")
    with engine.begin() as conn:  # DAY keeps 10 of its 80 rows: its volume is refused now
        conn.execute(sa.text(f"DELETE FROM {toy.source.table} WHERE id = ANY(:ids)"),
                     {"ids": day_ids(engine, toy, DAY)[10:]})
    add_rows(engine, toy, DAY - dt.timedelta(days=1), LATE_ROWS)

    result = run_cli(toy_settings, "reconcile", "-m", "toy", check=False)

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "rescored" in result.stdout and "failed" in result.stdout
    # stderr also logs the day's alerts (WARNING); the failure itself is one `error:` line, the last
    [line] = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert result.stderr.strip().splitlines()[-1] == line
    assert line.startswith(f"error: 1 of 4 day(s) of model 'toy' failed to re-score: {DAY} (")
    assert "min_volume_ratio" in line


def test_a_negative_days_is_a_usage_error(toy_settings: Settings) -> None:
    result = run_cli(toy_settings, "reconcile", "-m", "toy", "--days", "-1", check=False)
    assert result.returncode == 2 and "--days" in result.stderr
