"""`ml_batch.db.spec_check` against the real server: each mistake a spec can make about its database is one
line naming the file, the field and the column, and a spec that fits has none."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.spec_check import check_spec_db, require_spec_db
from ml_batch.errors import SpecError
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec

pytestmark = pytest.mark.integration

ORIGIN = Path("specs/toy.yaml")


@pytest.fixture()
def base(settings: Settings, engine: sa.Engine) -> dict[str, Any]:
    """The toy source and labels loaded, plus a text-keyed copy of the labels, two all-NULL source columns
    (x3, day_only) and a text column of the labels (note); the toy spec as a dict to vary."""
    s = settings.schema
    load_toy_data(engine, s, dt.date(2026, 5, 1), days=3, rows_per_day=10)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{s}".toy_labels_text AS '
                             f'SELECT id::text AS id, y, known_at FROM "{s}".toy_labels'))
        conn.execute(sa.text(f'ALTER TABLE "{s}".toy_rows ADD COLUMN x3 double precision, ADD COLUMN day_only date'))
        conn.execute(sa.text(f'ALTER TABLE "{s}".toy_labels ADD COLUMN note text'))
    return toy_spec(s).model_dump(mode="json", exclude_none=True)


def _check(engine: sa.Engine, data: dict[str, Any], **options: Any) -> list[str]:
    return [str(p) for p in check_spec_db(engine, Spec.model_validate(data), origin=ORIGIN, **options)]


def test_a_spec_that_fits_its_database_has_no_problem(engine: sa.Engine, base: dict[str, Any],
                                                      settings: Settings) -> None:
    assert _check(engine, base) == []
    as_query = {**base, "source": {**base["source"], "table": None,
                                   "query": f"SELECT id, event_time, x1, x2, color FROM {settings.schema}.toy_rows"}}
    as_query["source"].pop("table")
    assert _check(engine, as_query) == []


def test_a_feature_typo_names_the_field_the_column_and_the_closest_match(engine: sa.Engine, base: dict[str, Any],
                                                                         settings: Settings) -> None:
    base["features"][1] = {"name": "x22", "type": "numeric"}
    assert _check(engine, base) == [
        f"specs/toy.yaml: features[1].name: column 'x22' is not in source {settings.schema}.toy_rows; did you "
        "mean 'x2'? (it has: id, event_time, x1, x2, color, x3, day_only)"
    ]


def test_a_label_key_of_another_type_family_is_named_with_both_types(engine: sa.Engine, base: dict[str, Any],
                                                                    settings: Settings) -> None:
    base["labels"]["table"] = f"{settings.schema}.toy_labels_text"
    assert _check(engine, base) == [
        "specs/toy.yaml: labels.key: column 'id' is text but source key 'id' is bigint: they cannot be compared; "
        "cast it in labels.query (in place of labels.table), e.g. `SELECT ..., id::bigint AS id`, or cast the "
        "source key in source.query"
    ]


def test_a_numeric_feature_on_a_text_column_says_cast_it(engine: sa.Engine, base: dict[str, Any]) -> None:
    base["features"][2] = {"name": "color", "type": "numeric"}
    assert _check(engine, base) == [
        "specs/toy.yaml: features[2].type: column 'color' is text, but the feature is numeric (expected a number "
        "or boolean column); cast it in source.query (in place of source.table), e.g. "
        "`SELECT ..., color::double precision AS color`, or declare the feature categorical"
    ]


def test_a_missing_label_table_names_the_closest_table(engine: sa.Engine, base: dict[str, Any],
                                                       settings: Settings) -> None:
    base["labels"]["table"] = f"{settings.schema}.toy_label"
    assert _check(engine, base) == [
        f"specs/toy.yaml: labels.table: table '{settings.schema}.toy_label' does not exist (did you mean "
        f"'{settings.schema}.toy_labels'?); create it, or point labels.table at an existing table"
    ]


def test_an_all_null_feature_is_found_by_the_scan_only(engine: sa.Engine, base: dict[str, Any],
                                                       settings: Settings) -> None:
    base["features"].append({"name": "x3", "type": "numeric"})
    expected = (f"specs/toy.yaml: features[3].name: column 'x3' holds only NULLs in source "
                f"{settings.schema}.toy_rows: nothing to learn from; load its values, or remove the feature")
    assert _check(engine, base) == [expected]
    assert _check(engine, base, scan_nulls=False) == []  # what a run's start checks: no data scan
    with engine.begin() as conn:
        conn.execute(sa.text(f'UPDATE "{settings.schema}".toy_rows SET x3 = 1 WHERE id = 7'))
    assert _check(engine, base) == []


def test_date_columns_must_be_dates_or_timestamps(engine: sa.Engine, base: dict[str, Any]) -> None:
    base["source"]["date_column"] = "x3"
    base["labels"]["known_at_column"] = "note"
    assert _check(engine, base) == [
        "specs/toy.yaml: source.date_column: column 'x3' is double precision: expected a date or timestamp; "
        "cast it in source.query (in place of source.table), e.g. `SELECT ..., x3::timestamptz AS x3`",
        "specs/toy.yaml: labels.known_at_column: column 'note' is text: expected a date or timestamp; "
        "cast it in labels.query (in place of labels.table), e.g. `SELECT ..., note::timestamptz AS note`",
    ]
    base["source"]["date_column"] = "day_only"  # a date is a day: fine
    base["labels"]["known_at_column"] = "known_at"
    assert _check(engine, base) == []


def test_a_query_that_fails_is_one_line_with_postgresqls_words(engine: sa.Engine, base: dict[str, Any],
                                                               settings: Settings) -> None:
    base["source"] = {"query": f"SELECT id, event_time, x1, x2, colour AS color FROM {settings.schema}.toy_rows",
                      "key": "id", "date_column": "event_time"}
    (line,) = _check(engine, base)
    assert line.startswith('specs/toy.yaml: source.query: cannot be read: column "colour" does not exist')
    base["source"]["query"] = f"SELECT id, event_time, x1, color FROM {settings.schema}.toy_rows"
    assert _check(engine, base) == [
        "specs/toy.yaml: features[1].name: column 'x2' is not in source.query (it has: id, "
        "event_time, x1, color); add it to source.query's SELECT list"
    ]


def test_require_raises_every_problem_one_per_line_in_field_order(engine: sa.Engine, base: dict[str, Any],
                                                                  settings: Settings) -> None:
    base["labels"]["table"] = f"{settings.schema}.toy_labels_text"
    base["features"][1] = {"name": "x22", "type": "numeric"}
    base["features"].append({"name": "x3", "type": "numeric"})  # all NULL: not a structural problem
    spec = Spec.model_validate(base)
    with pytest.raises(SpecError) as raised:
        require_spec_db(engine, spec, origin=ORIGIN)
    lines = str(raised.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["features[1].name", "labels.key"]
    with pytest.raises(SpecError, match=r"^model 'toy': features\[1\]\.name: column 'x22'") as raised:
        require_spec_db(engine, spec, labels=False)  # what a scoring run checks: the source only
    assert len(str(raised.value).splitlines()) == 1



def test_a_source_in_a_missing_schema_is_a_missing_table(engine: sa.Engine, base: dict[str, Any]) -> None:
    base["source"]["table"] = "no_such_schema.toy_rows"
    assert _check(engine, base) == [
        "specs/toy.yaml: source.table: table 'no_such_schema.toy_rows' does not exist; create it, or point "
        "source.table at an existing table"
    ]


def test_check_names_a_column_changed_since_the_champion_was_trained_once(engine: sa.Engine, toy: Spec,
                                                                          settings: Settings) -> None:
    # x2 turned boolean still fits a numeric feature, but the champion learnt it as numbers; what
    # `ml-batch specs check --db` runs names it, training's check does not (retraining is the fix).
    table = f'"{settings.schema}".toy_rows'
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN x2 TYPE boolean USING (x2 > 0)"))
    changed = (f"specs/toy.yaml: features[1].name: column 'x2' (a feature) is boolean in source "
               f"{settings.schema}.toy_rows, but 'toy' version 1 was trained on it as double precision: the column "
               "changed type from double precision to boolean; cast it back in source.query (in place of "
               "source.table), e.g. `SELECT ..., x2::double precision AS x2`, or retrain on the new type")
    assert [str(p) for p in check_spec_db(engine, toy, origin=ORIGIN)] == [changed]
    require_spec_db(engine, toy, origin=ORIGIN)
    assert check_spec_db(engine, toy, origin=ORIGIN, against=None) == []

    # a column another check names already (x1 turned text: not a number) is not named a second time
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN x1 TYPE text"))
    lines = [str(p) for p in check_spec_db(engine, toy, origin=ORIGIN)]
    assert [line.split(": ")[1] for line in lines] == ["features[0].type", "features[1].name"]
    assert lines[1] == changed


def test_a_multiclass_label_is_text_or_an_integer_never_a_float(engine: sa.Engine, base: dict[str, Any],
                                                                settings: Settings) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{settings.schema}".toy_labels ADD COLUMN share double precision'))
    base["model"]["task"] = "multiclass"
    base["training"].pop("metric", None)
    assert _check(engine, base) == []  # y: an integer column
    base["labels"]["column"] = "note"
    assert _check(engine, base) == []
    base["labels"]["column"] = "share"
    assert _check(engine, base) == [
        "specs/toy.yaml: labels.column: column 'share' is double precision: expected text or an integer (a "
        "multiclass label names a class); cast it in labels.query (in place of labels.table), e.g. "
        "`SELECT ..., share::text AS share`"
    ]
