from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import current_revision, head_revision, upgrade

pytestmark = pytest.mark.integration


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
