"""Loading the plugin, as every Airflow process does (task processes included), stays light and opens nothing;
the pages' app, once built, reads through the UI role its connection names.

A fresh interpreter loads `plugins/` through the task SDK's plugin manager (what a task process runs before a
task) with an audit hook on network events, then reports which of the pages' heavy modules got imported.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from tests.integration import analyst_helpers

REPO = Path(__file__).resolve().parents[2]
MARKER = "PLUGIN-REPORT "
HEAVY = ("fastapi", "airflow.api_fastapi.core_api.security", "ml_batch.airflow.ui_auth", "ml_batch.ui.app",
         "pandas", "psycopg2")

PROBE = r"""
import json, sys

network = []
sys.addaudithook(lambda event, args: network.append(event) if event.startswith("socket.connect") else None)
from airflow.sdk import plugins_manager

plugins, errors = plugins_manager._get_plugins()
ours = [p for p in plugins if p.name == "ml_batch_ui"]
print("PLUGIN-REPORT " + json.dumps({
    "loaded": [type(p).__name__ for p in ours], "errors": {k: str(v) for k, v in errors.items()},
    "apps": [{"url_prefix": a["url_prefix"], "app": type(a["app"]).__name__} for p in ours for a in p.fastapi_apps],
    "views": [v["url_route"] for p in ours for v in p.external_views],
    "heavy": sorted(m for m in HEAVY if m in sys.modules), "network": network,
}))
"""


def test_loading_the_plugins_folder_imports_no_web_app_and_opens_no_connection(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW_HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("ML_BATCH_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}"], env=env, capture_output=True,
                          text=True, timeout=300, check=False, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    assert done.returncode == 0 and lines, f"probe failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads(lines[-1].removeprefix(MARKER))
    assert report["errors"] == {} and report["loaded"] == ["MlBatchUiPlugin"], report
    assert report["apps"] == [{"url_prefix": "/ml-batch", "app": "LazyPagesApp"}] and report["views"] == ["ml-batch"]
    assert report["heavy"] == [], f"loading the plugin imported {report['heavy']}"
    assert report["network"] == []


def _airflow_uri(login: sa.Engine) -> str:
    return login.url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.integration
def test_the_pages_read_as_the_ui_connection_else_its_url_else_as_the_owner_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, settings: Settings, engine: sa.Engine,
        pg_url: str, airflow_db: None) -> None:
    from ml_batch.airflow import ui_auth

    monkeypatch.setenv("AIRFLOW_CONN_ML_BATCH_DB", sa.engine.make_url(settings.database_url or "")
                       .set(drivername="postgresql").render_as_string(hide_password=False))
    monkeypatch.setenv("ML_BATCH_SCHEMA", settings.schema)
    for name in ("ML_BATCH_UI_CONN_ID", "ML_BATCH_UI_DATABASE_URL", "AIRFLOW_CONN_ML_BATCH_UI"):
        monkeypatch.delenv(name, raising=False)
    ui_auth._warn_reading_as_owner.cache_clear()  # once per process: this test's process may have warned
    with analyst_helpers.login_role(engine, pg_url) as (first, first_login), \
            analyst_helpers.login_role(engine, pg_url) as (second, second_login):
        with caplog.at_level(logging.WARNING, logger=ui_auth.__name__):
            assert ui_auth.reader_engine() is ui_auth.server_engine()  # the owner's engine itself, not a second one
            ui_auth.reader_engine()
        [warning] = [r.getMessage() for r in caplog.records if r.name == ui_auth.__name__]
        assert "no Airflow connection 'ml_batch_ui' and no ML_BATCH_UI_DATABASE_URL: the ml-batch pages read as " \
               "the owner" in warning and "run `ml-batch db grant-ui ROLE`" in warning

        monkeypatch.setenv("ML_BATCH_UI_DATABASE_URL", first_login.url.render_as_string(hide_password=False))
        readers = [ui_auth.reader_engine()]
        monkeypatch.setenv("AIRFLOW_CONN_ML_BATCH_UI", _airflow_uri(second_login))  # the connection first
        readers.append(ui_auth.reader_engine())
        monkeypatch.setenv("ML_BATCH_UI_CONN_ID", "pages_reader")
        monkeypatch.setenv("AIRFLOW_CONN_PAGES_READER", _airflow_uri(first_login))
        readers.append(ui_auth.reader_engine())
        try:
            assert [r.url.username for r in readers] == [first, second, first]
            with readers[1].connect() as conn:
                assert conn.execute(sa.text("SELECT current_user")).scalar_one() == second
        finally:
            for reader in readers:
                reader.dispose()
