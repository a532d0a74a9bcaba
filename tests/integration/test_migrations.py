from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db import migrate
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import current_revision, head_revision, upgrade

pytestmark = pytest.mark.integration


def _downgrade(engine: sa.Engine, schema: str, revision: str) -> None:
    """alembic's downgrade on `schema`, configured as `migrate.upgrade` configures its upgrade (ml-batch itself
    never downgrades, so this lives with the tests)."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(migrate._config(conn, schema), revision)


def _insert_run(engine: sa.Engine, schema: str, run_id: str, run_type: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'INSERT INTO "{schema}".runs (model_name, run_id, partition_date, run_type, dry_run, status, '
            "model_version, artifact_sha256, shards) VALUES ('m', :r, '2026-01-01', :t, false, 'running', 1, "
            "repeat('a', 64), 1)"
        ), {"r": run_id, "t": run_type})


def test_upgrade_is_idempotent_and_reaches_head(settings: Settings, engine: sa.Engine) -> None:
    assert current_revision(engine, settings.schema) == head_revision()
    assert upgrade(engine, settings.schema) == head_revision()
    tables = set(sa.inspect(engine).get_table_names(schema=settings.schema))
    assert {"model_versions", "model_aliases", "model_events", "alembic_version"} <= tables


def test_concurrent_upgrades_of_a_new_schema_both_succeed(settings: Settings) -> None:
    fresh = Settings(home=settings.home, specs_dir=settings.specs_dir, schema=settings.schema + "_c",
                     database_url=settings.database_url)
    engine = make_engine(fresh)
    errors: list[Exception] = []

    def run() -> None:
        try:
            upgrade(engine, fresh.schema)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert current_revision(engine, fresh.schema) == head_revision()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{fresh.schema}" CASCADE'))


def test_alias_primary_key_allows_one_version_per_alias(settings: Settings, engine: sa.Engine) -> None:
    s = settings.schema
    with engine.begin() as conn:
        for version in (1, 2):
            conn.execute(sa.text(
                f'INSERT INTO "{s}".model_versions (model_name, version, artifact, artifact_sha256, artifact_size, '
                "feature_schema, task, estimator, code_version, spec_sha256, source, created_by) VALUES "
                "('m', :v, '\\x00', repeat('a', 64), 1, '[]', 'binary', 'x.Y', 't', repeat('b', 64), 'trained', 't')"
            ), {"v": version})
        conn.execute(sa.text(
            f"INSERT INTO \"{s}\".model_aliases (model_name, alias, version, set_by) VALUES ('m', 'champion', 1, 't')"
        ))
    with pytest.raises(sa.exc.IntegrityError, match="model_aliases_pkey"), engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO \"{s}\".model_aliases (model_name, alias, version, set_by) VALUES ('m', 'champion', 2, 't')"
        ))
    with pytest.raises(sa.exc.IntegrityError, match="model_aliases_version_fkey"), engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO \"{s}\".model_aliases (model_name, alias, version, set_by) "
            "VALUES ('m', 'challenger', 9, 't')"
        ))


def test_downgrade_to_base_and_upgrade_again_reaches_head(settings: Settings, engine: sa.Engine) -> None:
    _downgrade(engine, settings.schema, "base")
    assert current_revision(engine, settings.schema) is None
    assert set(sa.inspect(engine).get_table_names(schema=settings.schema)) == {"alembic_version"}
    assert sa.inspect(engine).get_view_names(schema=settings.schema) == []
    assert upgrade(engine, settings.schema) == head_revision()
    assert "runs_run_type_known" in {
        c["name"] for c in sa.inspect(engine).get_check_constraints("runs", schema=settings.schema)
    }


def test_run_type_check_comes_and_goes_with_revision_0010(settings: Settings, engine: sa.Engine) -> None:
    s = settings.schema
    _downgrade(engine, s, "0009")
    assert "runs_run_type_known" not in {c["name"] for c in sa.inspect(engine).get_check_constraints("runs", schema=s)}
    _insert_run(engine, s, "r1", "nightly")  # accepted without the constraint
    with pytest.raises(RuntimeError, match=r"run types \['nightly'\]: expected one of \['scheduled', 'manual'"):
        upgrade(engine, s)
    assert current_revision(engine, s) == "0009"  # the failed upgrade changed nothing
    with engine.begin() as conn:
        conn.execute(sa.text(f'DELETE FROM "{s}".runs'))
    assert upgrade(engine, s) == head_revision()
    with pytest.raises(sa.exc.IntegrityError, match="runs_run_type_known"):
        _insert_run(engine, s, "r2", "nightly")


def test_revision_0012_migrates_existing_alerts_as_resolved_or_events(settings: Settings, engine: sa.Engine) -> None:
    s = settings.schema
    _downgrade(engine, s, "0011")
    with engine.begin() as conn:
        for kind, day in (("dataset_drift", "2026-03-01"), ("dataset_drift", "2026-03-02"), ("rollback", None)):
            conn.execute(sa.text(f'INSERT INTO "{s}".alerts (model_name, kind, severity, partition_date, message) '
                                 "VALUES ('m', :k, 'warning', :d, 'old')"), {"k": kind, "d": day})
    assert upgrade(engine, s) == head_revision()
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT kind, state, first_day::text, occurrences, updated_at = created_at, resolved_at FROM "{s}".alerts '
            "ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("dataset_drift", "resolved", "2026-03-01", 1, True, None),
                                        ("dataset_drift", "resolved", "2026-03-02", 1, True, None),
                                        ("rollback", "event", None, 1, True, None)]


def test_revision_0012_allows_one_open_alert_per_identity_and_downgrades(settings: Settings,
                                                                         engine: sa.Engine) -> None:
    s = settings.schema

    def insert(kind: str, subject: str | None, state: str = "open") -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f'INSERT INTO "{s}".alerts (model_name, kind, severity, message, subject, state) '
                                 "VALUES ('m', :k, 'warning', 'x', :s, :st)"), {"k": kind, "s": subject, "st": state})

    insert("out_of_support", "temp")
    insert("out_of_support", "rain")
    insert("out_of_support", None)
    insert("out_of_support", "temp", state="resolved")
    with pytest.raises(sa.exc.IntegrityError, match="alerts_one_open"):
        insert("out_of_support", "temp")
    with pytest.raises(sa.exc.IntegrityError, match="alerts_one_open"):
        insert("out_of_support", None)
    with pytest.raises(sa.exc.IntegrityError, match="alerts_state_known"):
        insert("rollback", None, state="sent")
    _downgrade(engine, s, "0011")
    with engine.connect() as conn:
        assert conn.execute(sa.text(f'SELECT count(*) FROM "{s}".alerts')).scalar_one() == 0  # out_of_support only
    columns = {c["name"] for c in sa.inspect(engine).get_columns("alerts", schema=s)}
    assert not columns & {"subject", "state", "first_day", "occurrences", "updated_at", "resolved_at", "resolved_day"}
    assert upgrade(engine, s) == head_revision()


def test_revisions_0015_and_0016_grant_their_new_columns_to_the_column_granted_roles(
        settings: Settings, engine: sa.Engine, pg_url: str) -> None:
    """An analyst granted before the upgrade reads the new registry columns after it (the registry page selects
    them), but never the compiled library nor its signature."""
    from ml_batch.ops.grants import grant_analyst
    from tests.integration import analyst_helpers

    s = settings.schema
    _downgrade(engine, s, "0014")
    with analyst_helpers.login_role(engine, pg_url) as (role, analyst):
        grant_analyst(engine, s, [], role)
        assert upgrade(engine, s) == head_revision()
        with analyst.connect() as conn:
            conn.execute(sa.text(f'SELECT model_name, classes, class_counts, compiled FROM "{s}".model_versions'))
        for hidden in ("compiled_library", "compiled_hmac", "artifact"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), analyst.connect() as conn:
                conn.execute(sa.text(f'SELECT {hidden} FROM "{s}".model_versions'))
