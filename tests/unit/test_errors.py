"""The first line of an error (`ml_batch.errors.first_line`/`summary`), and the handlers that quote one: they
never raise, whatever the error says (an empty message included)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.errors import ValidationFailed, first_line, summary, without_values


class _FailingEngine:
    """An engine whose every transaction fails with `error` (the database is gone and says nothing)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def begin(self) -> Any:
        raise self.error

    def connect(self) -> Any:
        raise self.error

    def get_execution_options(self) -> dict[str, Any]:
        return {}


def test_first_line_is_the_drivers_first_non_empty_line_or_the_type() -> None:
    wrapped = sa.exc.OperationalError("SELECT 1", {}, Exception("\n  server closed the connection\nDETAIL: x"))
    assert first_line(wrapped) == "server closed the connection"
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(sa.exc.SQLAlchemyError("")) == "SQLAlchemyError"
    assert summary(ValidationFailed("model 'toy' day 2026-05-21: 3 rows")) == "model 'toy' day 2026-05-21: 3 rows"
    assert summary(OSError("")) == "OSError: OSError"


@pytest.mark.parametrize("error", [sa.exc.SQLAlchemyError(""), sa.exc.InterfaceError(" ", {}, Exception(""))])
def test_recording_a_run_failure_never_raises_on_an_error_that_says_nothing(
        error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """`runs.fail` is documented as never raising; its log line used to index the error's first line and raised
    IndexError for an empty message."""
    from ml_batch.run import runs

    with caplog.at_level(logging.WARNING, logger="ml_batch.run.runs"):
        assert runs.fail(_FailingEngine(error), model="toy", run_id="r", error="shard 0: boom") is False  # type: ignore[arg-type]
    assert "could not record the failure of run r of toy (shard 0: boom)" in caplog.text


def test_dropping_a_failed_runs_objects_never_raises_on_an_error_that_says_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    from ml_batch.run.lifecycle import _discard_quietly
    from tests.integration.helpers import toy_spec

    with caplog.at_level(logging.WARNING, logger="ml_batch.run.lifecycle"):
        _discard_quietly(_FailingEngine(sa.exc.SQLAlchemyError("")), toy_spec("public"), "r",  # type: ignore[arg-type]
                         ValidationFailed("boom"))
    assert "run r of toy failed on its data but its objects could not be dropped (SQLAlchemyError)" in caplog.text


def test_storing_an_alert_never_raises_on_an_error_that_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from ml_batch.ops.alerts import Alert, store

    alert = Alert(kind="run_failure", severity="critical", message="boom", model_name="toy")
    with caplog.at_level(logging.ERROR, logger="ml_batch.ops.alerts"):
        assert store(lambda: _FailingEngine(sa.exc.SQLAlchemyError("")), alert) is None  # type: ignore[arg-type,return-value]
    assert "was delivered but not recorded in the alerts table: SQLAlchemyError" in caplog.text


def test_a_batch_failure_is_summarised_without_its_values_also_when_wrapped() -> None:
    refusal = ValidationFailed("day 2026-05-21: batch failed validation: a: 4 rows; e.g. 'x; y'; b: 2 rows; e.g. 7",
                               without_values="day 2026-05-21: batch failed validation: a: 4 rows; b: 2 rows")
    wrapped = RuntimeError(str(refusal))
    wrapped.__cause__ = refusal
    quiet = "day 2026-05-21: batch failed validation: a: 4 rows; b: 2 rows"
    assert summary(refusal) == without_values(wrapped) == quiet
    assert str(refusal).endswith("e.g. 7")  # the raised error (and the task log) keeps the values
    assert without_values(ValueError("plain\nsecond")) == "plain"
    assert without_values(ValidationFailed("no values given")) == "no values given"
