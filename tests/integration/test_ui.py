"""ml-batch's pages (`ml_batch.ui`, mounted as Airflow mounts the plugin) over real runs on a real PostgreSQL.

The toy model is trained, two days are scored (the first with quarantined rows and shifted features), drift
is checked and realized performance recorded; the pages must show exactly those numbers. Airflow's
authorization dependencies are overridden (as an editor who may read every model), except in the tests that
prove they are in force: with Airflow's SimpleAuthManager and tokens of its viewer and user roles, a viewer
sees reasons and counts, an editor the raw rows, and the index lists only the models a user may read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ml_batch.airflow import ui_auth
from ml_batch.airflow.ui_plugin import URL_PREFIX
from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.tables import performance, runs
from ml_batch.errors import ValidationFailed
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.monitoring.performance import realized_performance
from ml_batch.monitoring.status import model_status
from ml_batch.ops import reports
from ml_batch.ops.grants import grant_ui
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.run.publish import RunSummary
from ml_batch.spec import Spec
from ml_batch.spec_folder import SpecFileError, SpecScan
from ml_batch.ui.app import PAGES
from ml_batch.validation.reasons import EXAMPLES
from ml_batch.validation.results import ValidationOutcome, store_result
from tests.integration import analyst_helpers
from tests.integration.helpers import load_toy_data, shift_toy_day, toy_spec
from tests.support.toy import AS_OF, FIRST

pytestmark = pytest.mark.integration

DAY1, DAY2 = AS_OF + dt.timedelta(days=2), AS_OF + dt.timedelta(days=3)
GREEN = 5  # rows of DAY1 with a category outside the whitelist: quarantined


class _Tables(HTMLParser):
    """Each <table>'s rows as lists of cell texts (whitespace collapsed), by the table's id or class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            found = dict(attrs)
            self._table = self.tables.setdefault(str(found.get("id") or found.get("class")), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None and self._table:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str, name: str) -> list[list[str]]:
    """The rows (header first) of the table with id (or class) `name` in a page; fails when it is missing."""
    parser = _Tables()
    parser.feed(html)
    assert name in parser.tables, f"no table {name!r} in the page; tables: {sorted(parser.tables)}\n{html[:3000]}"
    return parser.tables[name]


def row_for(rows: list[list[str]], *first: str) -> list[str]:
    """The row whose first cells are `first`."""
    found = [r for r in rows if r[: len(first)] == list(first)]
    assert len(found) == 1, f"expected one row starting with {first}, got {found} in {rows}"
    return found[0]


@dataclass
class Scored:
    spec: Spec
    runs: list[RunSummary]
    drift: dict[str, Any]
    performance: list[dict[str, Any]]
    client: TestClient
    engine: sa.Engine


def _scan(*specs: Spec, errors: tuple[SpecFileError, ...] = ()) -> Callable[[], SpecScan]:
    """A specs folder's scan holding `specs` (and `errors`): what `ui_auth.server_specs` reads in the api-server."""
    return lambda: SpecScan({s.name: s for s in specs}, {}, list(errors))


NO_SPECS = _scan()


def _mounted(engine: sa.Engine, specs: Callable[[], SpecScan] = NO_SPECS) -> FastAPI:
    """The plugin's app mounted under its prefix, as the api-server mounts it (reading as the owner, `engine`,
    the specs of `specs`); authorization overridden."""
    app = ui_auth.build_app(lambda: engine, lambda: engine, specs)
    app.dependency_overrides[ui_auth.view_access] = lambda: None
    app.dependency_overrides[ui_auth.model_access] = lambda: None
    app.dependency_overrides[ui_auth.readable_models] = lambda: set
    app.dependency_overrides[ui_auth.raw_access] = lambda: True
    parent = FastAPI()
    parent.mount(URL_PREFIX, app)
    return parent


def _shift_and_break(engine: sa.Engine, spec: Spec, day: dt.date) -> None:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    window = {"s": start, "e": start + dt.timedelta(days=1)}
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET x1 = x1 + 1.5, x2 = x2 * 2 "
                             "WHERE event_time >= :s AND event_time < :e"), window)
        ids = conn.execute(sa.text(f"SELECT id FROM {spec.source.table} WHERE event_time >= :s AND event_time < :e "
                                   f"ORDER BY id LIMIT {GREEN}"), window).scalars().all()
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET color = 'green' WHERE id = ANY(:ids)"), {"ids": ids})


@pytest.fixture()
def scored(settings: Settings, engine: sa.Engine, tmp_path: Path) -> Scored:
    spec = toy_spec(settings.schema)
    spec = spec.model_copy(update={"validation": spec.validation.model_copy(update={"max_quarantine_share": 0.1})})
    load_toy_data(engine, settings.schema, FIRST, days=30, rows_per_day=300)
    assert train_and_register(engine, spec, AS_OF, actor="t", promote=True).promoted
    _shift_and_break(engine, spec, DAY1)
    runs, drift = [], {}
    for index, day in enumerate((DAY1, DAY2)):
        run_id = f"ui-{index + 1}"
        runs.append(score_day(engine, spec, day, run_id=run_id, results_dir=tmp_path))
        drift[day] = check_day_drift(engine, spec, day, run_id=run_id, report_dir=tmp_path / "drift").to_xcom()
        # The GX result the run saved, stored as scoring stores it (validation.store_result, shard 0).
        saved = json.loads((tmp_path / "toy" / day.isoformat() / f"{run_id}-s0.json").read_text())
        store_result(engine, ValidationOutcome(rows=None, batch_failures=[], row_reasons={}, result_json=saved),
                     "toy", day, run_id, 0)
    performance = [r for as_of in (DAY1, DAY2)
                   for r in realized_performance(engine, spec, as_of + dt.timedelta(days=spec.labels.delay_days))]
    return Scored(spec, runs, drift, performance, TestClient(_mounted(engine, _scan(spec))), engine)


def _page(scored: Scored, path: str) -> str:
    response = scored.client.get(f"{URL_PREFIX}{path}")
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:2000]}"
    return response.text


def test_index_and_runs_show_each_run_with_its_row_counts(scored: Scored) -> None:
    index = table_rows(_page(scored, "/"), "models")
    toy = row_for(index, "toy")
    assert toy[0] == "toy" and toy[2:] == ["1", "1", DAY2.isoformat()]
    rows = table_rows(_page(scored, "/models/toy/runs"), "runs")
    first, second = scored.runs
    assert (first.extracted, first.scored, first.quarantined) == (300, 300 - GREEN, GREEN)
    for run in (first, second):
        row = row_for(rows, run.day.isoformat())
        assert row[:7] == [run.day.isoformat(), "success", "1", "cli", str(run.extracted), str(run.scored),
                           str(run.quarantined)]
        assert row[7] == f"{run.score_mean:.4f}"
        assert f"score {run.stage_seconds['score']:.2f}s" in row[8] and row[9] == run.run_id


def test_the_index_says_whether_each_model_needs_attention_and_why(scored: Scored) -> None:
    [status] = model_status(scored.engine, [scored.spec])
    assert status.needs_attention  # the toy's days are long past: its due day is not published
    health = row_for(table_rows(_page(scored, "/"), "models"), "toy")[1]
    assert health.startswith("needs attention") and all(reason in health for reason in status.needs_attention)
    assert re.search(r'<td class="health bad">needs attention <ul class="reasons"><li>', _page(scored, "/"))


def test_the_index_says_when_a_models_spec_cannot_be_read_or_is_missing(scored: Scored) -> None:
    broken = (SpecFileError(Path("/specs/toy.yaml"), "/specs/toy.yaml: training.metric: 'auc' is not a metric"),
              SpecFileError(Path("/specs/gone.yaml"), "/specs/gone.yaml: not valid YAML"))
    html = TestClient(_mounted(scored.engine, _scan(errors=broken))).get(f"{URL_PREFIX}/").text
    assert row_for(table_rows(html, "models"), "toy")[1] == (
        "unknown not checked: its spec cannot be read: /specs/toy.yaml: training.metric: 'auc' is not a metric")
    assert '<li class="bad">/specs/gone.yaml: not valid YAML</li>' in html  # a model no row lists: below the table
    missing = TestClient(_mounted(scored.engine)).get(f"{URL_PREFIX}/").text
    assert row_for(table_rows(missing, "models"), "toy")[1] == (
        "unknown not checked: no spec of this model in the specs folder")


def test_runs_are_sorted_by_day_and_a_run_airflow_started_links_to_it(scored: Scored) -> None:
    late = "scheduled__2026-05-20T00:00:00+00:00"
    with scored.engine.begin() as conn:  # started last, for the day before DAY1, by Airflow's scheduler
        copied = dict(conn.execute(sa.select(runs).where(runs.c.run_id == "ui-1")).mappings().one())
        conn.execute(sa.insert(runs).values({**copied, "run_id": late, "run_type": "scheduled",
                                             "partition_date": DAY1 - dt.timedelta(days=1),
                                             "started_at": dt.datetime.now(dt.UTC)}))
    html = _page(scored, "/models/toy/runs")
    days = [r[0] for r in table_rows(html, "runs")[1:] if r[0]]
    assert days == [DAY2.isoformat(), DAY1.isoformat(), (DAY1 - dt.timedelta(days=1)).isoformat()]
    links = re.findall(r'<a href="([^"]*)" target="_top"[^>]*><code>([^<]*)</code></a>', html)
    assert links == [("/dags/batch_predict_toy/runs/scheduled__2026-05-20T00%3A00%3A00%2B00%3A00", late)]
    assert "<code>ui-1</code>" in html  # a CLI run: no Airflow run to link to


def test_registry_shows_versions_aliases_holdout_metrics_and_the_audit_trail(scored: Scored) -> None:
    html = _page(scored, "/models/toy/registry")
    assert row_for(table_rows(html, "aliases"), "champion")[1] == "1"
    version = row_for(table_rows(html, "versions"), "1")
    with scored.engine.connect() as conn:
        metrics, n_train, n_holdout, n_excluded, environment = conn.execute(sa.text(
            "SELECT metrics, n_train, n_holdout, n_excluded, environment "
            f'FROM "{scored.spec.predictions.schema_name}".model_versions '
            "WHERE model_name = 'toy' AND version = 1")).one()
    assert version[4] == f"{n_train} / {n_holdout}"
    assert n_excluded is not None and version[5].split(";")[0] == str(n_excluded)
    assert f"roc_auc {metrics['roc_auc']:.4f}" in version[6]
    shown = version[7]
    assert f"scikit-learn {environment['scikit-learn']}" in shown and f"python {environment['python']}" in shown
    events = table_rows(html, "events")
    trail = [e[1:6] for e in events[1:]]
    assert ["registered", "", "", "1", "t"] in trail and ["promoted", "champion", "", "1", "t"] in trail, trail
    # a binary model: no classes table, no class-mix page (tests/integration/test_ui_multiclass.py has both)
    assert 'id="classes"' not in html and "Class mix" not in html


def test_quarantine_counts_rows_per_reason_with_example_rows(scored: Scored) -> None:
    rows = table_rows(_page(scored, "/models/toy/quarantine"), "quarantine")
    assert len(rows) == 2, rows  # header and one reason on one day
    day, reason, count, examples = rows[1]
    assert (day, count) == (DAY1.isoformat(), str(GREEN))
    assert reason.startswith("color: expect_column_values_to_be_in_set") and "got" not in reason
    assert examples.count("got 'green'") == 3 and examples.count('"color": "green"') == 3


def test_drift_shows_each_day_and_feature_and_links_the_stored_report(scored: Scored) -> None:
    html = _page(scored, "/models/toy/drift")
    days = table_rows(html, "drift-days")
    for day, summary in scored.drift.items():
        row = row_for(days, day.isoformat())
        assert row[:5] == [day.isoformat(), "1", str(summary["rows_checked"]), f"{summary['share']:.3f}",
                           "yes" if summary["dataset_drift"] else "no"]
        assert row[6] == ", ".join(summary["drifted_features"]) and row[7:9] == ["report", ""]
        assert row[9] == ("yes" if summary["multivariate_drift"] else "no")
    assert scored.drift[DAY1]["dataset_drift"] and {"x1", "x2"} <= set(scored.drift[DAY1]["drifted_features"])
    features = table_rows(html, "drift-features")
    assert html.index("<details>") < html.index('<table id="drift-features">') < html.index("</details>")
    with scored.engine.connect() as conn:
        value, threshold = conn.execute(sa.text(
            f'SELECT value, threshold FROM "{scored.spec.predictions.schema_name}".drift_results '
            "WHERE model_name = 'toy' AND partition_date = :d AND feature = 'x1' AND test = 'psi'"), {"d": DAY1}).one()
    assert row_for(features, DAY1.isoformat(), "x1", "psi")[3:] == [f"{value:.4f}", f"{threshold:.4f}", "-", "yes",
                                                                     ""]
    # A small trend chart per feature and statistic: a dot per checked day, red where it drifted.
    x1_psi = html.split('id="trend-x1"', 1)[1].split('<figure data-test="psi">', 1)[1].split("</svg>", 1)[0]
    assert f"<title>{DAY1}: {value:.4f} (drifted)</title>" in x1_psi and x1_psi.count("<circle") == 2
    assert f"<title>threshold {threshold:g}</title>" in x1_psi
    # The report is served from the database: the same page the monitoring step wrote to its folder.
    report = scored.client.get(f"{URL_PREFIX}/models/toy/drift/{DAY1}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.text == Path(scored.drift[DAY1]["report"]).read_text(encoding="utf-8")
    missing = scored.client.get(f"{URL_PREFIX}/models/toy/drift/{AS_OF}/report")
    assert missing.status_code == 404 and f"no drift_report stored for model 'toy' day {AS_OF}" in missing.text


def _chart(html: str, metric: str) -> str:
    """The SVG of the performance page's chart of `metric`."""
    return html.split(f"<h2>{metric}</h2>", 1)[1].split("</svg>", 1)[0]


def test_performance_draws_realized_and_estimated_on_one_chart_with_the_floor_and_a_labelled_range(
        scored: Scored) -> None:
    html = _page(scored, "/models/toy/performance")
    charts = re.findall(r"<h2>([^<]*)</h2><svg", html)
    assert charts[0] == scored.spec.training.metric == "roc_auc" and "estimated_roc_auc" not in charts
    chart = _chart(html, "roc_auc")
    assert 'data-series="v1 published"' in chart and 'data-series="v1 estimated"' in chart
    with scored.engine.connect() as conn:
        values = dict(conn.execute(sa.select(performance.c.partition_date, performance.c.value).where(
            performance.c.model_name == "toy", performance.c.metric == "estimated_roc_auc")).all())
    assert set(values) == {DAY1, DAY2}
    assert all(f"v1 estimated {day}: {value:.4f}" in chart for day, value in values.items())
    floor = scored.spec.training.min_score
    assert floor is not None and '<line class="reference"' in chart and f"<title>floor {floor}</title>" in chart
    ticks = [float(t) for t in re.findall(r'<text class="y-tick"[^>]*>([^<]*)</text>', chart)]
    shown = [*values.values(), *(r["value"] for r in scored.performance if r["metric"] == "roc_auc"), floor]
    assert ticks[0] <= min(shown) and ticks[-1] >= max(shown) and ticks[-1] - ticks[0] >= 0.1, ticks
    assert len({round(b - a, 9) for a, b in itertools.pairwise(ticks)}) == 1, ticks  # evenly spaced


def test_performance_leaves_a_gap_between_days_without_a_value(scored: Scored) -> None:
    later = DAY2 + dt.timedelta(days=24)
    with scored.engine.begin() as conn:  # a realized value 24 days after the last: 23 days without one
        copied = dict(conn.execute(sa.select(performance).where(
            performance.c.model_name == "toy", performance.c.partition_date == DAY2,
            performance.c.metric == "roc_auc")).mappings().one())
        conn.execute(sa.insert(performance).values({**copied, "partition_date": later}))
    chart = _chart(_page(scored, "/models/toy/performance"), "roc_auc")
    [path] = re.findall(r'<path class="series" data-series="v1 published"[^>]* d="([^"]*)"', chart)
    assert path.count("M") == 2 and path.split("M")[1].count(",") == 2, path  # DAY1-DAY2 joined, then a break
    assert f"v1 published {later}: " in chart


def test_performance_plots_realized_metrics_and_shows_a_runs_validation(scored: Scored) -> None:
    html = _page(scored, "/models/toy/performance")
    realized = [r for r in scored.performance if r["metric"] == "roc_auc"]
    assert [r["partition_date"] for r in realized] == [DAY1, DAY2]
    rows = table_rows(html, "performance")
    for record in realized:
        row = row_for(rows, record["partition_date"].isoformat(), "1", "roc_auc")
        assert row[3:] == [f"{record['value']:.4f}", str(record["n"]), "published", ""]
    chart = _chart(html, "roc_auc")
    assert chart.count("v1 published ") == 2 and '<path class="series"' in chart
    assert all(f"v1 published {r['partition_date'].isoformat()}: {r['value']:.4f}" in chart for r in realized)
    # The newest run's validation result (from the database), and another run's on request.
    assert re.search(r'run <code>ui-2</code> shard s0:\s*<span class="ok">passed</span>', html)
    other = _page(scored, "/models/toy/performance?run_id=ui-1")
    # The run succeeded: the 5 rows failing an expectation were quarantined, GX's own `success` is false.
    assert re.search(rf'run <code>ui-1</code> shard s0:\s*<span class="ok">passed with {GREEN} rows quarantined'
                     "</span>", other) and "failed" not in other and "5 keys quarantined" in other
    checks = table_rows(other, "validation")
    assert ["expect_column_values_to_be_in_set", "color", "no", str(GREEN)] in checks
    stored = scored.client.get(f"{URL_PREFIX}/models/toy/validation/{DAY1}/ui-1/s0.json")
    assert stored.status_code == 200 and stored.json()["meta"]["ml_batch"]["quarantined_keys"] == GREEN


def test_a_retried_store_replaces_the_result_and_unknown_models_are_404(scored: Scored) -> None:
    outcome = ValidationOutcome(rows=1, batch_failures=[], row_reasons={}, result_json={"success": True})
    store_result(scored.engine, outcome, "toy", DAY2, "ui-2", 0)
    store_result(scored.engine, outcome, "toy", DAY2, "ui-2", 0)
    media, content = reports.fetch(scored.engine, model="toy", day=DAY2, kind=reports.VALIDATION_RESULT,
                                   run_id="ui-2", part="s0")
    assert media == "application/json" and json.loads(content) == {"success": True}
    response = scored.client.get(f"{URL_PREFIX}/models/nope/runs")
    assert response.status_code == 404 and "no model 'nope' has versions or runs" in response.text


def test_without_credentials_every_page_is_refused(engine: sa.Engine) -> None:
    parent = FastAPI()
    parent.mount(URL_PREFIX, ui_auth.build_app(lambda: engine))
    client = TestClient(parent)
    for path in ("/", "/models/toy/runs", "/models/toy/drift/2026-05-22/report"):
        response = client.get(f"{URL_PREFIX}{path}")
        assert response.status_code == 401 and response.json() == {"detail": "Not authenticated"}, path
    # A forged token (403) needs Airflow's auth manager: tests/e2e/test_plugin.py checks it in the api-server.


def test_drift_shows_a_day_whose_feature_is_null_in_every_row(settings: Settings, engine: sa.Engine) -> None:
    from tests.support.toy import DAY, trained_toy

    features = [{"name": "x1", "type": "numeric"}, {"name": "x2", "type": "numeric", "null_share_check": False},
                {"name": "color", "type": "categorical", "categories": ["red", "blue"]}]
    spec = trained_toy(engine, settings.schema, features=features)
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET x2 = NULL WHERE event_time >= :s AND event_time < :e"),
                     {"s": start, "e": start + dt.timedelta(days=1)})
    score_day(engine, spec, DAY, run_id="no-x2")
    summary = check_day_drift(engine, spec, DAY, run_id="no-x2")
    client = TestClient(_mounted(engine))
    response = client.get(f"{URL_PREFIX}/models/toy/drift")
    assert response.status_code == 200 and "No drift checks yet" not in response.text
    day = row_for(table_rows(response.text, "drift-days"), DAY.isoformat())
    assert "x2" in day[6].split(", ") and day[7:9] == ["report", "x2"]
    assert summary.no_values == ("x2",)
    features = table_rows(response.text, "drift-features")
    assert row_for(features, DAY.isoformat(), "x2", "null_share")[3:] == [
        "1.0000", "0.1000", "-", "yes", "no values; reference 0.0%; reported only"]
    assert row_for(features, DAY.isoformat(), "x2", "psi")[6:] == ["yes", "no values"]
    assert not [r for r in features if r[1:3] == ["x2", "ks"]]
    assert row_for(features, DAY.isoformat(), "x1", "null_share")[6:] == ["no", "reference 0.0%; reported only"]
    report = client.get(f"{URL_PREFIX}/models/toy/drift/{DAY}/report")
    assert report.status_code == 200 and "x2: no values on the day" in report.text


def test_runs_show_a_partial_day_and_the_volume_each_plan_expected(settings: Settings, engine: sa.Engine) -> None:
    from tests.support.toy import DAY, trained_toy

    spec = trained_toy(engine, settings.schema)
    history = [DAY - dt.timedelta(days=14), DAY - dt.timedelta(days=7)]
    for day in history:
        score_day(engine, spec, day, run_id=f"history-{day}")
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:  # 32 of the day's 80 rows have landed
        conn.execute(sa.text(f"DELETE FROM {spec.source.table} WHERE id IN (SELECT id FROM {spec.source.table} "
                             "WHERE event_time >= :s AND event_time < :e ORDER BY id OFFSET 32)"),
                     {"s": start, "e": start + dt.timedelta(days=1)})
    score_day(engine, spec, DAY, run_id="partial", allow_partial=True)
    rows = table_rows(TestClient(_mounted(engine)).get(f"{URL_PREFIX}/models/toy/runs").text, "runs")
    partial = row_for(rows, DAY.isoformat())
    assert partial[1] == "success (partial)" and partial[4] == "32" and partial[11] == "~80 (0.40x, low)"
    assert row_for(rows, history[0].isoformat())[11] == "not checked"
    assert row_for(rows, history[1].isoformat())[1] == "success"


def test_drift_shows_out_of_support_and_an_unreliable_estimate_and_alerts_show_their_state(
    settings: Settings, engine: sa.Engine
) -> None:
    from tests.support.toy import DAY, trained_toy

    spec = trained_toy(engine, settings.schema)
    shift_toy_day(engine, spec, DAY, 100.0)  # every x1 of the day far above anything the version was trained on
    score_day(engine, spec, DAY, run_id="outside")
    summary = check_day_drift(engine, spec, DAY, run_id="outside")
    [entry] = summary.out_of_support
    client = TestClient(_mounted(engine))
    day = row_for(table_rows(client.get(f"{URL_PREFIX}/models/toy/drift").text, "drift-days"), DAY.isoformat())
    assert day[10] == f"x1: 100% of rows {entry.bound}" and entry.bound.startswith("above the training maximum")
    assert day[11] == "unreliable: " + "; ".join(summary.estimate_reasons) and summary.estimate_reliable is False
    performance = table_rows(client.get(f"{URL_PREFIX}/models/toy/performance").text, "performance")
    estimated = row_for(performance, DAY.isoformat(), "1", "estimated_roc_auc")
    assert estimated[5:] == ["estimated", "no: " + "; ".join(summary.estimate_reasons)]
    page = client.get(f"{URL_PREFIX}/models/toy/alerts").text
    [opened] = table_rows(page, "open-alerts")[1:]
    assert opened[:6] == ["out_of_support", "x1", "warning", DAY.isoformat(), DAY.isoformat(), "1"]
    assert opened[7] == "README.md#alert-out_of_support"
    recent = table_rows(page, "alerts")
    assert [r[:3] for r in recent[1:]] == [["open", "out_of_support", "x1"], ["event", "gate_promote", ""]]


# -- authorization and headers, with Airflow's own auth manager --------------------------------------------
class OneDagAuthManager(SimpleAuthManager):
    """SimpleAuthManager whose user `toy_only` may read `batch_predict_toy` and no other DAG (what an auth
    manager with per-DAG permissions, e.g. FAB's, grants); every other user as SimpleAuthManager decides."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.username == "toy_only":
            return method == "GET" and details is not None and details.id == "batch_predict_toy"
        return bool(super().is_authorized_dag(method=method, user=user, access_entity=access_entity,
                                              details=details))


@pytest.fixture()
def tokens(monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> dict[str, str]:
    """Bearer tokens of Airflow's auth manager (`OneDagAuthManager`, made as the api-server makes it) for a
    viewer, an editor (SimpleAuthManager's `user` role: edits DAGs) and `toy_only` (a viewer of one DAG)."""
    from airflow.api_fastapi import app as airflow_app

    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{__name__}.OneDagAuthManager")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "ui-test-secret-" + "x" * 64)
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", None)
    manager = airflow_app.create_auth_manager()
    assert isinstance(manager, OneDagAuthManager)
    return {name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
            for name, role in (("viewer", "viewer"), ("editor", "user"), ("toy_only", "viewer"))}


def _as(engine: sa.Engine, token: str, reader: sa.Engine | None = None,
        owner: Callable[[], sa.Engine] | None = None, specs: Callable[[], SpecScan] = NO_SPECS) -> TestClient:
    """A client of the pages with Airflow's authorization in force, authenticated by `token`: reading through
    `reader` (default: `engine`), raw rows through `owner` (default: `engine`), the specs of `specs`."""
    parent = FastAPI()
    parent.mount(URL_PREFIX, ui_auth.build_app(owner or (lambda: engine), lambda: reader or engine, specs))
    return TestClient(parent, headers={"Authorization": f"Bearer {token}"})


def test_a_viewer_sees_reasons_and_counts_and_an_editor_the_raw_rows(scored: Scored, tokens: dict[str, str]) -> None:
    pages = {}
    for user in ("viewer", "editor"):
        response = _as(scored.engine, tokens[user]).get(f"{URL_PREFIX}/models/toy/quarantine")
        assert response.status_code == 200, f"{user}: {response.status_code} {response.text[:2000]}"
        pages[user] = response.text
    viewer, editor = (table_rows(pages[u], "quarantine") for u in ("viewer", "editor"))
    assert [r[:3] for r in viewer] == [r[:3] for r in editor] and len(viewer) == 2  # the same reasons and counts
    assert viewer[1][2] == str(GREEN) and viewer[1][1].startswith("color: expect_column_values_to_be_in_set")
    assert viewer[1][3].count("key ") == 3 and "green" not in viewer[1][3] and "x1" not in pages["viewer"]
    assert "shown only to users who may edit the model's DAG" in pages["viewer"]
    assert editor[1][3].count("got 'green'") == 3 and editor[1][3].count('"color": "green"') == 3
    assert "shown only to users who may edit" not in pages["editor"]


def test_a_viewer_gets_the_gx_result_without_its_failing_values(scored: Scored, tokens: dict[str, str]) -> None:
    path = f"{URL_PREFIX}/models/toy/validation/{DAY1}/ui-1/s0.json"
    editor = _as(scored.engine, tokens["editor"]).get(path).json()
    viewer = _as(scored.engine, tokens["viewer"]).get(path).json()
    [failed] = [e for e in editor["results"] if not e["success"]]
    assert "green" in json.dumps(failed["result"])  # the stored result names the failing value
    [seen] = [e for e in viewer["results"] if not e["success"]]
    assert seen["result"]["unexpected_count"] == GREEN and "green" not in json.dumps(viewer["results"])
    assert set(seen["result"]) <= {"element_count", "missing_count", "missing_percent", "unexpected_count",
                                   "unexpected_percent", "unexpected_percent_total", "unexpected_percent_nonmissing"}
    assert viewer["statistics"] == editor["statistics"] and len(viewer["results"]) == len(editor["results"])


def test_the_index_lists_only_the_models_the_user_may_read(scored: Scored, tokens: dict[str, str]) -> None:
    with scored.engine.begin() as conn:  # a second model, with a run (a copy of toy's), that `toy_only` may not read
        copied = dict(conn.execute(sa.select(runs).where(runs.c.run_id == "ui-1")).mappings().one())
        conn.execute(sa.insert(runs).values({**copied, "model_name": "other", "run_id": "other-1"}))
    everyone = table_rows(_as(scored.engine, tokens["viewer"]).get(f"{URL_PREFIX}/").text, "models")
    assert [r[0] for r in everyone[1:]] == ["other", "toy"]
    one = _as(scored.engine, tokens["toy_only"])
    assert [r[0] for r in table_rows(one.get(f"{URL_PREFIX}/").text, "models")[1:]] == ["toy"]
    refused = one.get(f"{URL_PREFIX}/models/other/runs")
    assert refused.status_code == 403 and "other-1" not in refused.text


def test_every_page_and_refusal_carries_the_security_headers(scored: Scored, tokens: dict[str, str]) -> None:
    expected = {"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                           "frame-ancestors 'self'",
                "x-content-type-options": "nosniff", "cache-control": "no-store"}
    paths = ["/", *(f"/models/toy/{page}" for page, _ in PAGES), f"/models/toy/drift/{DAY1}/report",
             f"/models/toy/validation/{DAY1}/ui-1/s0.json", "/models/nope/runs"]
    responses = [scored.client.get(f"{URL_PREFIX}{path}") for path in paths]
    responses.append(TestClient(scored.client.app).get(f"{URL_PREFIX}/models/toy/runs",
                                                       headers={"Authorization": "Bearer forged"}))
    anonymous = FastAPI()
    anonymous.mount(URL_PREFIX, ui_auth.build_app(lambda: scored.engine))
    responses.append(TestClient(anonymous).get(f"{URL_PREFIX}/"))
    assert [r.status_code for r in responses] == [200] * (len(paths) - 1) + [404, 200, 401]
    for path, response in zip([*paths, "overridden auth, forged token", "anonymous"], responses, strict=True):
        assert {k: response.headers.get(k) for k in expected} == expected, path
    del tokens  # the auth manager the anonymous app refuses with


# -- least privilege: the pages read through a role granted by `ml-batch db grant-ui` ---------------------
@pytest.fixture()
def ui_reader(scored: Scored, settings: Settings, pg_url: str) -> Iterator[sa.Engine]:
    """An engine (as the pages make it) logged in as a fresh LOGIN role granted by `grant_ui`: what the Airflow
    connection `ml_batch_ui` names in a deployment."""
    with analyst_helpers.login_role(scored.engine, pg_url) as (role, login):
        grant_ui(scored.engine, settings.schema, [scored.spec], role)
        reader = make_engine(replace(settings, database_url=login.url.render_as_string(hide_password=False)),
                             start=False)
        try:
            yield reader
        finally:
            reader.dispose()


def _owner_refused() -> sa.Engine:
    raise AssertionError("a viewer's request touched the owner's engine")


def test_every_page_reads_through_the_ui_role_and_only_an_editors_raw_rows_as_the_owner(
        scored: Scored, tokens: dict[str, str], ui_reader: sa.Engine) -> None:
    paths = ["/", *(f"/models/toy/{page}" for page, _ in PAGES), "/models/toy/performance?run_id=ui-1",
             f"/models/toy/drift/{DAY1}/report", f"/models/toy/validation/{DAY1}/ui-1/s0.json"]
    owners = {"viewer": _owner_refused, "editor": lambda: scored.engine}
    pages: dict[tuple[str, str], str] = {}
    for user, owner in owners.items():
        client = _as(scored.engine, tokens[user], reader=ui_reader, owner=owner, specs=_scan(scored.spec))
        for path in paths:
            response = client.get(f"{URL_PREFIX}{path}")
            assert response.status_code == 200, f"{user} {path}: {response.status_code} {response.text[:2000]}"
            pages[user, path] = response.text
    assert row_for(table_rows(pages["viewer", "/"], "models"), "toy")[1].startswith("needs attention")
    quarantine = pages["viewer", "/models/toy/quarantine"]
    viewer = table_rows(quarantine, "quarantine")
    assert viewer[1][2] == str(GREEN) and "green" not in viewer[1][3] and "x1" not in quarantine
    assert "green" not in json.dumps(json.loads(pages["viewer", paths[-1]])["results"])
    editor = table_rows(pages["editor", "/models/toy/quarantine"], "quarantine")
    assert editor[1][3].count("got 'green'") == 3 and editor[1][3].count('"color": "green"') == 3
    assert "green" in json.dumps(json.loads(pages["editor", paths[-1]])["results"])
    schema = scored.spec.predictions.schema_name
    for denied in (f"SELECT row_data FROM {schema}.quarantine", f"SELECT artifact_hmac FROM {schema}.model_versions"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), ui_reader.connect() as conn:
            conn.execute(sa.text(denied))


def test_a_viewer_sees_a_validations_batch_failures_without_their_failing_values(
        scored: Scored, tokens: dict[str, str]) -> None:
    strict = scored.spec.model_copy(update={"validation": scored.spec.validation.model_copy(
        update={"max_quarantine_share": 0.01})})  # DAY1's 5 green rows of 300 fail the whole batch
    with pytest.raises(ValidationFailed, match=r"above validation\.max_quarantine_share"):
        score_day(scored.engine, strict, DAY1, run_id="ui-strict")
    path = f"{URL_PREFIX}/models/toy/performance?run_id=ui-strict"
    editor, viewer = (_as(scored.engine, tokens[user]).get(path).text for user in ("editor", "viewer"))
    [line] = [p for p in editor.split("\n") if "max_quarantine_share" in p]
    assert f"{EXAMPLES}&#39;green&#39;" in line and f"{GREEN} of 300 rows failed" in line
    [seen] = [p for p in viewer.split("\n") if "max_quarantine_share" in p]
    assert seen == line.split(EXAMPLES)[0] + "</p>" and "green" not in viewer
