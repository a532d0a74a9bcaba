"""The `ml-batch` console script with a multiclass model (issue 25), run as a user would (a subprocess): the
ticket-queue example (docs/examples/ticket_queue.yaml over `ml_batch.demo.tickets`) trained, listed and shown
with its classes, a skops pipeline trained elsewhere registered with its own, and a scored day's drift and
realized metrics printed per class and metric."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ml_batch.config import Settings
from ml_batch.db.tables import model_versions, performance
from ml_batch.demo import tickets as demo_tickets
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.monitoring.performance import realized_performance
from ml_batch.run.day import score_day
from ml_batch.spec import Spec, load_spec
from ml_batch.tasks import TASK_METRICS
from tests.support.cli import run_cli

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2026, 6, 30)
AS_OF = LAST - dt.timedelta(days=8)
DAY = LAST - dt.timedelta(days=4)  # scored after the training window; labelled 3 days later, by LAST - 1
CLASSES = sorted(demo_tickets.QUEUES)


@pytest.fixture()
def queue(settings: Settings, engine: sa.Engine, tmp_path: Path) -> tuple[Spec, Settings]:
    """The example spec in a specs folder of its own (predictions in the test's schema), its source seeded."""
    shipped = load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.ticket_queue"})})
    demo_tickets.seed(engine, demo_tickets.TicketQueueConfig(end_date=LAST, days=40, rows_per_day=150))
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "ticket_queue.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    cli = Settings(home=settings.home, specs_dir=specs, schema=settings.schema, database_url=settings.database_url,
                   user=settings.user)
    return spec, cli


def _counts(engine: sa.Engine, version: int) -> dict[str, dict[str, int]]:
    with engine.connect() as conn:
        classes, counts = conn.execute(sa.select(model_versions.c.classes, model_versions.c.class_counts).where(
            model_versions.c.model_name == "ticket_queue", model_versions.c.version == version)).one()
    assert classes == CLASSES
    return dict(counts)


def test_train_list_and_show_print_the_classes_with_their_rows(
        queue: tuple[Spec, Settings], engine: sa.Engine) -> None:
    _, cli = queue
    trained = run_cli(cli, "train", "--model", "ticket_queue", "--as-of", AS_OF.isoformat(), "--promote").stdout
    counts = _counts(engine, 1)
    said = ", ".join(f"{c} (train {counts['train'][c]}, holdout {counts['holdout'][c]})" for c in CLASSES)
    assert f"classes: {said}" in trained and "gate: promoted to champion" in trained

    listed = run_cli(cli, "models", "list").stdout
    assert f"ticket_queue version 1 classes: {said}" in listed
    with engine.connect() as conn:
        metrics = conn.execute(sa.select(model_versions.c.metrics).where(
            model_versions.c.model_name == "ticket_queue")).scalar_one()
    assert f"log_loss {metrics['log_loss']:.4f}" in listed

    shown = run_cli(cli, "models", "show", "ticket_queue").stdout
    assert re.search(r"classes\s+│?\s*" + re.escape(said.split(",")[0]), shown), shown
    as_json = json.loads(run_cli(cli, "models", "show", "ticket_queue", "--json").stdout)
    assert as_json["version"]["classes"] == CLASSES and as_json["version"]["class_counts"] == counts


def test_register_takes_a_multiclass_skops_pipeline_with_its_classes(
        queue: tuple[Spec, Settings], engine: sa.Engine, tmp_path: Path) -> None:
    import pandas as pd
    import skops.io as sio

    from ml_batch.features import build_pipeline

    spec, cli = queue
    names = [f.name for f in spec.features]
    with engine.connect() as conn:  # "a notebook": fitted on the labelled tickets before the holdout
        frame = pd.read_sql(sa.text(
            f"SELECT {', '.join(f't.{n}' for n in names)}, q.queue FROM demo.tickets t "
            "JOIN demo.ticket_queues q USING (ticket_id) WHERE t.opened_at < :end"),
            conn, params={"end": dt.datetime.combine(AS_OF - dt.timedelta(days=20), dt.time(), tzinfo=dt.UTC)})
    pipeline = build_pipeline(spec).fit(frame[names], frame["queue"].astype(str))
    artifact = tmp_path / "notebook.skops"
    sio.dump(pipeline, artifact)
    said = run_cli(cli, "models", "register", "--model", "ticket_queue", "--artifact", str(artifact),
                   "--as-of", AS_OF.isoformat()).stdout
    counts = _counts(engine, 1)
    assert set(counts) == {"holdout"}  # the rows it was fitted on are the notebook's
    holdout = counts["holdout"]
    assert "classes: " + ", ".join(f"{c} (holdout {holdout[c]})" for c in CLASSES) in said
    assert "registered ticket_queue version 1 from" in said and "log_loss 0." in said


def test_performance_and_drift_print_the_multiclass_metrics_and_class_checks(
        queue: tuple[Spec, Settings], engine: sa.Engine, tmp_path: Path) -> None:
    spec, cli = queue
    run_cli(cli, "train", "--model", "ticket_queue", "--as-of", AS_OF.isoformat(), "--promote")
    assert score_day(engine, spec, DAY, run_id="mc").status == "success"
    check_day_drift(engine, spec, DAY, run_id="mc", report_dir=tmp_path / "drift")
    assert realized_performance(engine, spec, DAY + dt.timedelta(days=spec.labels.delay_days))

    printed = run_cli(cli, "performance", "--model", "ticket_queue").stdout
    header = next(line for line in printed.splitlines() if "day" in line and "version" in line)
    assert [m for m in re.findall(r"[a-z_0-9]+", header) if m in TASK_METRICS["multiclass"]] == [
        "log_loss", "accuracy", "macro_f1", "roc_auc_ovr", "balanced_accuracy"]
    assert "calibration err." not in header and "unseen" in header
    with engine.connect() as conn:
        realized = dict(conn.execute(sa.select(performance.c.metric, performance.c.value).where(
            performance.c.model_name == "ticket_queue", performance.c.partition_date == DAY,
            performance.c.detail["kind"].astext == "published")).all())
    row = next(line for line in printed.splitlines() if DAY.isoformat() in line and "published" in line)
    assert all(f"{realized[m]:.4f}" in row for m in TASK_METRICS["multiclass"]), (row, realized)
    assert "no: no label-free estimate for" in printed  # the estimate is unavailable, and says why

    drift = run_cli(cli, "drift", "--model", "ticket_queue", "--date", DAY.isoformat()).stdout
    assert re.search(r"predicted classes \(mix and each class's probability\): (drifted|no drift)", drift), drift
    assert "__predicted_class__" in drift
