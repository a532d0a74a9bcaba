"""ml-batch's pages for a multiclass model (issue 25) over real runs on a real PostgreSQL: the ticket-queue demo
(`ml_batch.demo.tickets`, spec docs/examples/ticket_queue.yaml) trained, two days scored, drift-checked and
the first labelled. The registry page lists the version's classes with their rows, the class-mix page each
day's predicted classes (chart and table), the performance page the multiclass metrics: every number as the
database holds it. A binary model's pages do not change (no class-mix page in its navigation).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ml_batch.airflow.ui_plugin import URL_PREFIX
from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.tables import model_versions, performance
from ml_batch.demo import tickets as demo_tickets
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.monitoring.performance import realized_performance
from ml_batch.ops.grants import grant_ui
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec, load_spec
from ml_batch.tasks import TASK_METRICS
from tests.integration import analyst_helpers
from tests.integration.test_ui import _mounted, _scan, row_for, table_rows

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2026, 6, 30)
AS_OF = LAST - dt.timedelta(days=8)
DAYS = (LAST - dt.timedelta(days=4), LAST - dt.timedelta(days=3))  # the first labelled 3 days later, by LAST - 1


@dataclass
class Queue:
    spec: Spec
    engine: sa.Engine
    client: TestClient


@pytest.fixture()
def queue(settings: Settings, engine: sa.Engine, tmp_path: Path) -> Queue:
    shipped = load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.ticket_queue"})})
    demo_tickets.seed(engine, demo_tickets.TicketQueueConfig(end_date=LAST, days=40, rows_per_day=200))
    assert train_and_register(engine, spec, AS_OF, actor="t", promote=True).promoted
    for index, day in enumerate(DAYS):
        run_id = f"mc-{index + 1}"
        assert score_day(engine, spec, day, run_id=run_id, results_dir=tmp_path).status == "success"
        check_day_drift(engine, spec, day, run_id=run_id, report_dir=tmp_path / "drift")
    assert realized_performance(engine, spec, DAYS[0] + dt.timedelta(days=spec.labels.delay_days))
    return Queue(spec, engine, TestClient(_mounted(engine, _scan(spec))))


def _page(queue: Queue, path: str) -> str:
    response = queue.client.get(f"{URL_PREFIX}/models/ticket_queue{path}")
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:2000]}"
    return response.text


def test_the_registry_lists_the_versions_classes_with_their_training_and_holdout_rows(queue: Queue) -> None:
    with queue.engine.connect() as conn:
        classes, counts = conn.execute(sa.select(model_versions.c.classes, model_versions.c.class_counts).where(
            model_versions.c.model_name == "ticket_queue", model_versions.c.version == 1)).one()
    assert classes == sorted(demo_tickets.QUEUES)
    rows = table_rows(_page(queue, "/registry"), "classes")
    assert rows[1:] == [["1", name, str(counts["train"][name]), str(counts["holdout"][name])] for name in classes]


def test_the_class_mix_page_shows_each_days_predicted_class_shares_as_the_table_holds_them(queue: Queue) -> None:
    html = _page(queue, "/classes")
    with queue.engine.connect() as conn:
        found = conn.execute(sa.text("SELECT partition_date, predicted_label, count(*) "
                                     f"FROM {queue.spec.predictions.table} GROUP BY 1, 2")).all()
    counts = {(day, label): n for day, label, n in found}
    classes = sorted({label for _, label in counts})
    assert set(classes) <= set(demo_tickets.QUEUES) and len(classes) >= 2
    rows = table_rows(html, "class-mix")
    assert rows[0] == ["Day", "Rows", *classes]
    for day in DAYS:
        total = sum(n for (d, _), n in counts.items() if d == day)
        row = row_for(rows, day.isoformat())
        shown = [f"{counts.get((day, c), 0)} ({counts.get((day, c), 0) / total:.1%})" for c in classes]
        assert row == [day.isoformat(), str(total), *shown]
    series = re.findall(r'<path class="series" data-series="([^"]*)"', html)
    assert series == classes
    for (day, label), n in counts.items():
        total = sum(m for (d, _), m in counts.items() if d == day)
        assert f"{label} {day.isoformat()}: {n / total:.4f}</title>" in html
    assert '<a href="/models/ticket_queue/classes" class="current">Class mix</a>' in html.replace(URL_PREFIX, "")


def test_the_class_mix_page_of_a_model_with_nothing_published_or_no_spec_says_so(queue: Queue) -> None:
    unpublished = queue.spec.model_copy(update={"predictions": queue.spec.predictions.model_copy(
        update={"table": f"{queue.spec.predictions.schema_name}.ticket_queue_never_scored"})})
    html = TestClient(_mounted(queue.engine, _scan(unpublished))).get(
        f"{URL_PREFIX}/models/ticket_queue/classes").text
    assert "<p>No predictions published yet.</p>" in html and 'id="class-mix"' not in html
    html = TestClient(_mounted(queue.engine, _scan())).get(f"{URL_PREFIX}/models/ticket_queue/classes").text
    assert "No class mix: no readable spec of this model in the specs folder." in html


def test_the_performance_page_charts_and_lists_the_multiclass_metrics_gate_metric_first(queue: Queue) -> None:
    html = _page(queue, "/performance")
    charts = re.findall(r"<h2>([^<]*)</h2><svg", html)
    assert charts[0] == queue.spec.training.metric == "log_loss"
    assert set(TASK_METRICS["multiclass"]) <= set(charts)
    with queue.engine.connect() as conn:
        stored = conn.execute(sa.select(performance.c.metric, performance.c.value, performance.c.n).where(
            performance.c.model_name == "ticket_queue", performance.c.partition_date == DAYS[0],
            performance.c.detail["kind"].astext == "published")).all()
    assert {m for m, _, _ in stored} >= set(TASK_METRICS["multiclass"])
    rows = table_rows(html, "performance")
    for metric, value, n in stored:
        assert row_for(rows, DAYS[0].isoformat(), "1", metric)[3:6] == [f"{value:.4f}", str(n), "published"]
    assert "<title>ceiling 1.2</title>" in html  # log_loss: lower is better, the spec's min_score a ceiling
    assert 'id="unseen-classes"' not in html  # every labelled class was trained on
    with queue.engine.begin() as conn:  # as realized_performance records labels of a class never trained on
        conn.execute(sa.update(performance).where(performance.c.model_name == "ticket_queue",
                                                  performance.c.detail["kind"].astext == "published").values(
            detail=performance.c.detail.concat(sa.cast({"n_unseen": 3, "unseen_classes": {"refunds": 3}},
                                                       performance.c.detail.type))))
    note = _page(queue, "/performance").split('id="unseen-classes">', 1)[1].split("</p>", 1)[0]
    assert note.endswith(f"{DAYS[0]} v1: 3 (refunds 3).")


def test_the_drift_page_gives_each_days_class_drift_verdict(queue: Queue) -> None:
    rows = table_rows(_page(queue, "/drift"), "class-drift")
    assert [r[0] for r in rows[1:]] == [DAYS[1].isoformat(), DAYS[0].isoformat()]
    assert all(r[1] in ("yes", "no") for r in rows[1:])


def test_the_multiclass_pages_read_through_the_ui_role(queue: Queue, settings: Settings, pg_url: str) -> None:
    with analyst_helpers.login_role(queue.engine, pg_url) as (role, login):
        grant_ui(queue.engine, settings.schema, [queue.spec], role)
        reader = make_engine(replace(settings, database_url=login.url.render_as_string(hide_password=False)),
                             start=False)
        try:
            client = TestClient(_mounted(reader, _scan(queue.spec)))
            for page in ("registry", "classes", "performance", "drift"):
                response = client.get(f"{URL_PREFIX}/models/ticket_queue/{page}")
                assert response.status_code == 200, f"{page}: {response.text[:2000]}"
            assert table_rows(response.text, "class-drift")
        finally:
            reader.dispose()
