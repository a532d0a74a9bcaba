"""`make demo`: the main job end to end on the embedded database, safe to run again.

It runs both data shapes: `credit_default` (one event per key: an application is scored once) and
`store_demand` (recurring entities: every store is scored every day, with a label per store and day).
1. start the database and apply migrations; then for each demo model: 2. (re)seed its synthetic source and
write its spec; 3. if the model has no champion yet, train version 1 on the labels known on the last demo day
and promote it through the gate; 4. run the daily DAG through real Airflow for the same week one label-delay
earlier (so labels have arrived) and for the last 7 demo days, where the synthetic shift is, and print a per-day
summary (rows, quarantined, version, score mean, drift, realized metric); 5. run the retraining DAG and print
the gate's decision with both scores. Last, the SQL an analyst runs next, and where everything is.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine, resolve_url
from ml_batch.db.migrate import upgrade
from ml_batch.demo import credit, stores
from ml_batch.errors import ArtifactIntegrityError, EnvironmentMismatch, MlBatchError
from ml_batch.model import registry
from ml_batch.model.validity import excluded_text
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run import runs
from ml_batch.spec import Spec, load_spec

logger = logging.getLogger(__name__)

DEMO_DAYS = 7


@dataclass(frozen=True)
class DemoModel:
    """One demo model: its spec (shipped in the package), how to seed its source, what an analyst runs."""

    name: str
    seed: Callable[[sa.Engine, dt.date, Spec], str]
    analyst_sql: str


def _seed_credit(engine: sa.Engine, last_day: dt.date, spec: Spec) -> str:
    summary = credit.seed(engine, credit.DemoConfig(end_date=last_day, label_delay_days=spec.labels.delay_days))
    return (f"seeded {summary.applications:,} credit applications {summary.first_day}..{summary.last_day} "
            f"(distribution shift from {summary.shift_start}) and {summary.outcomes:,} outcomes")


def _seed_stores(engine: sa.Engine, last_day: dt.date, spec: Spec) -> str:
    config = stores.StoreDemandConfig(end_date=last_day, label_delay_days=spec.labels.delay_days)
    summary = stores.seed(engine, config)
    return (f"seeded {summary.stores} stores x {summary.first_day}..{summary.last_day} = {summary.store_days:,} "
            f"store days (shift from {summary.shift_start}) and {summary.sales:,} daily sales labels")


CREDIT_SQL = """\
-- one event per key: today's riskiest applications, with the model version that scored them
SELECT application_id, score, predicted_label, model_version
FROM {table}
WHERE partition_date = (SELECT max(partition_date) FROM {table})
ORDER BY score DESC LIMIT 20;

-- daily volume and mean score per version
SELECT partition_date, model_version, count(*) AS scored, round(avg(score)::numeric, 4) AS mean_score
FROM {table} GROUP BY 1, 2 ORDER BY 1;

-- why rows were quarantined
SELECT partition_date, entity_key, reasons FROM {schema}.quarantine_published
WHERE model_name = 'credit_default' ORDER BY partition_date DESC LIMIT 20;"""

STORES_SQL = """\
-- recurring entities: the latest forecast of every store (one row per store)
SELECT store_id, partition_date, score AS units_forecast, model_version
FROM {table}_latest ORDER BY score DESC LIMIT 20;

-- one store's history: forecast next to what it sold (labels per store and day)
SELECT p.partition_date, p.score AS forecast, s.units AS sold, p.model_version
FROM {table} AS p
LEFT JOIN demo.store_sales AS s ON s.store_id = p.store_id AND s.sales_date = p.partition_date
WHERE p.store_id = 42 ORDER BY p.partition_date;"""

DEMO_MODELS = (
    DemoModel("credit_default", _seed_credit, CREDIT_SQL),
    DemoModel("store_demand", _seed_stores, STORES_SQL),
)


def demo_spec_source(name: str) -> Path:
    """A demo spec shipped inside the package."""
    return Path(str(resources.files("ml_batch.demo") / "specs" / f"{name}.yaml"))


def write_demo_spec(specs_dir: Path, name: str) -> Path:
    """Put demo spec `name` into `specs_dir` unless a spec file of that name is already there."""
    target = specs_dir / f"{name}.yaml"
    specs_dir.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(demo_spec_source(name), target)
    elif target.read_text() != demo_spec_source(name).read_text():
        logger.warning("%s differs from the shipped demo spec; keeping your version", target)
    return target


def run(settings: Settings, console: Console, *, end_date: dt.date | None = None) -> None:
    """Run the demo for every demo model; `end_date` (default yesterday UTC) is the last day of synthetic data."""
    last_day = end_date or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    console.rule("ml-batch demo")
    with console.status("starting PostgreSQL and applying migrations"):
        engine = make_engine(settings)
        revision = upgrade(engine, settings.schema)
    console.print(f"[green]✓[/] database ready, schema {settings.schema} at migration {revision}")

    specs = {model.name: (model, write_demo_spec(settings.specs_dir, model.name)) for model in DEMO_MODELS}
    failed: list[str] = []
    for model, spec_path in specs.values():
        spec = load_spec(spec_path)
        console.rule(f"{spec.name}: {spec.description}")
        with console.status(f"seeding the synthetic source of {spec.name}"):
            console.print(f"[green]✓[/] {model.seed(engine, last_day, spec)}")
        _ensure_champion(console, engine, settings, spec, last_day)
        failed += _run_daily(console, engine, settings, spec, last_day)
        with console.status(f"running retrain_{spec.name} in Airflow (labels known on {last_day})"):
            retrained = _retrain_in_airflow(settings, spec.name, last_day)
        if retrained["state"] != "success":
            failed.append(f"retrain_{spec.name} {last_day} ({retrained['state']})")
        _print_gate(console, engine, spec)

    console.rule("what an analyst runs next")
    for model, spec_path in specs.values():
        table = load_spec(spec_path).predictions.table
        console.print(model.analyst_sql.format(table=table, schema=settings.schema) + "\n", highlight=False)

    url = resolve_url(settings)
    from sqlalchemy.engine import make_url

    console.rule("where things are")
    console.print(f"database      {make_url(url).render_as_string(hide_password=True)}  (ml-batch db url)")
    console.print(f"state folder  {settings.home}")
    console.print(f"model specs   {', '.join(str(path) for _, path in specs.values())}")
    console.print(f"registry      {settings.schema}.model_versions / model_aliases / model_events")
    console.print(f"validation    {settings.home / 'validation'}  (Great Expectations results per run)")
    console.print(f"airflow       {settings.home / 'airflow'}  (make airflow: UI on http://127.0.0.1:8080)")
    console.print("next          ml-batch runs -m store_demand  |  ml-batch models list  |  make airflow")
    if failed:
        raise MlBatchError(f"{len(failed)} DAG run(s) did not succeed: {failed} (see ml-batch runs -m MODEL and "
                           "the task logs under the airflow folder)")


def _ensure_champion(console: Console, engine: sa.Engine, settings: Settings, spec: Spec, last_day: dt.date) -> None:
    """Train version 1 on the labels known on `last_day` and gate it, unless the model has a champion."""
    current = registry.aliases(engine, spec.name).get(registry.CHAMPION)
    untrusted = None
    if current is not None:
        try:
            registry.load(engine, spec, current)
        # e.g. a state folder from before artifacts were signed, or from a venv with another scikit-learn
        except (ArtifactIntegrityError, EnvironmentMismatch) as exc:
            untrusted = exc
        else:
            console.print(f"[green]✓[/] {spec.name} already has a champion (version {current}); not retrained")
            return
    with console.status(f"training {spec.name} on labels known on {last_day}"):
        # The gate cannot score a champion it cannot trust: the demo replaces it, with the reason audited.
        outcome = train_and_register(engine, spec, last_day, actor=settings.user, promote=untrusted is None)
        if untrusted is not None:
            registry.promote(engine, spec.name, outcome.version.version, actor=settings.user,
                             reason=f"demo: champion {current} cannot be verified: {untrusted}")
            console.print(f"[yellow]![/] champion version {current} cannot be verified ({untrusted}); replaced")
    version = outcome.version
    metric = spec.training.metric
    console.print(
        f"[green]✓[/] registered {spec.name} version {version.version}: {metric} "
        f"{version.metrics.get(metric):.4f} on holdout {version.holdout_start}..{version.holdout_end} "
        f"({version.n_train:,} training rows, {version.n_holdout:,} holdout rows)"
    )
    left_out = excluded_text(version.n_excluded, version.exclusions)
    console.print(f"  left out of training (rows scoring would quarantine): {left_out}", highlight=False)
    if outcome.decision is not None:
        verdict = "[green]promoted to champion[/]" if outcome.promoted else "[yellow]not promoted[/]"
        console.print(f"  gate: {verdict}: {outcome.decision.reason}")


def _run_daily(console: Console, engine: sa.Engine, settings: Settings, spec: Spec, last_day: dt.date) -> list[str]:
    """The daily DAG in Airflow for the last `DEMO_DAYS` days and the same week one label-delay earlier
    (run first, so that the last week's runs find its labels arrived and record realized performance)."""
    delay = dt.timedelta(days=spec.labels.delay_days)
    days = [last_day - dt.timedelta(days=offset) for offset in range(DEMO_DAYS - 1, -1, -1)]
    earlier = [d - delay for d in days]
    with console.status(f"running batch_predict_{spec.name} in Airflow for {earlier[0]}..{earlier[-1]} "
                        f"and {days[0]}..{days[-1]}"):
        airflow_runs = _run_days_in_airflow(settings, spec.name, earlier + days)
    failed = [f"{spec.name} {r['day']}" for r in airflow_runs if r["state"] != "success"]
    console.print(f"[green]✓[/] {len(airflow_runs) - len(failed)} of {len(airflow_runs)} daily DAG runs of "
                  f"{spec.name} succeeded in Airflow")
    _print_days(console, spec, runs.latest_per_day(engine, spec.name, days[0], days[-1]),
                _drift_by_day(engine, spec, days), _realized_by_day(engine, spec))
    _print_open_alerts(console, engine, spec)
    return failed


def _print_open_alerts(console: Console, engine: sa.Engine, spec: Spec) -> None:
    """The model's open alerts: one line per condition still holding, with the days it was seen."""
    from rich.markup import escape

    from ml_batch.ops.alerts import open_alerts

    found = open_alerts(engine, spec.name)
    if not found:
        console.print(f"open alerts of {spec.name}: none")
        return
    console.print(f"open alerts of {spec.name} (each sent once; `ml-batch alerts --open` lists them):")
    for alert in found:
        console.print(f"  [yellow]{alert['kind']}[/]{' ' + alert['subject'] if alert['subject'] else ''} since "
                      f"{alert['first_day']}, seen on {alert['occurrences']} days: {escape(alert['message'])}")


def _print_days(console: Console, spec: Spec, rows: list[dict[str, Any]], drift: dict[dt.date, dict[str, Any]],
                realized: dict[dt.date, str]) -> None:
    metric = spec.training.metric
    table = Table("day", "status", "rows", "scored", "quarantined", "version", "mean score",
                  "drift: day / window / sustained", "weighted share", "out of support", f"estimated {metric}",
                  f"realized {metric} (day - {spec.labels.delay_days})")
    for r in rows:
        mean = r["score_mean"]
        day_drift = drift.get(r["partition_date"])
        table.add_row(str(r["partition_date"]), str(r["status"]), str(r["rows_extracted"]), str(r["rows_scored"]),
                      str(r["rows_quarantined"]), str(r["model_version"]),
                      f"{mean:.4f}" if isinstance(mean, float) else "-", _drift_cell(day_drift),
                      _share_cell(day_drift), _support_cell(day_drift), _estimate_cell(day_drift),
                      realized.get(r["partition_date"], "-"))
    console.print(table)


def _drift_cell(day_drift: dict[str, Any] | None) -> str:
    """"yes (3) / no / [red]SUSTAINED[/]": the day's own verdict, its window's, and drift.alert_after's."""
    if day_drift is None:
        return "-"
    detail = day_drift.get("detail") or {}
    own = f"[red]yes[/] ({len(day_drift['drifted_features'])})" if day_drift["dataset_drift"] else "no"
    window = detail.get("window", {}).get("dataset_drift")
    window_text = "-" if window is None else ("[red]yes[/]" if window else "no")
    sustained = detail.get("sustained", {})
    sustained_text = "-" if not sustained else (
        "[bold red]SUSTAINED[/]" if sustained.get("sustained_drift")
        else f"no ({len(sustained.get('drifted_days', []))}/{sustained.get('of')})")
    return f"{own} / {window_text} / {sustained_text}"


def _share_cell(day_drift: dict[str, Any] | None) -> str:
    if day_drift is None:
        return "-"
    weighted = (day_drift.get("detail") or {}).get("weighted_share")
    return f"{day_drift['share']:.0%} count" + ("" if weighted is None else f", {weighted:.0%} importance")


def _support_cell(day_drift: dict[str, Any] | None) -> str:
    """The features out of support on the day, with their share: "[red]temp 97%[/]", or "none"."""
    if day_drift is None:
        return "-"
    outside = ((day_drift.get("detail") or {}).get("summary") or {}).get("out_of_support") or []
    return ", ".join(f"[red]{o['feature']} {o['share']:.0%}[/]" for o in outside) or "none"


def _estimate_cell(day_drift: dict[str, Any] | None) -> str:
    """The estimate, "[red]unreliable[/]" when it cannot be trusted, and the realized value once known."""
    estimate = None if day_drift is None else day_drift.get("estimated")
    if estimate is None:
        return "-"
    text = f"{estimate['value']:.4f}"
    if estimate["detail"].get("reliable") is False:
        text += " [red]unreliable[/]"
    realized = estimate["detail"].get("realized")
    return text if realized is None else f"{text} (realized {realized:.4f}, error {estimate['detail']['error']:+.4f})"


def _drift_by_day(engine: Any, spec: Spec, days: list[dt.date]) -> dict[dt.date, dict[str, Any]]:
    """Each day's drift verdict (day, window, sustained) with its label-free estimate of training.metric."""
    from ml_batch.monitoring.daily import drift_table
    from ml_batch.monitoring.estimate import ESTIMATED_PREFIX
    from ml_batch.monitoring.performance import performance_table

    estimates = {r["partition_date"]: r for r in performance_table(engine, spec.name, limit=5000)
                 if r["metric"] == f"{ESTIMATED_PREFIX}{spec.training.metric}" and r["value"] is not None}
    found = {day: drift_table(engine, spec.name, day)[0] for day in days}
    return {day: {**head, "estimated": estimates.get(day)} for day, head in found.items() if head is not None}


def _realized_by_day(engine: Any, spec: Any) -> dict[dt.date, str]:
    """Realized metric of day E shown on the row of day D = E + delay (the run that computed it)."""
    from ml_batch.monitoring.performance import performance_table

    delay = dt.timedelta(days=spec.labels.delay_days)
    return {r["partition_date"] + delay: f"{r['value']:.4f} on {r['partition_date']}"
            for r in performance_table(engine, spec.name)
            if r["metric"] == spec.training.metric and r["detail"].get("kind") == "published"
            and r["value"] is not None}


def _print_gate(console: Console, engine: Any, spec: Any) -> None:
    decision = next((e for e in registry.events(engine, spec.name, limit=20) if e["event"] == "gate_decision"), None)
    if decision is None:
        console.print("[yellow]retraining recorded no gate decision[/]")
        return
    d = decision["details"]
    champion = "-" if d.get("champion_score") is None else f"{d['champion_score']:.4f}"
    console.print(
        f"[green]✓[/] retrain_{spec.name}: candidate version {decision['to_version']} → [bold]{d.get('action')}[/]\n"
        f"  {d.get('metric')} on the same holdout {d.get('holdout_start')}..{d.get('holdout_end')} "
        f"({d.get('n_holdout')} rows): candidate {d.get('candidate_score'):.4f}, champion {champion}; "
        f"floor {d.get('floor')}, min_improvement {d.get('min_improvement')}\n  {decision['reason']}"
    )


def _run_days_in_airflow(settings: Settings, model: str, days: list[dt.date]) -> list[dict[str, object]]:
    from ml_batch.airflow.local import run_days_in_airflow  # the demo drives Airflow; importing it does not

    return run_days_in_airflow(settings, model, days)


def _retrain_in_airflow(settings: Settings, model: str, as_of: dt.date) -> dict[str, object]:
    from ml_batch.airflow.local import retrain_in_airflow

    return retrain_in_airflow(settings, model, as_of)
