"""The scoring path (plan → shards → publish) against a real PostgreSQL, without Airflow."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.errors import ValidationFailed
from ml_batch.model import registry
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.run.names import shard_view
from ml_batch.run.plan import plan_run
from ml_batch.run.publish import publish_run
from ml_batch.run.runs import list_runs
from ml_batch.run.shard import score_shard
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, DAY, FIRST

pytestmark = pytest.mark.integration



def _day_rows(engine: sa.Engine, spec, day: dt.date) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            f"SELECT id, score, model_version, run_id FROM {spec.predictions.table} "
            "WHERE partition_date = :d ORDER BY id"), {"d": day}).all()


def _source_ids(engine: sa.Engine, spec, day: dt.date) -> list[int]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with engine.connect() as conn:
        return conn.execute(sa.text(
            f"SELECT id FROM {spec.source.table} WHERE event_time >= :s AND event_time < :e ORDER BY id"),
            {"s": start, "e": start + dt.timedelta(days=1)}).scalars().all()


def test_a_day_is_scored_end_to_end_and_tagged(engine: sa.Engine, toy, tmp_path) -> None:
    summary = score_day(engine, toy, DAY, run_id="r1", results_dir=tmp_path)
    rows = _day_rows(engine, toy, DAY)
    assert [r.id for r in rows] == _source_ids(engine, toy, DAY)
    assert summary.extracted == summary.scored == len(rows) == 80 and summary.quarantined == 0
    assert {r.model_version for r in rows} == {1} and {r.run_id for r in rows} == {"r1"}
    assert all(0 <= r.score <= 1 for r in rows)
    assert list(tmp_path.rglob("*.json")), "GX validation results are kept"
    run = list_runs(engine, "toy")[0]
    assert (run["status"], run["rows_extracted"], run["rows_scored"], run["model_version"]) == ("success", 80, 80, 1)


def test_shared_columns_are_stamped_once_and_read_back_on_every_row(engine: sa.Engine, toy) -> None:
    summary = score_day(engine, toy, DAY, run_id="it's run 1")  # a quote in the run id: a value, not SQL
    info = registry.get_version(engine, "toy", summary.version)
    with engine.connect() as conn:
        shared = conn.execute(sa.text(
            f"SELECT DISTINCT partition_date, model_name, model_version, artifact_sha256, run_id, scored_at "
            f"FROM {toy.predictions.table} WHERE partition_date = :d"), {"d": DAY}).all()
        defaults = conn.execute(sa.text(
            "SELECT count(*) FROM pg_attrdef WHERE adrelid = to_regclass(:p)"),
            {"p": toy.predictions.table + "_p" + DAY.strftime("%Y%m%d")}).scalar_one()
    assert len(shared) == 1
    day, model, version, sha, run_id, scored_at = shared[0]
    assert (day, model, version, sha, run_id) == (DAY, "toy", 1, info.artifact_sha256, "it's run 1")
    assert scored_at.tzinfo is not None
    assert defaults == 0, "the partition keeps the values but no defaults (like its parent)"


def test_rerunning_a_day_three_times_leaves_one_copy(engine: sa.Engine, toy) -> None:
    for attempt in range(3):
        score_day(engine, toy, DAY, run_id=f"rerun-{attempt}")
    rows = _day_rows(engine, toy, DAY)
    assert len(rows) == 80 and len({r.id for r in rows}) == 80
    assert {r.run_id for r in rows} == {"rerun-2"} and {r.model_version for r in rows} == {1}
    with engine.connect() as conn:
        partitions = conn.execute(sa.text(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(:t)"), {"t": toy.predictions.table}
        ).scalar_one()
    assert partitions == 1


def test_only_the_days_rows_are_scored(engine: sa.Engine, toy) -> None:
    score_day(engine, toy, DAY, run_id="a")
    score_day(engine, toy, DAY + dt.timedelta(days=1), run_id="b")
    assert [r.id for r in _day_rows(engine, toy, DAY)] == _source_ids(engine, toy, DAY)
    assert [r.id for r in _day_rows(engine, toy, DAY + dt.timedelta(days=1))] == _source_ids(
        engine, toy, DAY + dt.timedelta(days=1))


def test_a_promotion_between_runs_changes_only_the_later_day(engine: sa.Engine, toy) -> None:
    score_day(engine, toy, DAY, run_id="d1")
    v2 = train_and_register(engine, toy, AS_OF, actor="t").version.version
    registry.promote(engine, "toy", v2, actor="t", reason="test")
    score_day(engine, toy, DAY + dt.timedelta(days=1), run_id="d2")
    assert {r.model_version for r in _day_rows(engine, toy, DAY)} == {1}
    assert {r.model_version for r in _day_rows(engine, toy, DAY + dt.timedelta(days=1))} == {2}


def test_pinned_version_survives_a_promotion_during_the_run(engine: sa.Engine, toy) -> None:
    plan = plan_run(engine, toy, DAY, run_id="pinned")
    v2 = train_and_register(engine, toy, AS_OF, actor="t").version.version
    registry.promote(engine, "toy", v2, actor="t", reason="mid-run")
    score_shard(engine, plan, 0)
    publish_run(engine, plan)
    assert {r.model_version for r in _day_rows(engine, toy, DAY)} == {1}


def test_quarantined_rows_carry_reasons_and_counts_add_up(settings: Settings, engine: sa.Engine, toy) -> None:
    ids = _source_ids(engine, toy, DAY)[:3]
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id = ANY(:ids)"), {"ids": ids})
    spec = toy.model_copy(update={"validation": toy.validation.model_copy(update={"max_quarantine_share": 0.1})})
    summary = score_day(engine, spec, DAY, run_id="q")
    assert (summary.extracted, summary.scored, summary.quarantined) == (80, 77, 3)
    assert not {r.id for r in _day_rows(engine, toy, DAY)} & set(ids)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT entity_key, reasons, row_data FROM "{settings.schema}".quarantine WHERE model_name = \'toy\' '
            "ORDER BY entity_key::bigint")).all()
    assert [int(r.entity_key) for r in rows] == ids
    assert all(r.row_data["color"] == "green" for r in rows)
    assert all(any("color" in reason and "green" in reason for reason in r.reasons) for r in rows)


def test_a_column_failing_on_too_many_rows_fails_before_scoring(engine: sa.Engine, toy) -> None:
    ids = _source_ids(engine, toy, DAY)[:10]
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id = ANY(:ids)"), {"ids": ids})
    expected = (r"color: expect_column_values_to_be_in_set \(allowed: 'red', 'blue'\): 10 of 80 rows failed "
                r"\(12\.5%\), above validation\.max_quarantine_share 5\.0%; e\.g\. 'green'$")
    with pytest.raises(ValidationFailed, match=expected):
        score_day(engine, toy, DAY, run_id="too-many")
    assert _day_rows(engine, toy, DAY) == []
    assert list_runs(engine, "toy")[0]["status"] == "failed"


def test_too_many_quarantined_rows_in_all_fail_at_publish_and_publish_nothing(engine: sa.Engine, toy) -> None:
    ids = _source_ids(engine, toy, DAY)
    bounded = toy.model_copy(update={"features": [
        f.model_copy(update={"max": 5.0}) if f.name == "x1" else f for f in toy.features
    ]})
    with engine.begin() as conn:  # 3 + 3 rows: each column under the 5% share, the day (7.5%) above it
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id = ANY(:ids)"), {"ids": ids[:3]})
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET x1 = 99 WHERE id = ANY(:ids)"), {"ids": ids[3:6]})
    with pytest.raises(ValidationFailed, match=r"6 of 80 rows quarantined \(7\.5%\), above "
                                               r"validation\.max_quarantine_share 5\.0%"):
        score_day(engine, bounded, DAY, run_id="too-many")
    assert _day_rows(engine, toy, DAY) == []
    assert list_runs(engine, "toy")[0]["status"] == "failed"


def test_a_batch_level_failure_fails_with_a_clear_message_and_publishes_nothing(engine: sa.Engine, toy) -> None:
    score_day(engine, toy, DAY, run_id="good")
    strict = toy.model_copy(update={"validation": toy.validation.model_copy(update={"min_rows": 1000})})
    with pytest.raises(ValidationFailed, match=r"80 rows extracted, expected between 1000 and no upper bound"):
        score_day(engine, strict, DAY, run_id="bad")
    # The earlier good copy of the day is untouched.
    assert {r.run_id for r in _day_rows(engine, toy, DAY)} == {"good"}
    failed = next(r for r in list_runs(engine, "toy") if r["run_id"] == "bad")
    assert failed["status"] == "failed" and "expected between 1000" in failed["error"]


def test_dry_run_publishes_nothing(settings: Settings, engine: sa.Engine, toy) -> None:
    summary = score_day(engine, toy, DAY, run_id="dry", dry_run=True)
    assert summary.status == "dry_run" and summary.scored == 80
    assert _day_rows(engine, toy, DAY) == []
    with engine.connect() as conn:
        leftovers = conn.execute(sa.text(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'toy_predictions__s_%'")).scalar_one()
    assert leftovers == 0


def test_no_validation_view_outlives_its_run(engine: sa.Engine, toy) -> None:
    plan = plan_run(engine, toy, DAY, run_id="views", shards=2)
    score_shard(engine, plan, 0)
    with engine.begin() as conn:  # as if shard 1 had been killed while GX ran
        conn.execute(sa.text(f"CREATE VIEW {shard_view(toy, 'views', 1)} AS SELECT 1 AS x"))
    with pytest.raises(ValidationFailed, match="1 of 2 shards finished"):
        publish_run(engine, plan)
    with engine.connect() as conn:
        views = conn.execute(sa.text(
            "SELECT count(*) FROM pg_views WHERE viewname LIKE 'ml_batch_validate_%'")).scalar_one()
    assert views == 0


def test_many_chunks_on_many_threads_give_the_single_chunk_result(settings: Settings, engine: sa.Engine,
                                                                  toy) -> None:
    ids = _source_ids(engine, toy, DAY)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id = ANY(:ids)"),
                     {"ids": [ids[5], ids[40], ids[77]]})
    whole = score_day(engine, toy, DAY, run_id="whole")
    expected = _day_rows(engine, toy, DAY)
    plan = plan_run(engine, toy, DAY, run_id="chunked")
    result = score_shard(engine, plan, 0, batch_bytes=512, threads=3)  # ~10 rows per chunk
    summary = publish_run(engine, plan)
    assert (result.extracted, result.scored, result.quarantined) == (80, 77, 3)
    assert (summary.scored, summary.quarantined) == (whole.scored, whole.quarantined) == (77, 3)
    assert [(r.id, r.score) for r in _day_rows(engine, toy, DAY)] == [(r.id, r.score) for r in expected]
    with engine.connect() as conn:
        keys = conn.execute(sa.text(
            f'SELECT entity_key FROM "{settings.schema}".quarantine WHERE run_id = \'chunked\' ORDER BY 1::text'
        )).scalars().all()
    assert sorted(keys) == sorted(str(i) for i in (ids[5], ids[40], ids[77]))


def test_the_quarantine_share_is_the_days_not_the_shards(engine: sa.Engine, toy) -> None:
    ids = _source_ids(engine, toy, DAY)
    with engine.begin() as conn:  # 3 of the day's 80 rows (3.75% < 5%), all in shard 0 of 2 (~7.5% of its rows)
        in_shard_0 = conn.execute(sa.text(
            "SELECT id FROM unnest(CAST(:ids AS bigint[])) AS id "
            "WHERE mod(hashtext(CAST(id AS text)) & 2147483647, 2) = 0 ORDER BY id LIMIT 3"), {"ids": ids}
        ).scalars().all()
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id = ANY(:ids)"),
                     {"ids": in_shard_0})
    sharded = score_day(engine, toy, DAY, run_id="two", shards=2)
    single = score_day(engine, toy, DAY, run_id="one", shards=1)
    assert (sharded.quarantined, sharded.scored) == (single.quarantined, single.scored) == (3, 77)


def test_sharded_run_publishes_exactly_the_unsharded_rows(engine: sa.Engine, toy) -> None:
    score_day(engine, toy, DAY, run_id="one")
    single = [(r.id, r.score) for r in _day_rows(engine, toy, DAY)]
    score_day(engine, toy, DAY, run_id="three", shards=3)
    sharded = [(r.id, r.score) for r in _day_rows(engine, toy, DAY)]
    assert [i for i, _ in sharded] == [i for i, _ in single]
    assert [s for _, s in sharded] == pytest.approx([s for _, s in single])


def test_a_retried_shard_does_not_duplicate_rows(engine: sa.Engine, toy) -> None:
    plan = plan_run(engine, toy, DAY, run_id="retry", shards=2)
    for shard in (0, 1, 1, 0):
        score_shard(engine, plan, shard)
    summary = publish_run(engine, plan)
    assert summary.scored == 80 and len(_day_rows(engine, toy, DAY)) == 80


def test_publishing_before_all_shards_finish_is_refused(engine: sa.Engine, toy) -> None:
    plan = plan_run(engine, toy, DAY, run_id="partial", shards=2)
    score_shard(engine, plan, 0)
    with pytest.raises(ValidationFailed, match="1 of 2 shards finished; refusing to publish a partial day"):
        publish_run(engine, plan)
    assert _day_rows(engine, toy, DAY) == []


def test_backfill_can_use_the_version_that_was_champion_on_the_day(engine: sa.Engine, toy) -> None:
    v2 = train_and_register(engine, toy, AS_OF, actor="t").version.version
    registry.promote(engine, "toy", v2, actor="t", reason="today")
    # Version 1 was promoted "today" too, so move its audit event into the past to make it that day's champion.
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"UPDATE {toy.predictions.table.split('.')[0]}.model_events SET created_at = :t "
            "WHERE model_name = 'toy' AND event = 'promoted' AND to_version = 1"),
            {"t": dt.datetime.combine(DAY, dt.time(8), tzinfo=dt.UTC)})
    score_day(engine, toy, DAY, run_id="then", version_policy="champion_on_day")
    assert {r.model_version for r in _day_rows(engine, toy, DAY)} == {1}
    score_day(engine, toy, DAY, run_id="now")
    assert {r.model_version for r in _day_rows(engine, toy, DAY)} == {2}


def test_shards_are_derived_from_the_days_row_count(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema)
    spec = spec.model_copy(update={"scoring": spec.scoring.model_copy(update={"rows_per_shard": 1000,
                                                                              "max_shards": 2})})
    load_toy_data(engine, settings.schema, FIRST, days=22, rows_per_day=1500)
    train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    plan = plan_run(engine, spec, DAY, run_id="auto")
    assert plan.shards == 2  # ceil(1500 / 1000)
    capped = spec.model_copy(update={"scoring": spec.scoring.model_copy(update={"rows_per_shard": 1000,
                                                                                "max_shards": 1})})
    assert plan_run(engine, capped, DAY, run_id="capped").shards == 1
    fixed = spec.model_copy(update={"scoring": spec.scoring.model_copy(update={"shards": 5})})
    assert plan_run(engine, fixed, DAY, run_id="fixed").shards == 5


def test_an_unreadable_source_fails_the_run_with_its_name(settings: Settings, engine: sa.Engine, toy) -> None:
    from ml_batch.errors import SpecError

    def break_source() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {toy.source.table} RENAME COLUMN x2 TO x2_old"))

    # The plan checks the spec against the database first: one line naming the field and the column, before
    # anything is read or staged.
    break_source()
    with pytest.raises(SpecError,
                       match=r"model 'toy': features\[1\]\.name: column 'x2' is not in source t_\w+\.toy_rows"):
        score_day(engine, toy, DAY, run_id="broken-plan")
    assert list_runs(engine, "toy") == []
    # A source that breaks after the plan does not touch the run: its shards read the day's snapshot.
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {toy.source.table} RENAME COLUMN x2_old TO x2"))
    plan = plan_run(engine, toy, DAY, run_id="planned")
    break_source()
    score_shard(engine, plan, 0)
    assert publish_run(engine, plan).scored == len(_day_rows(engine, toy, DAY)) == 80


@pytest.mark.parametrize("sql_type", ["bigint", "integer", "text", "numeric(12, 2)", "numeric", "uuid", "date"])
def test_keys_print_the_same_through_psycopg2_and_adbc(engine: sa.Engine, sql_type: str) -> None:
    """GX reports failing keys through psycopg2, the extract reads them through ADBC: their text must agree."""
    from ml_batch.db import arrow
    from ml_batch.run.keys import key_text, key_texts

    values = {
        "bigint": ["1", "9007199254740993", "-5"], "integer": ["7", "-2147483648", "0"],
        "text": ["a'b", "ÄÖ x", ""], "numeric(12, 2)": ["1.50", "-0.10", "1234567890.00"],
        "numeric": ["1.5", "0.000001", "-12345678901234567890"],
        "uuid": ["6f1f0b9e-0000-4000-8000-000000000001", "00000000-0000-0000-0000-000000000000",
                 "ffffffff-ffff-ffff-ffff-ffffffffffff"],
        "date": ["2026-03-02", "1999-12-31", "2000-02-29"],
    }[sql_type]
    rows = " UNION ALL ".join(f"SELECT CAST('{v.replace(chr(39), chr(39) * 2)}' AS {sql_type}) AS k" for v in values)
    with engine.connect() as conn:
        through_psycopg2 = [key_text(v) for v in conn.exec_driver_sql(rows).scalars().all()]
        printed = conn.exec_driver_sql(f"SELECT CAST(k AS text) FROM ({rows}) AS t").scalars().all()
    with arrow.connect(engine.url.render_as_string(hide_password=False)) as conn:
        column = pa.Table.from_batches(list(arrow.stream(conn, rows))).column("k")
    assert key_texts(column) == through_psycopg2 == printed


def test_mixed_case_schema_and_table_names_work_end_to_end(settings: Settings, engine: sa.Engine, toy) -> None:
    """Identifiers are quoted everywhere, GX's view and search_path included."""
    spec = toy.model_copy(update={"predictions": toy.predictions.model_copy(
        update={"table": f"Preds_{settings.schema}.TOY_Predictions"})})
    ids = _source_ids(engine, toy, DAY)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id = :i"), {"i": ids[0]})
    try:
        summary = score_day(engine, spec, DAY, run_id="mixed", shards=2)
        assert (summary.scored, summary.quarantined) == (79, 1)
        with engine.connect() as conn:
            published = conn.execute(sa.text(
                f'SELECT count(*) FROM "Preds_{settings.schema}"."TOY_Predictions" WHERE partition_date = :d'),
                {"d": DAY}).scalar_one()
        assert published == 79
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "Preds_{settings.schema}" CASCADE'))


def test_a_relative_extra_suite_is_read_next_to_the_pinned_spec_file(engine: sa.Engine, toy, tmp_path) -> None:
    """`validation.suite` relative to the spec's own folder: the plan pins the spec file, and the shard
    resolves the suite against that file's folder, wherever the process runs."""
    import json

    import yaml

    from ml_batch.spec_folder import read_spec

    folder = tmp_path / "specs"
    folder.mkdir()
    data = toy.model_dump(mode="json", exclude_none=True)
    data["validation"] = {**data.get("validation", {}), "suite": "extra.json", "max_quarantine_share": 0.9}
    (folder / "toy.yaml").write_text(yaml.safe_dump(data))
    (folder / "extra.json").write_text(json.dumps({"name": "extra", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x1", "min_value": -1, "max_value": 1}}]}))
    summary = score_day(engine, read_spec(folder, "toy"), DAY, run_id="extra-suite")
    schema = toy.source.table.rpartition(".")[0]
    with engine.connect() as conn:
        reasons = conn.execute(sa.text(f"SELECT DISTINCT r FROM {schema}.quarantine, "
                                       "jsonb_array_elements_text(reasons) AS r WHERE run_id = 'extra-suite'")
                               ).scalars().all()
    assert summary.quarantined > 0 and reasons, "the extra suite's range check quarantined the rows outside -1..1"
    assert all(reason.startswith("x1: expect_column_values_to_be_between (min -1, max 1)") for reason in reasons)


def test_a_multiclass_day_stages_the_same_rows_in_any_chunks_threads_and_shards(settings: Settings,
                                                                                engine: sa.Engine) -> None:
    from tests.support.toy import trained_toy

    # the toy's integer labels 0/1 are the classes "0" and "1" of a multiclass model (class names are text)
    spec = trained_toy(engine, settings.schema, model={
        "task": "multiclass", "estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
        training={"window_days": 10, "holdout_days": 3, "metric": "log_loss", "min_score": 2.0})
    assert registry.get_version(engine, "toy", 1).classes == ["0", "1"]

    def published() -> list[tuple]:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                f"SELECT id, score, predicted_label, class_scores FROM {spec.predictions.table} "
                "WHERE partition_date = :d ORDER BY id"), {"d": DAY}).all()

    whole = score_day(engine, spec, DAY, run_id="whole")
    expected = published()
    assert len(expected) == whole.scored == 80
    assert all(set(r.class_scores) == {"0", "1"} and r.score == r.class_scores[r.predicted_label]
               == max(r.class_scores.values()) for r in expected)
    assert whole.score_mean == pytest.approx(sum(r.score for r in expected) / 80)
    plan = plan_run(engine, spec, DAY, run_id="chunked", shards=2)
    for shard in (0, 1):
        score_shard(engine, plan, shard, batch_bytes=512, threads=3)  # ~10 rows per chunk
    chunked = publish_run(engine, plan)
    assert published() == expected
    assert chunked.score_mean == pytest.approx(whole.score_mean)
