"""Issue 13 item 6: every query in docs/analysts.md runs, as a role granted with `grant-analyst`, against the
demo data of both shapes, and returns rows.

The SQL is parsed out of the markdown (every ```sql block), so the page and the test cannot drift apart. The
page names the shipped schemas (`ml_batch`, `predictions`); the test moves both into its own schema.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.ops.grants import grant_analyst
from tests.integration import analyst_helpers

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)


def doc_queries() -> list[str]:
    return [block.strip().rstrip(";") for block in _BLOCK.findall(DOC.read_text())]


def test_the_page_has_queries_for_both_shapes() -> None:
    queries = doc_queries()
    assert len(queries) >= 10
    assert any("predictions.credit_default" in q for q in queries)
    assert any("predictions.store_demand_latest" in q for q in queries)
    assert all(";" not in q for q in queries), "one statement per block"


def test_every_query_of_the_analyst_page_runs_as_the_analyst_on_demo_data(
        settings: Settings, engine: sa.Engine, pg_url: str) -> None:
    models = [analyst_helpers.credit_default(engine, settings), analyst_helpers.store_demand(engine, settings)]
    schema = settings.schema

    with analyst_helpers.login_role(engine, pg_url) as (role, analyst):
        grant_analyst(engine, schema, [m.spec for m in models], role)
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
