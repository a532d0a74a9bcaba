"""Issue 13 item 6: every query in docs/analysts.md runs, as a role granted with `grant-analyst`, against the
demo data of both shapes, and returns rows; issue 25: its multiclass queries too, on a `ticket_queue` table.

The SQL is parsed out of the markdown (every ```sql block), so the page and the test cannot drift apart. The
page names the shipped schemas (`ml_batch`, `predictions`); the test moves both into its own schema.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.demo import tickets as demo_tickets
from ml_batch.monitoring.performance import realized_performance
from ml_batch.ops.grants import grant_analyst
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec, load_spec
from tests.integration import analyst_helpers

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "analysts.md"
_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
TICKETS_LAST = dt.date(2026, 6, 30)
# Scored after the training window (which ends 3 days before as-of); the first is labelled by the second's day.
TICKET_DAYS = (TICKETS_LAST - dt.timedelta(days=6), TICKETS_LAST - dt.timedelta(days=3))


def doc_queries() -> list[str]:
    return [block.strip().rstrip(";") for block in _BLOCK.findall(DOC.read_text())]


def test_the_page_has_queries_for_both_shapes() -> None:
    queries = doc_queries()
    assert len(queries) >= 10
    assert any("predictions.credit_default" in q for q in queries)
    assert any("predictions.store_demand_latest" in q for q in queries)
    assert any("predictions.ticket_queue_latest" in q for q in queries)
    assert any("class_scores->>'billing'" in q for q in queries)
    assert all(";" not in q for q in queries), "one statement per block"


def ticket_queue(engine: sa.Engine, settings: Settings) -> Spec:
    """The multiclass example (docs/examples/ticket_queue.yaml, source `ml_batch.demo.tickets`) trained, two days
    scored and the first labelled, its predictions table moved into the test's schema."""
    shipped = load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.ticket_queue"})})
    demo_tickets.seed(engine, demo_tickets.TicketQueueConfig(end_date=TICKETS_LAST, days=40, rows_per_day=150))
    assert train_and_register(engine, spec, TICKET_DAYS[0] - dt.timedelta(days=1), actor="analyst-test",
                              promote=True).promoted
    for day in TICKET_DAYS:
        assert score_day(engine, spec, day, run_id=f"test__ticket_queue__{day}").status == "success"
    assert realized_performance(engine, spec, TICKET_DAYS[1])
    return spec


def test_every_query_of_the_analyst_page_runs_as_the_analyst_on_demo_data(
        settings: Settings, engine: sa.Engine, pg_url: str) -> None:
    models = [analyst_helpers.credit_default(engine, settings), analyst_helpers.store_demand(engine, settings)]
    tickets = ticket_queue(engine, settings)
    schema = settings.schema

    with analyst_helpers.login_role(engine, pg_url) as (role, analyst):
        grant_analyst(engine, schema, [*(m.spec for m in models), tickets], role)
        results = {}
        with analyst.connect() as conn:
            for query in doc_queries():
                local = re.sub(r"\b(ml_batch|predictions)\.", f"{schema}.", query)
                results[query] = conn.execute(sa.text(local)).mappings().all()

    empty = [q for q, rows in results.items() if not rows]
    assert not empty, f"queries of docs/analysts.md that return nothing on the demo data: {empty}"
    # the latest forecast per store: one row per store (recurring entities), all from the newest day
    latest = next(rows for q, rows in results.items() if "store_demand_latest" in q)
    assert len(latest) == 20 and {r["partition_date"] for r in latest} == {models[1].days[1]}
    # one store's history: one row per scored day
    history = next(rows for q, rows in results.items() if "min(store_id)" in q)
    assert [r["partition_date"] for r in history] == list(models[1].days)
    # realized metrics of both shapes, on the day labelled by the second run
    assert any(r["metric"] == "roc_auc" and r["partition_date"] == models[0].days[0]
               for rows in results.values() for r in rows if "metric" in r)
    mae = next(rows for q, rows in results.items() if "AS mae" in q)
    assert [r["partition_date"] for r in mae] == [models[1].days[0]]
    # multiclass: each day's class mix sums to 1 and counts its rows; one class's probability is class_scores'
    with engine.connect() as conn:
        mix_in_db = {tuple(r) for r in conn.execute(sa.text(
            f"SELECT partition_date, predicted_label, count(*) FROM {tickets.predictions.table} GROUP BY 1, 2"))}
        billing_in_db = conn.execute(sa.text(
            f"SELECT max((class_scores->>'billing')::float8) FROM {tickets.predictions.table}")).scalar_one()
    mix = next(rows for q, rows in results.items() if "PARTITION BY partition_date" in q)
    assert {(r["partition_date"], r["predicted_label"], r["tickets"]) for r in mix} == mix_in_db
    for day in TICKET_DAYS:
        assert abs(sum(r["share"] for r in mix if r["partition_date"] == day) - 1) < 1e-3
    billing = next(rows for q, rows in results.items() if "p_billing" in q)
    assert billing[0]["p_billing"] == billing_in_db and len(billing) == 20
    per_class = next(rows for q, rows in results.items() if "jsonb_each_text" in q)
    assert {r["class"] for r in per_class} == set(demo_tickets.QUEUES)
    realized = next(rows for q, rows in results.items() if "ticket_queue" in q and "unseen" in q)
    assert {r["metric"] for r in realized} == {"log_loss", "accuracy", "macro_f1", "roc_auc_ovr", "balanced_accuracy"}
    assert {r["partition_date"] for r in realized} == {TICKET_DAYS[0]}
