"""Loading the plugin, as every Airflow process does (task processes included), stays light and opens nothing.

A fresh interpreter loads `plugins/` through the task SDK's plugin manager (what a task process runs before a
task) with an audit hook on network events, then reports which of the pages' heavy modules got imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
