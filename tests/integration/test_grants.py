"""Issue 13 item 6: `ml-batch db grant-analyst ROLE` gives a read-only view without artifacts or raw rows.

The test logs in as a real role (created with LOGIN here) and tries what an analyst might: read predictions,
their `_latest` view and the runs (allowed); write, read artifact bytes, read quarantined `row_data`
(refused by PostgreSQL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.ops.grants import READABLE_TABLES, GrantError, grant_analyst, grant_ui
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration import analyst_helpers
from tests.integration.helpers import write_spec
from tests.support.toy import DAY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _grant_cli(settings: Settings, specs_dir: Path, role: str, command: str = "grant-analyst",
               as_json: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ML_BATCH_DATABASE_URL": settings.database_url or "", "ML_BATCH_SCHEMA": settings.schema,
           "ML_BATCH_HOME": str(settings.home), "ML_BATCH_SPECS_DIR": str(specs_dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ml_batch.cli", "db", command, role, *(["--json"] if as_json else [])],
                          env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO, check=False)


def _denied(analyst: sa.Engine, sql: str) -> str:
    with pytest.raises(sa.exc.ProgrammingError) as info, analyst.begin() as conn:
        conn.execute(sa.text(sql))
    return str(info.value.orig)


def test_analyst_reads_predictions_and_runs_but_cannot_write_or_read_artifacts_or_raw_rows(
        settings: Settings, engine: sa.Engine, pg_url: str, tmp_path: Path) -> None:
    model = analyst_helpers.credit_default(engine, settings)
    specs_dir = write_spec(model.spec, tmp_path / "specs")
    schema, table = settings.schema, model.spec.predictions.table
    with engine.begin() as conn:  # a quarantined row to (not) read, whatever the demo data held
        conn.execute(sa.text(f"INSERT INTO {schema}.quarantine (model_name, partition_date, run_id, shard, "
                             "entity_key, reasons, row_data) VALUES ('credit_default', :d, 'r', 0, '1', "
                             "'[\"age below 18\"]', '{\"age\": 12, \"income\": 99999}')"), {"d": model.days[0]})

    with analyst_helpers.login_role(engine, pg_url) as (role, analyst):
        # before the grant: nothing
        assert "permission denied" in _denied(analyst, f"SELECT count(*) FROM {table}")

        first = _grant_cli(settings, specs_dir, role)
        assert first.returncode == 0, first.stderr
        again = _grant_cli(settings, specs_dir, role)  # idempotent
        assert again.returncode == 0, again.stderr
        granted = json.loads(again.stdout)
        assert f"{table}_latest" in granted["tables"] and f"{schema}.runs" in granted["tables"]
        assert "row_data" not in granted["columns"][f"{schema}.quarantine"]
        assert "artifact" not in granted["columns"][f"{schema}.model_versions"]
        assert "holdout_sample" not in granted["columns"][f"{schema}.model_versions"]
        assert "n_excluded" in granted["columns"][f"{schema}.model_versions"]

        with analyst.connect() as conn:
            scored = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            latest = conn.execute(sa.text(f"SELECT count(*) FROM {table}_latest")).scalar_one()
            run_rows = conn.execute(sa.text(f"SELECT status FROM {schema}.runs")).scalars().all()
            reasons = conn.execute(sa.text(f"SELECT reasons FROM {schema}.quarantine WHERE run_id = 'r'")).scalar_one()
            versions = conn.execute(sa.text(
                f"SELECT version, artifact_sha256, metrics FROM {schema}.model_versions")).all()
            drift_days = conn.execute(sa.text(f"SELECT count(*) FROM {schema}.drift_days")).scalar_one()
            perf = conn.execute(sa.text(f"SELECT count(*) FROM {schema}.performance")).scalar_one()
            conn.execute(sa.text(f"SELECT count(*) FROM {schema}.alerts")).scalar_one()
        assert scored > 0 and latest == scored  # one event per key: every key once
        assert run_rows == ["success", "success"] and reasons == ["age below 18"]
        assert [v.version for v in versions] == [1] and drift_days == 2 and perf > 0

        assert "permission denied" in _denied(analyst, f"SELECT artifact FROM {schema}.model_versions")
        assert "permission denied" in _denied(analyst, f"SELECT holdout_sample FROM {schema}.model_versions")
        assert "permission denied" in _denied(analyst, f"SELECT * FROM {schema}.model_versions")
        assert "permission denied" in _denied(analyst, f"SELECT row_data FROM {schema}.quarantine")
        assert "permission denied" in _denied(analyst, f"SELECT * FROM {schema}.quarantine_published")
        assert "permission denied" in _denied(analyst, f"DELETE FROM {table}")
        assert "permission denied" in _denied(analyst, f"UPDATE {schema}.runs SET status = 'failed'")
        assert "permission denied" in _denied(analyst, f"INSERT INTO {schema}.alerts (kind, severity, message, "
                                                       "details) VALUES ('x', 'info', 'm', '{}')")
        assert "permission denied" in _denied(analyst, f"TRUNCATE {schema}.performance")
        assert "permission denied" in _denied(analyst, f"CREATE TABLE {schema}.mine (x int)")


def test_grant_to_a_missing_role_names_it(settings: Settings, engine: sa.Engine) -> None:
    with pytest.raises(GrantError, match=r"role 'no_such_analyst' does not exist: create it first"):
        grant_analyst(engine, settings.schema, [], "no_such_analyst")
    with pytest.raises(GrantError, match=r"role 'bad-name;' is not a valid role name"):
        grant_analyst(engine, settings.schema, [], "bad-name;")


def test_grant_ui_is_the_analyst_grants_plus_the_stored_reports(
        settings: Settings, engine: sa.Engine, pg_url: str, toy: Spec, tmp_path: Path) -> None:
    score_day(engine, toy, DAY, run_id="grant-ui")  # a predictions table and a stored GX result to read
    specs_dir = write_spec(toy, tmp_path / "specs")
    schema = settings.schema
    with analyst_helpers.login_role(engine, pg_url) as (role, ui):
        assert "permission denied" in _denied(ui, f"SELECT content FROM {schema}.reports")
        first = _grant_cli(settings, specs_dir, role, "grant-ui")
        assert first.returncode == 0, first.stderr
        again = _grant_cli(settings, specs_dir, role, "grant-ui")  # idempotent
        assert again.returncode == 0, again.stderr
        granted = json.loads(again.stdout)
        analyst = grant_analyst(engine, schema, [toy], role).as_dict()  # the same, without reports
        whole = len(READABLE_TABLES)
        assert granted == {**analyst, "tables": [*analyst["tables"][:whole], f"{schema}.reports",
                                                 *analyst["tables"][whole:]]}
        assert grant_ui(engine, schema, [toy], role).as_dict() == granted
        text = _grant_cli(settings, specs_dir, role, "grant-ui", as_json=False)
        assert text.returncode == 0, text.stderr
        assert f"{role}: USAGE on {schema}; SELECT on {len(granted['tables'])} tables and views and stored " \
               f"reports; column by column {schema}.model_versions, {schema}.quarantine" in text.stdout

        with ui.connect() as conn:
            stored = conn.execute(sa.text(f"SELECT count(*) FROM {schema}.reports WHERE run_id = 'grant-ui'"))
            assert stored.scalar_one() == 1
            conn.execute(sa.text(f"SELECT count(*) FROM {toy.predictions.table}")).scalar_one()
        assert "permission denied" in _denied(ui, f"SELECT row_data FROM {schema}.quarantine")
        assert "permission denied" in _denied(ui, f"SELECT artifact_hmac FROM {schema}.model_versions")
        assert "permission denied" in _denied(ui, f"SELECT holdout_sample FROM {schema}.model_versions")
        assert "permission denied" in _denied(ui, f"DELETE FROM {schema}.reports")
    with pytest.raises(GrantError, match=r"role 'no_such_ui' does not exist: .* then run grant-ui again"):
        grant_ui(engine, schema, [], "no_such_ui")
