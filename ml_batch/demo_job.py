"""`make demo`: the main job end to end on the embedded database, safe to run again.

1. start the database and apply migrations; 2. (re)seed the synthetic source and write the demo spec;
3. if the model has no champion yet, train version 1 on the labels known on the last demo day and promote
it through the gate; 4. run the daily DAG through real Airflow for the same week one label-delay earlier (so labels
have arrived) and for the last 7 demo days, where the synthetic shift is; 5. run the retraining DAG and
print the gate's decision with both scores; 6. print a per-day summary (rows, quarantined, version, score
mean, drift, realized metric), the SQL an analyst runs next, and where everything is.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ml_batch import demo, registry, runs
from ml_batch.airflow.local import retrain_in_airflow, run_days_in_airflow
from ml_batch.config import Settings
from ml_batch.db.engine import make_engine, resolve_url
from ml_batch.db.migrate import upgrade
from ml_batch.errors import MlBatchError
from ml_batch.jobs import train_and_register
from ml_batch.spec import load_spec

logger = logging.getLogger(__name__)

DEMO_MODEL = "credit_default"
DEMO_DAYS = 7

ANALYST_SQL = """\
-- today's riskiest applications, with the model version that scored them
SELECT application_id, score, predicted_label, model_version
FROM {table}
WHERE partition_date = (SELECT max(partition_date) FROM {table})
ORDER BY score DESC LIMIT 20;

-- daily volume and mean score per version
SELECT partition_date, model_version, count(*) AS scored, round(avg(score)::numeric, 4) AS mean_score
FROM {table} GROUP BY 1, 2 ORDER BY 1;

-- why rows were quarantined
SELECT partition_date, entity_key, reasons FROM {schema}.quarantine
WHERE model_name = 'credit_default' ORDER BY partition_date DESC LIMIT 20;"""


def demo_spec_source() -> Path:
    """The canonical demo spec shipped inside the package."""
    return Path(str(resources.files("ml_batch") / "resources" / f"{DEMO_MODEL}.yaml"))


def write_demo_spec(specs_dir: Path) -> Path:
    """Put the demo spec into `specs_dir` unless a spec file of that name is already there."""
    target = specs_dir / f"{DEMO_MODEL}.yaml"
    specs_dir.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(demo_spec_source(), target)
    elif target.read_text() != demo_spec_source().read_text():
        logger.warning("%s differs from the shipped demo spec; keeping your version", target)
    return target


def run(settings: Settings, console: Console, *, end_date: dt.date | None = None) -> None:
    """Run the demo; `end_date` (default yesterday UTC) is the last day of synthetic data."""
    last_day = end_date or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    console.rule("ml-batch demo")
    with console.status("starting PostgreSQL and applying migrations"):
        engine = make_engine(settings)
        revision = upgrade(engine, settings.schema)
    console.print(f"[green]✓[/] database ready, schema {settings.schema} at migration {revision}")

    spec_path = write_demo_spec(settings.specs_dir)
    spec = load_spec(spec_path)
    with console.status("seeding synthetic credit applications"):
        summary = demo.seed(engine, demo.DemoConfig(end_date=last_day, label_delay_days=spec.labels.delay_days))
    console.print(
        f"[green]✓[/] seeded {summary.applications:,} applications {summary.first_day}..{summary.last_day} "
        f"(distribution shift from {summary.shift_start}) and {summary.outcomes:,} outcomes"
    )

    current = registry.aliases(engine, spec.name).get(registry.CHAMPION)
    if current is None:
        with console.status(f"training {spec.name} on labels known on {last_day}"):
            outcome = train_and_register(engine, spec, last_day, actor=settings.user, promote=True)
        version = outcome.version
        metric = spec.training.metric
        console.print(
            f"[green]✓[/] registered {spec.name} version {version.version}: {metric} "
            f"{version.metrics.get(metric):.4f} on holdout {version.holdout_start}..{version.holdout_end}"
        )
        if outcome.decision is not None:
            verdict = "[green]promoted to champion[/]" if outcome.promoted else "[yellow]not promoted[/]"
            console.print(f"  gate: {verdict}: {outcome.decision.reason}")
    else:
        console.print(f"[green]✓[/] {spec.name} already has a champion (version {current}); not retrained")

    delay = dt.timedelta(days=spec.labels.delay_days)
    days = [last_day - dt.timedelta(days=offset) for offset in range(DEMO_DAYS - 1, -1, -1)]
    # The same week one label-delay earlier is backfilled first, so that the last week's runs find its
    # labels arrived and record realized performance.
    earlier = [d - delay for d in days]
    with console.status(f"running batch_predict_{spec.name} in Airflow for {earlier[0]}..{earlier[-1]} "
                        f"and {days[0]}..{days[-1]}"):
        airflow_runs = run_days_in_airflow(settings, spec.name, earlier + days)
    failed = [r for r in airflow_runs if r["state"] != "success"]
    console.print(f"[green]✓[/] {len(airflow_runs) - len(failed)} of {len(airflow_runs)} daily DAG runs "
                  "succeeded in Airflow")
    _print_days(console, runs.latest_per_day(engine, spec.name, days[0], days[-1]),
                _drift_by_day(engine, spec.name, days), _realized_by_day(engine, spec))

    with console.status(f"running retrain_{spec.name} in Airflow (labels known on {last_day})"):
        retrain_in_airflow(settings, spec.name, last_day)
    _print_gate(console, engine, spec)
    console.rule("what an analyst runs next")
    console.print(ANALYST_SQL.format(table=spec.predictions.table, schema=settings.schema), highlight=False)

    url = resolve_url(settings)
    from sqlalchemy.engine import make_url

    console.rule("where things are")
    console.print(f"database      {make_url(url).render_as_string(hide_password=True)}  (ml-batch db url)")
    console.print(f"state folder  {settings.home}")
    console.print(f"model spec    {spec_path}")
    console.print(f"registry      {settings.schema}.model_versions / model_aliases / model_events")
    console.print(f"validation    {settings.home / 'validation'}  (Great Expectations results per run)")
    console.print(f"airflow       {settings.home / 'airflow'}  (make airflow: UI on http://localhost:8080)")
    console.print("next          ml-batch runs -m credit_default  |  ml-batch models list  |  make airflow")
    if failed:
        raise MlBatchError(f"{len(failed)} daily DAG run(s) failed: {[r['day'] for r in failed]} "
                           f"(see ml-batch runs -m {spec.name})")


def _print_days(console: Console, rows: list[dict[str, Any]], drift: dict[dt.date, dict[str, Any]],
                realized: dict[dt.date, str]) -> None:
    table = Table("day", "status", "rows", "scored", "quarantined", "version", "mean score", "drift",
                  "realized AUC (day - delay)")
    for r in rows:
        mean = r["score_mean"]
        day_drift = drift.get(r["partition_date"])
        verdict = "-" if day_drift is None else (
            f"[red]yes[/] ({len(day_drift['drifted_features'])} features)" if day_drift["dataset_drift"] else "no")
        table.add_row(str(r["partition_date"]), str(r["status"]), str(r["rows_extracted"]), str(r["rows_scored"]),
                      str(r["rows_quarantined"]), str(r["model_version"]),
                      f"{mean:.4f}" if isinstance(mean, float) else "-", verdict,
                      realized.get(r["partition_date"], "-"))
    console.print(table)


def _drift_by_day(engine: Any, model: str, days: list[dt.date]) -> dict[dt.date, dict[str, Any]]:
    from ml_batch.monitoring import drift_table

    found = {day: drift_table(engine, model, day)[0] for day in days}
    return {day: head for day, head in found.items() if head is not None}


def _realized_by_day(engine: Any, spec: Any) -> dict[dt.date, str]:
    """Realized metric of day E shown on the row of day D = E + delay (the run that computed it)."""
    from ml_batch.monitoring import performance_table

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
