"""Demo data as an analyst finds it (both data shapes trained, scored, drift-checked, with realized
performance), and a login role to read it with. Shared by test_grants.py and test_analyst_docs.py."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.demo import credit as demo
from ml_batch.demo import stores as demo_stores
from ml_batch.demo.job import demo_spec_source
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.monitoring.performance import realized_performance
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec, load_spec

END = dt.date(2026, 6, 30)


@dataclass(frozen=True)
class DemoModel:
    spec: Spec
    days: tuple[dt.date, dt.date]  # the scored days: the first is labelled by the second's run


def demo_spec(settings: Settings, name: str, min_rows: int) -> Spec:
    """The shipped demo spec, its predictions table moved into the test's schema."""
    shipped = load_spec(demo_spec_source(name))
    return shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.{name}"}),
        "validation": shipped.validation.model_copy(update={"min_rows": min_rows}),
    })


def _publish(engine: sa.Engine, settings: Settings, spec: Spec, days: tuple[dt.date, dt.date]) -> DemoModel:
    assert train_and_register(engine, spec, END, actor="analyst-test", promote=True).promoted
    for day in days:
        summary = score_day(engine, spec, day, run_id=f"test__{spec.name}__{day}")
        assert summary.status == "success" and summary.scored > 0
        check_day_drift(engine, spec, day, run_id=summary.run_id, report_dir=settings.home / "drift")
    realized_performance(engine, spec, days[1], run_id=f"test__{spec.name}__{days[1]}")
    return DemoModel(spec, days)


def credit_default(engine: sa.Engine, settings: Settings) -> DemoModel:
    """One event per key: applications scored once; day 1 is labelled 30 days later, on day 2."""
    demo.seed(engine, demo.DemoConfig(end_date=END, days=110, rows_per_day=150, shift_days=7))
    spec = demo_spec(settings, "credit_default", min_rows=20)
    day2 = END - dt.timedelta(days=2)
    return _publish(engine, settings, spec, (day2 - dt.timedelta(days=spec.labels.delay_days), day2))


def store_demand(engine: sa.Engine, settings: Settings) -> DemoModel:
    """Recurring entities: every store scored every day; day 1 is labelled 7 days later, on day 2."""
    stores = 40
    demo_stores.seed(engine, demo_stores.StoreDemandConfig(end_date=END, days=80, stores=stores))
    spec = demo_spec(settings, "store_demand", min_rows=stores)
    day2 = END - dt.timedelta(days=6)
    return _publish(engine, settings, spec, (day2 - dt.timedelta(days=spec.labels.delay_days), day2))


@contextmanager
def login_role(engine: sa.Engine, pg_url: str) -> Iterator[tuple[str, sa.Engine]]:
    """A fresh LOGIN role with a password (granted nothing), and an engine connected as it; dropped after."""
    role = f"analyst_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(16)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN PASSWORD :pw'.replace(":pw", f"'{password}'")))
    url = sa.engine.make_url(pg_url).set(username=role, password=password)
    analyst = sa.create_engine(url)
    try:
        yield role, analyst
    finally:
        analyst.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
