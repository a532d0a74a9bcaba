"""`make demo`: the main job end to end on the embedded database, safe to run again.

1. start the database and apply migrations; 2. (re)seed the synthetic source and write the demo spec;
3. if the model has no champion yet, train version 1 on the labels known on the last demo day and promote
it through the gate; 4. run the daily DAG through real Airflow for the last 7 demo days; 5. print a
per-day summary, the SQL an analyst runs next, and where everything is.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ml_batch import demo, registry, runs
from ml_batch.airflow.local import run_days_in_airflow
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

    days = [last_day - dt.timedelta(days=offset) for offset in range(DEMO_DAYS - 1, -1, -1)]
    with console.status(f"running batch_predict_{spec.name} in Airflow for {days[0]}..{days[-1]}"):
        airflow_runs = run_days_in_airflow(settings, spec.name, days)
    failed = [r for r in airflow_runs if r["state"] != "success"]
    console.print(f"[green]✓[/] {len(airflow_runs) - len(failed)} of {len(days)} daily DAG runs succeeded in Airflow")
    _print_days(console, runs.latest_per_day(engine, spec.name, days[0], days[-1]))
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


def _print_days(console: Console, rows: list[dict[str, object]]) -> None:
    table = Table("day", "status", "rows", "scored", "quarantined", "version", "mean score", "run id")
    for r in rows:
        mean = r["score_mean"]
        table.add_row(str(r["partition_date"]), str(r["status"]), str(r["rows_extracted"]), str(r["rows_scored"]),
                      str(r["rows_quarantined"]), str(r["model_version"]),
                      f"{mean:.4f}" if isinstance(mean, float) else "-", str(r["run_id"]))
    console.print(table)
