"""The read-only pages as a FastAPI app: an index of models and six pages per model.

The caller supplies the engine (a function, called on the first request, never at import) and the
authorization: `view_access` guards every page, `model_access` every page of one model (it receives the
path parameter `model`), `readable_models` returns which models the user may read (the index lists only
those), and `raw_access` says whether the user may see one model's raw values. The app has no
authentication of its own; the Airflow plugin passes Airflow's.

Raw values are what the analyst role (`ml-batch db grant-analyst`) may not read: a quarantined row's
`row_data`, the value after a row reason's `got`, and the failing values of a stored GX result
(`unexpected_*` lists, `partial_unexpected_*`, `details`). Users without raw access (Airflow viewers: no
edit access to the model's DAG) see reasons and counts; the GX JSON is served without the failing values.

Every response carries `SECURITY_HEADERS`: the pages hold raw rows, so no script, no external resource,
no framing by another origin, no MIME sniffing and no cache.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from ml_batch.ops import alerts, reports
from ml_batch.ui import queries
from ml_batch.ui.plot import line_chart
from ml_batch.ui.templates import environment

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
# What a viewer keeps of a GX expectation's `result`: counts and shares, never the failing values.
_COUNT_KEYS = frozenset({"element_count", "missing_count", "missing_percent", "unexpected_count",
                         "unexpected_percent", "unexpected_percent_total", "unexpected_percent_nonmissing"})
ModelFilter = Callable[[Sequence[str]], set[str]]

PAGES = (("registry", "Registry"), ("runs", "Recent runs"), ("quarantine", "Quarantine"), ("drift", "Drift"),
         ("performance", "Performance"), ("alerts", "Alerts"))


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
               raw_access: Callable[..., bool], title: str = "ml-batch") -> FastAPI:
    """The pages' app.

    Args:
        engine_factory: Makes the engine of ml-batch's database; called once, on the first request.
        view_access: A FastAPI dependency every request must pass (raises 401/403 otherwise).
        model_access: A FastAPI dependency for the pages of one model (path parameter `model`).
        readable_models: A FastAPI dependency returning a function that keeps, of some model names, those
            the user may read (the index lists only those).
        raw_access: A FastAPI dependency (path parameter `model`) returning whether the user may see the
            model's raw values (quarantined rows, GX failing values).
        title: Title of the index page.
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(view_access)])
    app.state.engine = _LazyEngine(engine_factory)
    app.state.templates = environment()
    app.state.title = title
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
    html = request.app.state.templates.get_template(name).render(
        base=request.scope.get("root_path", "").rstrip("/"), title=title, model=model, pages=PAGES,
        current=name, **values)
    return HTMLResponse(html)


def _known(request: Request, model: str) -> sa.Engine:
    """The engine, once `model` is known to have versions or runs (404 otherwise)."""
    engine: sa.Engine = request.app.state.engine()
    if not queries.known_model(engine, model):  # after model_access: a 404 tells only readers
        raise HTTPException(status_code=404, detail=f"no model {model!r} has versions or runs")
    return engine


@_index.get("/", response_class=HTMLResponse)
def _index_page(request: Request) -> HTMLResponse:
    found = queries.models(request.app.state.engine())
    readable = request.state.readable([m["model_name"] for m in found])
    return _page(request, "index", request.app.state.title, models=[m for m in found if m["model_name"] in readable])


@_per_model.get("/registry", response_class=HTMLResponse)
def _registry_page(request: Request, model: str) -> HTMLResponse:
    db = _known(request, model)
    return _page(request, "registry", f"{model}: registry", model, versions=queries.versions(db, model),
                 aliases=queries.aliases(db, model), events=queries.events(db, model))


@_per_model.get("/runs", response_class=HTMLResponse)
def _runs_page(request: Request, model: str) -> HTMLResponse:
    return _page(request, "runs", f"{model}: recent runs", model,
                 runs=queries.recent_runs(_known(request, model), model))


@_per_model.get("/quarantine", response_class=HTMLResponse)
def _quarantine_page(request: Request, model: str) -> HTMLResponse:
    raw: bool = request.state.raw
    return _page(request, "quarantine", f"{model}: quarantine", model,
                 reasons=queries.quarantine_reasons(_known(request, model), model, raw=raw),
                 days=queries.QUARANTINE_DAYS, examples=queries.EXAMPLES_PER_REASON, raw=raw)


@_per_model.get("/drift", response_class=HTMLResponse)
def _drift_page(request: Request, model: str) -> HTMLResponse:
    days, features = queries.drift_history(_known(request, model), model)
    return _page(request, "drift", f"{model}: drift", model, days=days, features=features)


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
    shown = [_validation_summary(r, _stored_json(db, model, r)) for r in results if r["run_id"] == chosen]
    return _page(request, "performance", f"{model}: performance", model, charts=_charts(rows),
                 rows=list(reversed(rows)), results=results, runs=run_ids, run_id=chosen,
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


def _validation_summary(row: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of one stored GX result."""
    ours = result.get("meta", {}).get("ml_batch", {})
    expectations = []
    for entry in result.get("results", []):
        config = entry.get("expectation_config", {})
        kwargs = config.get("kwargs", {})
        column = kwargs.get("column") or ", ".join(kwargs.get("column_list") or [])
        expectations.append({"type": config.get("type", ""), "column": column, "success": bool(entry.get("success")),
                             "unexpected": entry.get("result", {}).get("unexpected_count")})
    return {**row, "success": bool(result.get("success")), "statistics": result.get("statistics", {}),
            "rows": ours.get("rows"), "batch_failures": ours.get("batch_failures", []),
            "quarantined_keys": ours.get("quarantined_keys", 0), "expectations": expectations}


def _charts(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """One chart per metric: a line per version (and kind: published, shadow or estimated)."""
    series: dict[str, dict[str, list[tuple[dt.date, float]]]] = {}
    for row in rows:
        if row["value"] is None:
            continue
        label = f"v{row['model_version']} {row['detail'].get('kind', '')}".strip()
        series.setdefault(row["metric"], {}).setdefault(label, []).append((row["partition_date"], row["value"]))
    return [(metric, line_chart(metric, lines)) for metric, lines in sorted(series.items())]
