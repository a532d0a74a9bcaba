"""ml-batch's Airflow UI plugin in the real api-server of the deployment shape (`tests/e2e/conftest.py`).

The stack seeds the demo source and a champion; this module scores one demo day in-process (into the same
database the api-server's `ml_batch_db` connection points at), checks its drift and realized performance, then
asks the api-server: without credentials the pages are refused, with a bearer token from `/auth/token` they
show that day's numbers, the plugin is listed by the REST API, and a headless Chromium with the UI's `_token`
cookie renders every page with the same numbers (skipped where Debian's `chromium` is not installed), and
saves one screenshot per page to a temporary folder it prints and logs (`index.png`, `registry.png`,
`runs.png`, `quarantine.png`, `drift.png`, `performance.png`, `alerts.png`, `airflow_ui_iframe.png`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ml_batch.airflow.ui_plugin import URL_PREFIX
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.monitoring.performance import realized_performance
from ml_batch.run.day import score_day
from ml_batch.run.publish import RunSummary
from ml_batch.validation.reasons import GOT
from tests.e2e.conftest import LAST_DAY, MODEL, Stack, api_json, free_port
from tests.integration.test_ui import row_for, table_rows

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
logger = logging.getLogger(__name__)

# Days whose outcomes (30 days' delay) are known by the last day; the one scored has demo entry errors.
CANDIDATES = (LAST_DAY - dt.timedelta(days=60), LAST_DAY - dt.timedelta(days=31))
RUN_ID = "e2e-ui"
PAGES = ("registry", "runs", "quarantine", "drift", "performance", "alerts")


@dataclass
class DemoDay:
    day: dt.date
    run: RunSummary
    drift: dict[str, Any]
    performance: list[dict[str, Any]]


@pytest.fixture(scope="module")
def demo_day(stack: Stack) -> DemoDay:
    with stack.engine.connect() as conn:  # the day with the most mistyped ages: rows to quarantine
        day = conn.execute(sa.text(
            "SELECT (applied_at AT TIME ZONE 'UTC')::date AS d FROM demo.credit_applications "
            "WHERE (age < 18 OR age > 100) AND applied_at >= :a AND applied_at < :b GROUP BY 1 "
            "ORDER BY count(*) DESC, 1 LIMIT 1"), {"a": CANDIDATES[0], "b": CANDIDATES[1]}).scalar_one()
    run = score_day(stack.engine, stack.spec, day, run_id=RUN_ID)
    drift = check_day_drift(stack.engine, stack.spec, day, run_id=RUN_ID).to_xcom()
    performance = realized_performance(stack.engine, stack.spec, day + dt.timedelta(days=stack.spec.labels.delay_days))
    assert run.status == "success" and run.quarantined > 0 and drift["status"] == "checked"
    return DemoDay(day, run, drift, performance)


def _expected_cells(stack: Stack, day: DemoDay) -> dict[str, tuple[str, list[str]]]:
    """Per page: a table and the first cells of a row it must hold, from the demo day's real results."""
    run, day_text = day.run, day.day.isoformat()
    realized = next(r for r in day.performance if r["metric"] == "roc_auc" and r["detail"]["kind"] == "published")
    return {
        "registry": ("aliases", ["champion", str(stack.champion)]),
        "runs": ("runs", [day_text, "success", str(run.version), "cli", str(run.extracted), str(run.scored),
                          str(run.quarantined)]),
        "drift": ("drift-days", [day_text, str(day.drift["version"]), str(day.drift["rows_checked"]),
                                 f"{day.drift['share']:.3f}"]),
        "performance": ("performance", [day_text, str(realized["model_version"]), "roc_auc",
                                        f"{realized['value']:.4f}", str(realized["n"])]),
    }


def _quarantine_counts(stack: Stack, day: dt.date) -> dict[str, int]:
    """Quarantined rows of the demo day per reason kind, counted in the database (what the page must show)."""
    with stack.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT split_part(r, :got, 1), count(*) FROM ml_batch.quarantine_published, "
            "jsonb_array_elements_text(reasons) AS r WHERE model_name = :m AND partition_date = :d GROUP BY 1"),
            {"m": MODEL, "d": day, "got": GOT}).all()
    return {str(reason): int(n) for reason, n in rows}


def _alert_states(stack: Stack) -> list[tuple[str, str]]:
    """(state, kind) of the model's alerts in the database, sorted (what the alerts page must list)."""
    with stack.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT state, kind FROM ml_batch.alerts WHERE model_name = :m"),
                            {"m": MODEL}).all()
    return sorted((str(state), str(kind)) for state, kind in rows)


def test_pages_refuse_requests_without_valid_credentials(stack: Stack, demo_day: DemoDay) -> None:
    with httpx.Client(base_url=stack.api, timeout=30) as anonymous:
        paths = ("/", *(f"/models/{MODEL}/{page}" for page in PAGES), f"/models/{MODEL}/drift/{demo_day.day}/report")
        for path in paths:
            response = anonymous.get(f"{URL_PREFIX}{path}")
            assert response.status_code == 401, f"{path}: {response.status_code} {response.text[:300]}"
            assert RUN_ID not in response.text
        forged = anonymous.get(f"{URL_PREFIX}/models/{MODEL}/runs", headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 403 and RUN_ID not in forged.text
        cookie = anonymous.get(f"{URL_PREFIX}/models/{MODEL}/runs", cookies={"_token": "forged"})
        assert cookie.status_code == 403


def test_pages_show_the_demo_days_numbers_with_a_bearer_token(stack: Stack, demo_day: DemoDay) -> None:
    with stack.client() as client:
        index = client.get(f"{URL_PREFIX}/")
        assert index.status_code == 200, index.text[:2000]
        model = row_for(table_rows(index.text, "models"), MODEL)
        # The health column read the api-server's specs folder: "ok" or "needs attention", never "unknown".
        assert model[1].startswith(("ok", "needs attention")) and model[2] == str(stack.champion), model
        for page, (table, cells) in _expected_cells(stack, demo_day).items():
            response = client.get(f"{URL_PREFIX}/models/{MODEL}/{page}")
            assert response.status_code == 200, f"{page}: {response.text[:2000]}"
            row_for(table_rows(response.text, table), *cells)  # exactly one row starts with these cells
        quarantine = client.get(f"{URL_PREFIX}/models/{MODEL}/quarantine")
        day = demo_day.day.isoformat()
        shown = {(r[1], r[2]) for r in table_rows(quarantine.text, "quarantine")[1:] if r[0] == day}
        assert shown == {(reason, str(n)) for reason, n in _quarantine_counts(stack, demo_day.day).items()}
        assert sum(int(n) for _, n in shown) >= demo_day.run.quarantined > 0
        report = client.get(f"{URL_PREFIX}/models/{MODEL}/drift/{day}/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert MODEL in report.text and day in report.text
    # The api-server found ml-batch's database through the Airflow connection `ml_batch_db`.
    log = stack.components["api-server"].log.read_text(errors="replace")
    assert "the ml-batch pages read the database of the Airflow connection 'ml_batch_db'" in log


def test_the_rest_api_lists_the_plugin_with_its_app_and_nav_entry(stack: Stack) -> None:
    with stack.client() as client:
        body = api_json(client.get("/api/v2/plugins"))
    [plugin] = [p for p in body["plugins"] if p["name"] == "ml_batch_ui"]
    assert [(a["name"], a["url_prefix"]) for a in plugin["fastapi_apps"]] == [("ml-batch", URL_PREFIX)]
    [view] = plugin["external_views"]
    assert (view["name"], view["href"], view["destination"], view["url_route"]) == (
        "ml-batch", f"{URL_PREFIX}/", "nav", "ml-batch")


# -- headless Chromium over the DevTools protocol ---------------------------------------------------------
_TABLES_JS = """JSON.stringify(Object.fromEntries([...(%s).querySelectorAll('table')].map(t =>
  [t.id || t.className, [...t.rows].map(r => [...r.cells].map(c => c.innerText.replace(/\\s+/g, ' ').trim()))])))"""


class _Chromium:
    """One headless Chromium page driven over the Chrome DevTools protocol (a websocket, no driver)."""

    def __init__(self, binary: str, profile: Path) -> None:
        from websockets.sync.client import connect

        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", f"--user-data-dir={profile}", f"--remote-debugging-port={self.port}",
             "--remote-allow-origins=*", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        target = None
        while target is None:
            try:
                pages = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=5).json()
                target = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
            except (httpx.TransportError, StopIteration):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError(f"{binary} did not open its DevTools port {self.port}") from None
                time.sleep(0.5)
        self.socket = connect(target, max_size=64 * 2**20)
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self._id:
                assert "error" not in message, f"{method}: {message['error']}"
                return dict(message.get("result", {}))
            self.events.append(message)

    def load(self, url: str, timeout: float = 60) -> None:
        self.events.clear()
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, f"{url} did not load in {timeout:.0f}s"
            self.events.append(json.loads(self.socket.recv(timeout=timeout)))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture()
def browser(stack: Stack, tmp_path: Path) -> Iterator[_Chromium]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no headless browser: install Debian's `chromium` package (.ci/run does) to run this test")
    chromium = _Chromium(binary, tmp_path / "profile")
    try:
        chromium.send("Page.enable")
        chromium.send("Network.enable")
        # The UI's session cookie: what the browser sends with the iframe's same-origin requests.
        assert chromium.send("Network.setCookie", name="_token", value=stack.token, url=stack.api,
                             path="/")["success"]
        yield chromium
    finally:
        chromium.close()


def _wait_for_tables(chromium: _Chromium, document: str, timeout: float = 60) -> dict[str, list[list[str]]]:
    deadline = time.monotonic() + timeout
    while True:
        script = _TABLES_JS % document
        found = chromium.evaluate(f"(() => {{ try {{ return {script}; }} catch (e) {{ return null; }} }})()")
        tables = json.loads(found) if found else {}
        if tables or time.monotonic() > deadline:
            return tables
        time.sleep(1)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """The folder the browser test saves its screenshots to (kept after the run: printed and logged)."""
    folder = Path(tempfile.mkdtemp(prefix="ml-batch-ui-screenshots-"))
    print(f"ml-batch UI screenshots: {folder}")  # where to look, with `pytest -s`
    logger.warning("ml-batch UI screenshots: %s", folder)
    return folder


def test_headless_chromium_renders_each_page_with_the_demo_numbers(
    stack: Stack, demo_day: DemoDay, browser: _Chromium, screenshots: Path
) -> None:
    expected = _expected_cells(stack, demo_day)
    browser.load(f"{stack.api}{URL_PREFIX}/")
    browser.screenshot(screenshots / "index.png")
    index = _wait_for_tables(browser, "document")
    assert row_for(index.get("models", []), MODEL)[1].startswith(("ok", "needs attention")), index
    for page in PAGES:
        browser.load(f"{stack.api}{URL_PREFIX}/models/{MODEL}/{page}")
        browser.screenshot(screenshots / f"{page}.png")
        title = browser.evaluate("document.querySelector('h1') && document.querySelector('h1').innerText")
        assert title == f"{MODEL}: {'recent runs' if page == 'runs' else page}", (page, title)
        tables = _wait_for_tables(browser, "document")
        if page in expected:
            table, cells = expected[page]
            assert table in tables, (page, sorted(tables))
            row_for(tables[table], *cells)
        elif page == "alerts":  # the model's alerts of the database, each with its state and kind
            shown = sorted((r[0], r[1]) for r in tables.get("alerts", [])[1:])
            assert shown == _alert_states(stack), shown
        else:  # quarantine: the per-reason counts of the database
            rows = {(r[1], r[2]) for r in tables.get("quarantine", [])[1:] if r[0] == demo_day.day.isoformat()}
            assert rows == {(reason, str(n)) for reason, n in _quarantine_counts(stack, demo_day.day).items()}, rows
        if page == "runs":  # newest day first
            days = [r[0] for r in tables["runs"][1:] if r[0]]
            assert days == sorted(days, reverse=True), days
        assert (screenshots / f"{page}.png").stat().st_size > 1000
    # The performance chart of the gate metric: realized (and estimated) lines, the floor, a labelled y-axis.
    browser.load(f"{stack.api}{URL_PREFIX}/models/{MODEL}/performance?run_id={RUN_ID}")
    first = browser.evaluate("document.querySelector('h2').innerText")
    assert first == stack.spec.training.metric, first
    assert browser.evaluate("document.querySelectorAll('svg path.series').length") >= 1
    assert browser.evaluate("document.querySelectorAll('svg text.y-tick').length") >= 3
    if stack.spec.training.min_score is not None:
        assert browser.evaluate("document.querySelectorAll('svg line.reference').length") == 1
    # The run succeeded with quarantined rows: each shard's validation "passed", none "failed".
    verdicts = browser.evaluate("[...document.querySelectorAll('h3 span')].map(s => s.innerText)")
    assert verdicts and all(v.startswith("passed") for v in verdicts), verdicts
    assert any(v.startswith("passed with ") and v.endswith(" quarantined") for v in verdicts), verdicts
    # The nav entry: Airflow's UI shows the pages in an iframe, authenticated by the same cookie.
    browser.load(f"{stack.api}/plugin/ml-batch")
    frame_tables = _wait_for_tables(
        browser, "document.querySelector('iframe').contentDocument", timeout=90)
    browser.screenshot(screenshots / "airflow_ui_iframe.png")
    assert row_for(frame_tables.get("models", []), MODEL)[2] == str(stack.champion), frame_tables
    saved = sorted(p.name for p in screenshots.glob("*.png"))
    assert saved == sorted(["index.png", *(f"{page}.png" for page in PAGES), "airflow_ui_iframe.png"]), saved
