"""The DAG's failure alert (`ml_batch.airflow.notifiers.failure_alert`): the day being scored, the failing task
and the first line of the cause, from the contexts Airflow hands a failure callback."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import psycopg2
import sqlalchemy as sa

from ml_batch.airflow.notifiers import failure_alert
from ml_batch.errors import ValidationFailed

DAG_ID = "batch_predict_toy"
RUN_AFTER = dt.datetime(2026, 5, 22, 1, 5, tzinfo=dt.UTC)


def _null_violation() -> sa.exc.IntegrityError:
    """A NOT NULL violation as SQLAlchemy raises it: the server's words, then the statement and parameters."""
    orig = psycopg2.errors.NotNullViolation(
        'null value in column "value" of relation "drift_results" violates not-null constraint\n'
        "DETAIL:  Failing row contains (toy, 2026-05-21, x2, ks, 1, ...).")
    return sa.exc.IntegrityError("INSERT INTO drift_results ...", {"value__3": None}, orig)


def _context(**values: Any) -> dict[str, Any]:
    """A failure callback's context as a task instance's template context holds it (what a DAG callback with a
    last task instance, and a task callback, get)."""
    dag_run = SimpleNamespace(dag_id=DAG_ID, run_id="scheduled__2026-05-22T01:00:00+00:00", run_after=RUN_AFTER)
    base = {"dag_run": dag_run, "run_id": dag_run.run_id, "ti": SimpleNamespace(task_id="drift"),
            "params": {"date": None}, "data_interval_start": dt.datetime(2026, 5, 21, tzinfo=dt.UTC)}
    return {**base, **values}


def test_a_task_failure_names_the_day_the_task_and_the_first_line_of_the_cause() -> None:
    alert = failure_alert("toy", "run_failure", _context(exception=_null_violation()))
    assert alert.message == (f"{DAG_ID} run scheduled__2026-05-22T01:00:00+00:00 failed in task drift: null value "
                             'in column "value" of relation "drift_results" violates not-null constraint; day '
                             "2026-05-21")
    assert alert.partition_date == dt.date(2026, 5, 21) and alert.severity == "critical"
    assert alert.details == {"task_id": "drift", "reason": None, "day": "2026-05-21",
                             "cause": 'null value in column "value" of relation "drift_results" violates not-null '
                                      "constraint"}
    assert "INSERT" not in alert.message and "DETAIL" not in alert.message


def test_the_date_param_is_the_day_as_for_the_tasks() -> None:
    alert = failure_alert("toy", "run_failure", _context(params={"date": "2026-05-03"}, exception=ValueError("x")))
    assert alert.partition_date == dt.date(2026, 5, 3) and alert.message.endswith(": x; day 2026-05-03")


def test_a_manual_run_without_a_data_interval_scores_the_day_before_it_ran() -> None:
    alert = failure_alert("toy", "run_failure", _context(data_interval_start=None, exception=ValueError("x")))
    assert alert.partition_date == dt.date(2026, 5, 21)


def test_a_dag_callback_without_the_exception_says_where_the_cause_is() -> None:
    alert = failure_alert("toy", "run_failure", _context(reason="task_failure"))
    assert alert.message.endswith("failed in task drift: task_failure (the DAG's failure callback gets no "
                                  "exception: see the log of task drift); day 2026-05-21")
    assert alert.partition_date == dt.date(2026, 5, 21)


def test_the_minimal_dag_callback_context_still_gives_an_alert() -> None:
    # What Airflow's DAG processor passes when it has no last task instance: the DAG, the run id, the reason.
    context = {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": "manual__1", "reason": "timed_out"}
    alert = failure_alert("toy", "run_failure", context)
    assert alert.message == (f"{DAG_ID} run manual__1 failed: timed_out (the DAG's failure callback gets no "
                             "exception: see the task logs); day unknown")
    assert alert.partition_date is None and alert.dag_id == DAG_ID and alert.run_id == "manual__1"


def test_a_date_param_that_is_not_a_date_leaves_the_day_unknown_and_the_alert_whole() -> None:
    alert = failure_alert("toy", "run_failure", _context(params={"date": "yesterday"}, exception=ValueError("bad")))
    assert alert.partition_date is None and alert.message.endswith("failed in task drift: bad; day unknown")


def test_a_long_cause_is_shortened_and_the_day_kept() -> None:
    alert = failure_alert("toy", "run_failure", _context(exception=ValueError("x" * 5000)))
    assert alert.message.endswith("x…; day 2026-05-21") and len(alert.message) < 1200


def test_an_asset_triggered_run_names_the_day_of_its_event() -> None:
    events = {"asset": [SimpleNamespace(extra={"day": "2026-05-19"})]}
    alert = failure_alert("toy", "run_failure", _context(triggering_asset_events=events, exception=ValueError("x")))
    assert alert.partition_date == dt.date(2026, 5, 19) and alert.message.endswith("; day 2026-05-19")


def test_a_day_refused_as_incomplete_alerts_as_incomplete_day_with_its_cause() -> None:
    from ml_batch.errors import DayIncomplete

    refusal = DayIncomplete("model 'toy' day 2026-05-21: 32 rows, expected about 80")
    failed = RuntimeError("failed without retries")
    failed.__cause__ = refusal  # as fail_fast raises AirflowFailException from the refusal
    alert = failure_alert("toy", "run_failure", _context(exception=failed))
    assert alert.kind == "incomplete_day"
    assert alert.subject == "2026-05-21", "each refused day is its own alert, resolved when it is published whole"
    assert failure_alert("toy", "run_failure", _context(exception=ValueError("x"))).kind == "run_failure"


def test_a_batch_failure_alert_quotes_no_failing_value_of_the_source() -> None:
    # Before: the stored alert's message and details["cause"] ended with "; e.g. 'green'" (the analyst role
    # reads the alerts table).
    said = "model 'toy' day 2026-05-21: batch failed validation: "
    lines = ["color: expect_column_values_to_be_in_set: 4 of 80 rows failed (5.0%), above "
             "validation.max_quarantine_share 1.0%; e.g. 'green'"]
    refusal = ValidationFailed(said + lines[0], without_values=said + lines[0].split("; e.g. ")[0])
    failed = RuntimeError(f"{refusal} (ValidationFailed: deterministic, not retried)")
    failed.__cause__ = refusal  # as fail_fast raises AirflowFailException from it
    alert = failure_alert("toy", "run_failure", _context(exception=failed))
    assert "green" not in alert.message and "green" not in str(alert.details)
    assert "4 of 80 rows failed (5.0%)" in alert.message


def test_a_mail_names_the_day_and_state_links_to_what_to_do_and_escapes_the_message() -> None:
    from ml_batch.airflow.notifiers import email_body
    from ml_batch.ops.alerts import Alert

    alert = Alert(kind="run_failure", severity="critical", model_name="toy", partition_date=dt.date(2026, 5, 21),
                  message="batch_predict_toy failed in task score: <ValueError> bad row; day 2026-05-21")
    assert alert.headline() == "[ml-batch] CRITICAL run_failure toy"
    assert email_body(alert) == (
        "<p>batch_predict_toy failed in task score: &lt;ValueError&gt; bad row; day 2026-05-21</p>"
        "<p>day 2026-05-21, state event</p>"
        '<p>What to do: <a href="README.md#alert-run_failure">README.md#alert-run_failure</a></p>')
