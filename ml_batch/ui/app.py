"""The read-only pages as a FastAPI app: an index of models and six pages per model.

The caller supplies the engines (functions, each called on its first use, never at import) and the
authorization: `view_access` guards every page, `model_access` every page of one model (it receives the
path parameter `model`), `readable_models` returns which models the user may read (the index lists only
those), and `raw_access` says whether the user may see one model's raw values. The app has no
authentication of its own; the Airflow plugin passes Airflow's.

Raw values are the source rows' values: a quarantined row's `row_data`, the value after a row reason's
`got`, the failing values of a stored GX result (`unexpected_*` lists, `partial_unexpected_*`, `details`) and
the examples a batch-failure line ends with. Users without raw access (Airflow viewers: no edit access to the
model's DAG) see reasons and counts: the GX JSON is served without the failing values, a validation's
batch-failure lines without their examples (`validation.reasons.without_examples`).

Two engines, for least privilege: the reader (`engine_factory`: in a deployment, a role granted by
`ml-batch db grant-ui`) serves every page; the owner (`raw_engine_factory`) is used only for a user with raw
access, and only for what the reader may not read: a quarantined row's `row_data` and full reasons
(`queries.with_raw_rows`). The stored GX results (failing values included) are read by the reader, which
`grant-ui` grants `reports`: the pages serve them, and the app strips the failing values for viewers. So a
viewer's request never touches the owner's engine. Without a separate owner, both are the reader.

The index says per model whether it needs attention (`ml_batch.monitoring.status.model_status`, over the specs the
caller's `specs_factory` reads, per request, so a changed spec counts at once); a model whose spec cannot be
read, or that has none, says so in its row, and a broken spec file matching no listed model is listed below
the table. The performance page draws one chart per metric, the gate metric (`training.metric`) first, the
realized and estimated series together with the spec's floor; the drift page one small trend chart per
feature and statistic, the table behind a toggle (`<details>`: no script). A multiclass model (one with a
multiclass version) has a seventh page, its predicted class mix per day (a line per class and the numbers),
read from its spec's predictions table; its registry page lists each version's classes with their training
and holdout rows. A run links to its Airflow run
(`run_link`, in the top window: the pages are shown in Airflow's iframe).

Every response carries `SECURITY_HEADERS`: the pages hold raw rows, so no script, no external resource,
no framing by another origin, no MIME sniffing and no cache.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from ml_batch.errors import SpecError
from ml_batch.model.metrics import floor_name
from ml_batch.monitoring.estimate import ESTIMATED_PREFIX
from ml_batch.monitoring.status import model_status
from ml_batch.ops import alerts, reports
from ml_batch.run.runs import FAILED, FINISHED, RUNNING
from ml_batch.spec import Spec
from ml_batch.spec_folder import SpecScan
from ml_batch.ui import queries
from ml_batch.ui.plot import Reference, line_chart, trend_chart
from ml_batch.ui.templates import environment
from ml_batch.validation.reasons import without_examples

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
# What a viewer keeps of a GX expectation's `result`: counts and shares, never the failing values.
_COUNT_KEYS = frozenset({"element_count", "missing_count", "missing_percent", "unexpected_count",
                         "unexpected_percent", "unexpected_percent_total", "unexpected_percent_nonmissing"})
ModelFilter = Callable[[Sequence[str]], set[str]]
Row = queries.Row
#: (the pages' base path, the model, a `queries.recent_runs` row) -> the URL of the run in Airflow's UI, or None.
RunLink = Callable[[str, str, Mapping[str, Any]], str | None]

PAGES = (("registry", "Registry"), ("runs", "Recent runs"), ("quarantine", "Quarantine"), ("drift", "Drift"),
         ("performance", "Performance"), ("alerts", "Alerts"))
#: The page only a multiclass model's navigation lists.
CLASS_MIX_PAGE = ("classes", "Class mix")


class _LazyEngine:
    """The engine, made by `factory` on first use (thread-safe), so importing the plugin opens nothing."""

    def __init__(self, factory: Callable[[], sa.Engine]) -> None:
        self._factory = factory
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def __call__(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._factory()
            return self._engine


def create_app(engine_factory: Callable[[], sa.Engine], *, view_access: Callable[..., Any],
               model_access: Callable[..., Any], readable_models: Callable[..., ModelFilter],
               raw_access: Callable[..., bool], raw_engine_factory: Callable[[], sa.Engine] | None = None,
               specs_factory: Callable[[], SpecScan] | None = None, run_link: RunLink | None = None,
               title: str = "ml-batch") -> FastAPI:
    """The pages' app.

    Args:
        engine_factory: Makes the engine every page reads through (the UI role's); called once, on the first
            request.
        view_access: A FastAPI dependency every request must pass (raises 401/403 otherwise).
        model_access: A FastAPI dependency for the pages of one model (path parameter `model`).
        readable_models: A FastAPI dependency returning a function that keeps, of some model names, those
            the user may read (the index lists only those).
        raw_access: A FastAPI dependency (path parameter `model`) returning whether the user may see the
            model's raw values (quarantined rows, GX failing values).
        raw_engine_factory: Makes the engine of the raw reads (the owner's), called once, on the first raw
            read of a user with raw access; None: the raw reads go through `engine_factory`'s engine.
        specs_factory: Reads the specs folder (`ml_batch.spec_folder.scan_specs`), called on each index and
            performance page (it may raise SpecError: the pages say so); None: no health, no floor line.
        run_link: A run's URL in Airflow's UI (None for a run Airflow did not start); None: no links.
        title: Title of the index page.
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(view_access)])
    app.state.engine = _LazyEngine(engine_factory)
    app.state.raw_engine = app.state.engine if raw_engine_factory is None else _LazyEngine(raw_engine_factory)
    app.state.templates = environment()
    app.state.title = title
    app.state.specs = specs_factory
    app.state.run_link = run_link
    app.middleware("http")(_security_headers)
    app.include_router(_index, dependencies=[Depends(_kept("readable", readable_models))])
    app.include_router(_per_model, dependencies=[Depends(model_access), Depends(_kept("raw", raw_access))])
    return app


def _kept(name: str, dependency: Callable[..., Any]) -> Callable[..., None]:
    """A dependency that keeps `dependency`'s value in `request.state.<name>` for the page to read."""

    # A default, not `Annotated[..., Depends(dependency)]`: string annotations cannot name a local.
    def keep(request: Request, value: Any = Depends(dependency)) -> None:  # noqa: B008
        setattr(request.state, name, value)

    return keep


async def _security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Every response, refusals and stored reports included, with `SECURITY_HEADERS`."""
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


_index = APIRouter()
_per_model = APIRouter(prefix="/models/{model}")


def _page(request: Request, name: str, title: str, model: str | None = None, **values: Any) -> HTMLResponse:
    pages: tuple[tuple[str, str], ...] = PAGES
    if model is not None and queries.is_multiclass(request.app.state.engine(), model):
        pages = (*PAGES, CLASS_MIX_PAGE)
    html = request.app.state.templates.get_template(name).render(
        base=request.scope.get("root_path", "").rstrip("/"), title=title, model=model, pages=pages,
        current=name, **values)
    return HTMLResponse(html)


def _known(request: Request, model: str) -> sa.Engine:
    """The engine, once `model` is known to have versions or runs (404 otherwise)."""
    engine: sa.Engine = request.app.state.engine()
    if not queries.known_model(engine, model):  # after model_access: a 404 tells only readers
        raise HTTPException(status_code=404, detail=f"no model {model!r} has versions or runs")
    return engine


def _scan(request: Request) -> tuple[SpecScan | None, str | None]:
    """The specs folder as `specs_factory` reads it, or None and why not."""
    factory: Callable[[], SpecScan] | None = request.app.state.specs
    if factory is None:
        return None, "no specs folder given to the pages"
    try:
        return factory(), None
    except SpecError as exc:
        return None, f"the specs folder cannot be read: {exc}"


def _health(engine: sa.Engine, names: Sequence[str], scan: SpecScan | None, why: str | None) -> dict[str, Row]:
    """Per model name: `state` (`ok`, `attention` or `unknown`) and the lines that say why."""
    if scan is None:
        return {name: {"state": "unknown", "lines": [f"not checked: {why}"]} for name in names}
    broken = {error.path.stem: error.message for error in scan.errors}
    statuses = {s.model: s for s in model_status(engine, [scan.specs[n] for n in names if n in scan.specs])}
    health: dict[str, Row] = {}
    for name in names:
        if name in statuses:
            reasons = list(statuses[name].needs_attention)
            health[name] = {"state": "attention" if reasons else "ok", "lines": reasons}
        elif name in broken:
            health[name] = {"state": "unknown", "lines": [f"not checked: its spec cannot be read: {broken[name]}"]}
        else:
            health[name] = {"state": "unknown", "lines": ["not checked: no spec of this model in the specs folder"]}
    return health


@_index.get("/", response_class=HTMLResponse)
def _index_page(request: Request) -> HTMLResponse:
    engine: sa.Engine = request.app.state.engine()
    found = queries.models(engine)
    scan, why = _scan(request)
    stems = [e.path.stem for e in scan.errors] if scan is not None else []
    readable = request.state.readable([*(m["model_name"] for m in found), *stems])
    shown = [m for m in found if m["model_name"] in readable]
    listed = {m["model_name"] for m in shown}
    unmatched = [e for e in (scan.errors if scan is not None else []) if e.path.stem in readable - listed]
    return _page(request, "index", request.app.state.title, models=shown, why=why, broken=unmatched,
                 health=_health(engine, [m["model_name"] for m in shown], scan, why))


@_per_model.get("/registry", response_class=HTMLResponse)
def _registry_page(request: Request, model: str) -> HTMLResponse:
    db = _known(request, model)
    versions = queries.versions(db, model)
    return _page(request, "registry", f"{model}: registry", model, versions=versions,
                 aliases=queries.aliases(db, model), events=queries.events(db, model), classes=class_rows(versions))


def class_rows(versions: Sequence[Row]) -> list[Row]:
    """Per multiclass version (newest first) and class (in the version's order): its `train` and `holdout`
    rows (`model_versions.class_counts`; None when not recorded). Binary and regression versions have none."""
    rows = []
    for v in versions:
        counts = v.get("class_counts") or {}
        for name in v.get("classes") or []:
            rows.append({"version": v["version"], "class_name": name, "train": (counts.get("train") or {}).get(name),
                         "holdout": (counts.get("holdout") or {}).get(name)})
    return rows


@_per_model.get("/classes", response_class=HTMLResponse)
def _classes_page(request: Request, model: str) -> HTMLResponse:
    db = _known(request, model)
    scan, why = _scan(request)
    spec = scan.specs.get(model) if scan is not None else None
    if scan is not None and spec is None:
        why = "no readable spec of this model in the specs folder"
    mix = queries.class_mix(db, spec.predictions.table) if spec is not None else []
    table = class_mix_table(mix)
    return _page(request, "classes", f"{model}: class mix", model, mix=table, chart=_class_chart(table),
                 missing=None if spec is not None else why, days=queries.CLASS_MIX_DAYS)


def class_mix_table(mix: Sequence[Row]) -> dict[str, Any]:
    """`queries.class_mix` rows as a table: `classes` (sorted), and per day (newest first) its `rows` and each
    class's `counts` and `shares` (0 for a class not predicted that day)."""
    classes = sorted({r["predicted_label"] for r in mix})
    days: dict[dt.date, Row] = {}
    for r in mix:
        day = days.setdefault(r["partition_date"], {"day": r["partition_date"], "rows": 0, "counts": {}, "shares": {}})
        day["rows"] += r["rows"]
        day["counts"][r["predicted_label"]] = r["rows"]
        day["shares"][r["predicted_label"]] = r["share"]
    return {"classes": classes, "days": [{**d, "counts": {c: d["counts"].get(c, 0) for c in classes},
                                          "shares": {c: d["shares"].get(c, 0.0) for c in classes}}
                                         for _, d in sorted(days.items(), reverse=True)]}


def _class_chart(table: Mapping[str, Any]) -> str:
    """A line per predicted class: its share of each day's predictions (0 on a day it was not predicted)."""
    return line_chart("predicted class share per day", {
        name: [(d["day"], float(d["shares"][name])) for d in table["days"]] for name in table["classes"]})


@_per_model.get("/runs", response_class=HTMLResponse)
def _runs_page(request: Request, model: str) -> HTMLResponse:
    link: RunLink | None = request.app.state.run_link
    base = request.scope.get("root_path", "").rstrip("/")
    found = queries.recent_runs(_known(request, model), model)
    return _page(request, "runs", f"{model}: recent runs", model,
                 runs=[{**r, "link": link(base, model, r) if link is not None else None} for r in found])


@_per_model.get("/quarantine", response_class=HTMLResponse)
def _quarantine_page(request: Request, model: str) -> HTMLResponse:
    raw: bool = request.state.raw
    reasons = queries.quarantine_reasons(_known(request, model), model)
    if raw:  # only now, and only for this: the owner's engine
        reasons = queries.with_raw_rows(request.app.state.raw_engine(), reasons)
    return _page(request, "quarantine", f"{model}: quarantine", model, reasons=reasons,
                 days=queries.QUARANTINE_DAYS, examples=queries.EXAMPLES_PER_REASON, raw=raw)


@_per_model.get("/drift", response_class=HTMLResponse)
def _drift_page(request: Request, model: str) -> HTMLResponse:
    days, features = queries.drift_history(_known(request, model), model)
    return _page(request, "drift", f"{model}: drift", model, days=days, features=features,
                 trends=_trends(features), classed=class_drift_days(days))


def class_drift_days(days: Sequence[Row]) -> list[Row]:
    """The days checked with a multiclass model's class drift (`DriftResult.class_drift` in the stored summary;
    None for binary and regression days): `day`, `drift` and its `unseen` classes."""
    found = []
    for d in days:
        summary = (d.get("detail") or {}).get("summary") or {}
        if summary.get("class_drift") is not None:
            found.append({"day": d["partition_date"], "drift": bool(summary["class_drift"]),
                          "unseen": list(summary.get("unseen_classes") or [])})
    return found


@_per_model.get("/alerts", response_class=HTMLResponse)
def _alerts_page(request: Request, model: str) -> HTMLResponse:
    db = _known(request, model)
    return _page(request, "alerts", f"{model}: alerts", model, open_=alerts.open_alerts(db, model),
                 recent=alerts.recent(db, model, queries.ALERT_LIMIT))


@_per_model.get("/drift/{day}/report", response_class=HTMLResponse)
def _drift_report(request: Request, model: str, day: dt.date) -> Response:
    return _stored(_known(request, model), model, day, reports.DRIFT_REPORT)


@_per_model.get("/performance", response_class=HTMLResponse)
def _performance_page(request: Request, model: str, run_id: str | None = None) -> HTMLResponse:
    db = _known(request, model)
    rows = queries.performance_history(db, model)
    results = queries.validation_results(db, model)
    run_ids = list(dict.fromkeys(r["run_id"] for r in results))
    chosen = run_id if run_id is not None else (run_ids[0] if run_ids else None)
    if chosen is not None and chosen not in run_ids:
        raise HTTPException(status_code=404, detail=f"no validation result of run {chosen!r} for {model!r}")
    raw: bool = request.state.raw
    shown = [_validation_summary(r, _stored_json(db, model, r), raw=raw) for r in results if r["run_id"] == chosen]
    scan, why = _scan(request)
    spec = scan.specs.get(model) if scan is not None else None
    if scan is not None and spec is None:
        why = "no readable spec of this model in the specs folder"
    return _page(request, "performance", f"{model}: performance", model, charts=_charts(rows, spec),
                 floor_missing=None if spec is not None else why,
                 rows=list(reversed(rows)), results=results, runs=run_ids, run_id=chosen, unseen=unseen_rows(rows),
                 shown=sorted(shown, key=lambda v: v["part"]))


@_per_model.get("/validation/{day}/{run_id}/{part}.json")
def _validation_json(request: Request, model: str, day: dt.date, run_id: str, part: str) -> Response:
    media_type, content = _fetched(_known(request, model), model, day, reports.VALIDATION_RESULT, run_id=run_id,
                                   part=part)
    if not request.state.raw:
        content = json.dumps(without_failing_values(json.loads(content)))
    return Response(content, media_type=media_type)


def _stored(engine: sa.Engine, model: str, day: dt.date, kind: str) -> Response:
    media_type, content = _fetched(engine, model, day, kind)
    return Response(content, media_type=media_type)


def _fetched(engine: sa.Engine, model: str, day: dt.date, kind: str, *, run_id: str | None = None,
             part: str = "") -> tuple[str, str]:
    """A stored report's (media type, content); 404 when none is stored."""
    try:
        return reports.fetch(engine, model=model, day=day, kind=kind, run_id=run_id, part=part)
    except reports.ReportNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc


def _stored_json(engine: sa.Engine, model: str, row: dict[str, Any]) -> dict[str, Any]:
    _, content = reports.fetch(engine, model=model, day=row["partition_date"], kind=reports.VALIDATION_RESULT,
                               run_id=row["run_id"], part=row["part"])
    loaded: dict[str, Any] = json.loads(content)
    return loaded


def without_failing_values(result: dict[str, Any]) -> dict[str, Any]:
    """A stored GX result as a viewer may read it: each expectation's `result` keeps only counts and shares
    (`_COUNT_KEYS`), so no failing value, index or row is left."""
    entries = [{**entry, "result": {k: v for k, v in (entry.get("result") or {}).items() if k in _COUNT_KEYS}}
               for entry in result.get("results", [])]
    return {**result, "results": entries} if "results" in result else dict(result)


def unseen_rows(rows: Sequence[Row]) -> list[Row]:
    """Per day, version and kind with labelled rows of classes the version was not trained on (a multiclass
    model's realized metrics' detail `n_unseen`, `unseen_classes`): `day`, `version`, `rows` and `classes`."""
    found: dict[tuple[Any, Any, Any], Row] = {}
    for r in rows:
        detail = r["detail"] or {}
        if detail.get("n_unseen"):
            found.setdefault((r["partition_date"], r["model_version"], detail.get("kind")), {
                "day": r["partition_date"], "version": r["model_version"], "rows": detail["n_unseen"],
                "classes": detail.get("unseen_classes") or {}})
    return list(found.values())


def _validation_summary(row: dict[str, Any], result: dict[str, Any], *, raw: bool) -> dict[str, Any]:
    """What the page shows of one stored GX result (its batch-failure lines without examples unless `raw`), with
    its `verdict` (`_verdict`)."""
    ours = result.get("meta", {}).get("ml_batch", {})
    failures: list[str] = ours.get("batch_failures", [])
    quarantined = row["shard_quarantined"] if row.get("shard_quarantined") is not None else ours.get(
        "quarantined_keys", 0)
    expectations = []
    for entry in result.get("results", []):
        config = entry.get("expectation_config", {})
        kwargs = config.get("kwargs", {})
        column = kwargs.get("column") or ", ".join(kwargs.get("column_list") or [])
        expectations.append({"type": config.get("type", ""), "column": column, "success": bool(entry.get("success")),
                             "unexpected": entry.get("result", {}).get("unexpected_count")})
    return {**row, "success": bool(result.get("success")), "statistics": result.get("statistics", {}),
            "rows": ours.get("rows"), "batch_failures": [line if raw else without_examples(line) for line in failures],
            "quarantined_keys": ours.get("quarantined_keys", 0), "expectations": expectations,
            "verdict": _verdict(bool(result.get("success")), failures, quarantined, row.get("run_status"))}


def _verdict(success: bool, batch_failures: Sequence[str], quarantined: int, run_status: str | None) -> Row:
    """What a shard's validation came to, in words: `failed` when it failed the batch; else `passed`, or
    `passed with N rows quarantined` when rows failed (they were set aside, the rest was scored: GX's own
    `success` is false then, yet the run succeeded); with what became of the run when it did not finish."""
    if batch_failures:
        return {"text": "failed", "ok": False}
    rows = f"{quarantined} row{'' if quarantined == 1 else 's'}"
    text = "passed" if success and not quarantined else f"passed with {rows} quarantined"
    if run_status == FAILED:
        return {"text": f"{text}; the run failed afterwards (see Recent runs)", "ok": False}
    if run_status == RUNNING:
        return {"text": f"{text}; the run is still going", "ok": True}
    return {"text": text, "ok": run_status is None or run_status in FINISHED}


def _charts(rows: Sequence[dict[str, Any]], spec: Spec | None) -> list[tuple[str, str]]:
    """One chart per metric, the gate metric (`training.metric`) first: a line per version and kind (published,
    shadow; the label-free estimate of the metric, `estimated_<metric>`, dashed on the same chart), and the
    spec's floor (`training.min_score`) on the gate metric's."""
    series: dict[str, dict[str, list[tuple[dt.date, float]]]] = {}
    estimated: set[str] = set()
    for row in rows:
        if row["value"] is None:
            continue
        kind = (row["detail"] or {}).get("kind", "")
        label = f"v{row['model_version']} {kind}".strip()
        if kind == "estimated":
            estimated.add(label)
        metric = row["metric"].removeprefix(ESTIMATED_PREFIX)
        series.setdefault(metric, {}).setdefault(label, []).append((row["partition_date"], row["value"]))
    gate = spec.training.metric if spec is not None else None
    floor = spec.training.min_score if spec is not None else None

    def chart(metric: str, lines: dict[str, list[tuple[dt.date, float]]]) -> str:
        reference = (Reference(f"{floor_name(metric)} {floor}", floor)
                     if metric == gate and floor is not None else None)
        ordered = dict(sorted(lines.items(), key=lambda item: (item[0] in estimated, item[0])))
        return line_chart(metric, ordered, reference=reference, dashed=estimated)

    ordered = sorted(series.items(), key=lambda item: (item[0] != gate, item[0]))
    return [(metric, chart(metric, lines)) for metric, lines in ordered]


def _trends(features: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """Per feature (in name order), one small chart per statistic of its drift over the checked days, the
    threshold dashed and a drifted day's dot red."""
    grouped: dict[str, dict[str, list[Row]]] = {}
    for row in features:
        grouped.setdefault(row["feature"], {}).setdefault(row["test"], []).append(row)
    trends = []
    for feature, tests in sorted(grouped.items()):
        charts = []
        for test, found in sorted(tests.items()):
            points = [(r["partition_date"], float(r["value"]), bool(r["drifted"])) for r in found
                      if r["value"] is not None]
            latest = max(found, key=lambda r: r["partition_date"])
            threshold = latest["threshold"]
            reference = Reference(f"threshold {threshold:g}", float(threshold)) if threshold is not None else None
            charts.append({"test": test, "svg": trend_chart(f"{feature} {test}", points, reference=reference),
                           "drifted": bool(latest["drifted"])})
        trends.append((feature, charts))
    return trends
