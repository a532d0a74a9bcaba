"""Seeding schema `demo` on a real PostgreSQL: what `generate` produced is what the tables hold, once.

Schema `demo` is shared by every test of the session (it is not the per-test schema of the `engine`
fixture): each test here replaces its tables, which is exactly what `seed` is for.
"""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa

from ml_batch.demo.credit import DemoConfig, generate, seed

pytestmark = pytest.mark.integration

CONFIG = DemoConfig(end_date=datetime.date(2025, 6, 30), days=45, rows_per_day=400, shift_days=7)


def _count(conn: sa.Connection, table: str) -> int:
    return int(conn.execute(sa.text(f"SELECT count(*) FROM demo.{table}")).scalar_one())


def test_seed_loads_exactly_the_generated_frames(engine: sa.Engine) -> None:
    applications, outcomes = generate(CONFIG)
    summary = seed(engine, CONFIG)

    assert (summary.applications, summary.outcomes) == (len(applications), len(outcomes))
    assert (summary.first_day, summary.last_day) == (datetime.date(2025, 5, 17), CONFIG.end_date)
    assert summary.shift_start == datetime.date(2025, 6, 24)
    with engine.connect() as conn:
        assert _count(conn, "credit_applications") == len(applications)
        assert _count(conn, "credit_outcomes") == len(outcomes)
        row = conn.execute(
            sa.text(
                "SELECT min(applied_at), max(applied_at), count(*) FILTER (WHERE income IS NULL), "
                "count(*) FILTER (WHERE channel IS NULL), sum(loan_amount) FROM demo.credit_applications"
            )
        ).one()
        labels = conn.execute(
            sa.text(
                "SELECT sum(o.defaulted), count(*) FILTER (WHERE o.observed_at <> a.applied_at + interval '30 days') "
                "FROM demo.credit_outcomes o JOIN demo.credit_applications a USING (application_id)"
            )
        ).one()
        indexes = conn.execute(
            sa.text("SELECT indexdef FROM pg_indexes WHERE schemaname = 'demo' AND tablename = 'credit_applications'")
        ).scalars()
        assert any("(applied_at)" in definition for definition in indexes)
    assert row[0] == applications["applied_at"].min().to_pydatetime()
    assert row[1] == applications["applied_at"].max().to_pydatetime()
    assert row[2] == applications["income"].isna().sum()
    assert row[3] == applications["channel"].isna().sum()
    assert row[4] == pytest.approx(applications["loan_amount"].sum())
    assert labels == (outcomes["defaulted"].sum(), 0)


def test_seeding_twice_leaves_one_copy(engine: sa.Engine) -> None:
    config = DemoConfig(end_date=CONFIG.end_date, days=40, rows_per_day=100, shift_days=5, seed=3)
    first = seed(engine, config)
    second = seed(engine, config)

    assert first == second
    with engine.connect() as conn:
        assert _count(conn, "credit_applications") == first.applications
        assert _count(conn, "credit_outcomes") == first.outcomes
