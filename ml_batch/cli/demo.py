"""`ml-batch demo ...`: the synthetic demo data and the end-to-end demo."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from ml_batch.cli.common import (
    JsonOpt,
    day_option,
    demo_app,
    load_settings,
    open_engine,
    out,
    print_json,
    step,
)


# -- demo --------------------------------------------------------------------------------------------------
@demo_app.command("seed")
def demo_seed(
    end_date: Annotated[str | None, typer.Option("--end-date", help="Last day of data (default yesterday UTC).")]
    = None,
    days: Annotated[int, typer.Option(help="Number of days.")] = 120,
    rows_per_day: Annotated[int, typer.Option(help="Average credit applications a day.")] = 2000,
    stores: Annotated[int, typer.Option(help="Stores, each scored every day (store_demand).")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed (same seed and dates, same data).")] = 42,
    as_json: JsonOpt = False,
) -> None:
    """(Re)create the synthetic sources of both demo models in schema `demo`: credit applications (one
    event per key) and daily store sales (recurring entities)."""
    from ml_batch.demo import credit as demo
    from ml_batch.demo import stores as demo_stores

    last = day_option(end_date, "--end-date") if end_date else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    config = demo.DemoConfig(end_date=last, days=days, rows_per_day=rows_per_day, seed=seed)
    store_config = demo_stores.StoreDemandConfig(end_date=last, days=days, stores=stores, seed=seed)
    with step("seeding demo data", as_json):
        engine = open_engine()
        summary = demo.seed(engine, config)
        store_summary = demo_stores.seed(engine, store_config)
    if as_json:
        print_json({**summary.__dict__, "store_demand": store_summary.__dict__})
    else:
        out.print(f"seeded demo.credit_applications ({summary.applications} rows, {summary.first_day}.."
                  f"{summary.last_day}, shift from {summary.shift_start}) and demo.credit_outcomes "
                  f"({summary.outcomes} labels)")
        out.print(f"seeded demo.store_days ({store_summary.store_days} rows: {store_summary.stores} stores x "
                  f"{days} days, shift from {store_summary.shift_start}) and demo.store_sales "
                  f"({store_summary.sales} labels per store and day)")


@demo_app.command("run")
def demo_run() -> None:
    """The main job end to end on the embedded database: seed, train, register, promote, show."""
    from ml_batch.demo import job as demo_job

    demo_job.run(load_settings(), out)
