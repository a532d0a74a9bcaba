"""Issue 13 item 4: an alert is delivered when the database it would be recorded in is down.

The webhook receiver is a real HTTP server on 127.0.0.1 started by the test; the database is a real engine
pointing at a PostgreSQL port nothing listens on. Delivery comes first, recording is best-effort, and a
failed delivery is logged with the URL's host only (a Slack webhook's path is its secret).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from ml_batch.db.tables import SCHEMA_PLACEHOLDER
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert, WebhookChannel
from tests.support.webhook import SECRET, WebhookReceiver


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def dead_database_url() -> str:
    return f"postgresql+psycopg2://ml_batch@127.0.0.1:{_closed_port()}/ml_batch"


@pytest.fixture()
def dead_engine(dead_database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(dead_database_url, connect_args={"connect_timeout": 2}).execution_options(
        schema_translate_map={SCHEMA_PLACEHOLDER: "ml_batch"})
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _no_channels(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(alerts.WEBHOOK_URL_ENV, raising=False)
    monkeypatch.delenv("ML_BATCH_ALERT_EMAILS", raising=False)
    yield
    for name in ("webhook", "email", "test"):
        alerts.unregister_channel(name)


def _alert() -> Alert:
    return Alert(kind="run_failure", severity="critical", message="publish failed: database went away",
                 model_name="credit_default", run_id="scheduled__2026-05-21", details={"task_id": "publish"})


def test_alert_is_delivered_while_the_database_is_down(dead_engine: sa.Engine,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with WebhookReceiver() as receiver, caplog.at_level(logging.INFO, logger="ml_batch.ops.alerts"):
        alerts.register_channel(WebhookChannel(receiver.url, name="test"))
        stored = alerts.record(dead_engine, _alert())

    assert stored is None  # not recorded: the database is down ...
    assert len(receiver.received) == 1  # ... but delivered
    payload = receiver.received[0]
    assert payload["text"] == ("[ml-batch] CRITICAL run_failure credit_default: "
                               "publish failed: database went away | what to do: README.md#alert-run_failure")
    assert payload["kind"] == "run_failure" and payload["model_name"] == "credit_default"
    assert payload["run_id"] == "scheduled__2026-05-21" and payload["details"] == {"task_id": "publish"}
    assert receiver.paths == [f"/services/{SECRET}"]
    assert "was delivered but not recorded in the alerts table" in caplog.text


def test_cli_webhook_from_environment(dead_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver() as receiver:
        monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, receiver.url)
        alerts.record(dead_engine, _alert())
    assert [p["kind"] for p in receiver.received] == ["run_failure"]


def test_airflow_notifier_delivers_through_the_connection_while_the_database_is_down(
        dead_database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    from ml_batch.airflow.notifiers import MlBatchAlertNotifier

    monkeypatch.setenv("ML_BATCH_CONN_ID", "ml_batch_db_not_defined")
    monkeypatch.setenv("ML_BATCH_DATABASE_URL", dead_database_url)
    context = {"dag_run": SimpleNamespace(dag_id="batch_predict_credit_default", run_id="manual__1"),
               "ti": SimpleNamespace(task_id="publish"), "exception": RuntimeError("server closed the connection")}
    with WebhookReceiver() as receiver, caplog.at_level(logging.INFO):
        monkeypatch.setenv("AIRFLOW_CONN_ML_BATCH_ALERTS_WEBHOOK", receiver.url)
        MlBatchAlertNotifier("credit_default").notify(context)

    assert len(receiver.received) == 1
    assert receiver.received[0]["text"].startswith(
        "[ml-batch] CRITICAL run_failure credit_default: batch_predict_credit_default run manual__1 failed in "
        "task publish: server closed the connection")
    # once Airflow is imported its structlog setup writes log lines to stdout rather than to caplog
    logged = caplog.text + capfd.readouterr().out
    assert "not recorded in the alerts table" in logged
    assert SECRET not in logged


def test_failed_delivery_is_logged_without_the_secret_and_the_run_goes_on(
        dead_engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    with WebhookReceiver(status=500) as receiver, caplog.at_level(logging.INFO, logger="ml_batch.ops.alerts"):
        alerts.register_channel(WebhookChannel(receiver.url, name="test"))
        alerts.register_channel(WebhookChannel(f"http://127.0.0.1:{_closed_port()}/x/{SECRET}", name="webhook"))
        assert alerts.deliver(_alert()) == []

    assert "not delivered by webhook to 127.0.0.1: HTTP 500" in caplog.text
    assert "not delivered by webhook to 127.0.0.1: ConnectionRefusedError" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.integration
def test_alert_is_recorded_after_delivery_when_the_database_is_up(engine: sa.Engine) -> None:
    with WebhookReceiver() as receiver:
        alerts.register_channel(WebhookChannel(receiver.url, name="test"))
        alert_id = alerts.record(engine, _alert())
    assert alert_id is not None and len(receiver.received) == 1
    assert [(r["id"], r["kind"]) for r in alerts.recent(engine, "credit_default")] == [(alert_id, "run_failure")]


def test_webhook_url_is_checked_without_echoing_it() -> None:
    with pytest.raises(ValueError, match=r"scheme 'ftp'.*expected http\(s\)://host") as info:
        WebhookChannel(f"ftp://example.org/{SECRET}")
    assert SECRET not in str(info.value)


# -- issue 23 item 7: secrets in URLs stay secret --------------------------------------------------------------
class _Exploding:
    """A channel whose failure is not a DeliveryError (a bug, a library's own exception)."""

    name = "test"

    def describe(self) -> str:
        return "exploding channel"

    def send(self, alert: Alert) -> None:
        raise RuntimeError(f"boom at http://127.0.0.1/hook?token={SECRET}")


def test_any_channel_failure_is_logged_without_the_url_and_the_other_channels_still_deliver(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver() as receiver, caplog.at_level(logging.INFO, logger="ml_batch.ops.alerts"):
        alerts.register_channel(_Exploding())
        # a URL with a space: urllib accepts it, http.client refuses it with InvalidURL (a ValueError) at send
        monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, f"http://127.0.0.1:{_closed_port()}/hook x?token={SECRET}")
        alerts.register_channel(WebhookChannel(receiver.url, name="webhook"))
        delivered = alerts.deliver(_alert())
    assert delivered == ["webhook to 127.0.0.1"], "the failures did not stop the working channel"
    assert len(receiver.received) == 1
    assert "not delivered by exploding channel: RuntimeError" in caplog.text
    assert SECRET not in caplog.text and "token" not in caplog.text


def test_a_webhook_url_with_a_space_fails_its_delivery_not_the_command(caplog: pytest.LogCaptureFixture) -> None:
    channel = WebhookChannel(f"http://127.0.0.1:{_closed_port()}/hook x?token={SECRET}", name="test")
    alerts.register_channel(channel)
    with caplog.at_level(logging.INFO, logger="ml_batch.ops.alerts"):
        assert alerts.deliver(_alert()) == []
    assert "not delivered by webhook to 127.0.0.1: InvalidURL" in caplog.text
    assert SECRET not in caplog.text and "token" not in caplog.text


def test_a_webhook_connection_keeps_the_query_of_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_batch.airflow.notifiers import register_channels

    with WebhookReceiver() as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_ML_BATCH_ALERTS_WEBHOOK", f"{receiver.url}?token=abc%20def&team=ml")
        assert register_channels() == ["webhook"]
        assert alerts.deliver(_alert()) == ["webhook to 127.0.0.1"]
    assert receiver.paths == [f"/services/{SECRET}?token=abc+def&team=ml"], "the token arrived with the alert"


def test_the_alert_email_escapes_its_message() -> None:
    from ml_batch.airflow.notifiers import email_body

    body = email_body(Alert(kind="run_failure", severity="critical", model_name="m",
                            message='<script>alert(1)</script> & "quoted"'))
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in body


def test_a_published_day_is_not_failed_by_a_late_check_that_cannot_reach_the_database(
        dead_engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    # The publish task re-checks the late alert after the day is published: a database gone at that moment
    # must not fail the task (and retry a day that is published).
    import datetime as dt

    from ml_batch.monitoring import late
    from tests.support.toy import DAY, toy_spec

    spec = toy_spec("s", publish_by="08:00", start_date="2026-05-01")
    found = late.after_publish(dead_engine, spec, DAY, dt.datetime(2026, 5, 23, 9, tzinfo=dt.UTC))
    assert (found.state, found.alert_id) == ("unchecked", None)
    assert f"the late check after publishing {DAY} could not run (OperationalError" in caplog.text
