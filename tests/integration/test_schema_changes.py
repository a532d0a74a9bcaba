"""A source whose column types changed after the model's first runs fails its next run's plan with one line
naming the column, the old and the new type, before any COPY (`ml_batch.db.spec_check`), against the real
server: never the driver's `insufficient data left in message` (taken for a lost connection and retried),
never GX's SQL and bind parameters."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.tables import model_versions
from ml_batch.errors import SpecError, is_deterministic
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.run.runs import list_runs
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, DAY, DAYS_OF_DATA, FIRST, ROWS_PER_DAY, trained_toy

pytestmark = pytest.mark.integration

NEXT = DAY + dt.timedelta(days=1)


def _alter(engine: sa.Engine, settings: Settings, clause: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{settings.schema}".toy_rows {clause}'))


def _refusal(engine: sa.Engine, toy: Spec) -> SpecError:
    with pytest.raises(SpecError) as refused:
        score_day(engine, toy, NEXT, run_id="after-change")
    assert is_deterministic(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert [run["run_id"] for run in list_runs(engine, toy.name)] == ["first"]  # refused before the run started
    return refused.value


def test_a_source_key_turned_text_names_the_key_and_both_types(engine: sa.Engine, toy: Spec,
                                                               settings: Settings) -> None:
    score_day(engine, toy, DAY, run_id="first")
    _alter(engine, settings, "ALTER COLUMN id TYPE text")
    assert str(_refusal(engine, toy)) == (
        f"model 'toy': source.key: column 'id' is text in source {settings.schema}.toy_rows, but predictions "
        f"table {settings.schema}.toy_predictions stores it as bigint: the source key changed type from bigint "
        "to text; cast it in source.query (in place of source.table), e.g. `SELECT ..., id::bigint AS id`, or "
        f"rename or drop {settings.schema}.toy_predictions to start it again with text keys"
    )


def test_a_categorical_column_turned_integer_names_the_column_and_its_type(engine: sa.Engine, toy: Spec,
                                                                          settings: Settings) -> None:
    score_day(engine, toy, DAY, run_id="first")
    _alter(engine, settings, "ALTER COLUMN color TYPE integer USING (CASE WHEN color = 'red' THEN 1 ELSE 2 END)")
    assert str(_refusal(engine, toy)) == (
        f"model 'toy': features[2].categories: column 'color' is integer in source {settings.schema}.toy_rows, "
        "but the feature's categories are text ('red', 'blue' cannot be integer values): the column changed "
        "type; cast it in source.query (in place of source.table), e.g. `SELECT ..., color::text AS color`, or "
        "retrain on the new values and update the categories"
    )


def test_the_key_type_the_predictions_table_was_created_with_still_scores(engine: sa.Engine, toy: Spec) -> None:
    # The check compares like with like: an unchanged bigint key passes it on every later day.
    score_day(engine, toy, DAY, run_id="first")
    assert score_day(engine, toy, NEXT, run_id="second").scored > 0


def _uncategorised_toy(engine: sa.Engine, settings: Settings) -> Spec:
    """The toy model trained and promoted with `color` categorical but no declared categories: nothing in the
    spec pins its column's type, only what the version recorded when it was trained."""
    spec = toy_spec(settings.schema).model_dump()
    del spec["features"][2]["categories"]
    return trained_toy(engine, settings.schema, features=spec["features"])


def test_a_categorical_column_without_categories_turned_integer_names_both_types(
    engine: sa.Engine, settings: Settings
) -> None:
    # Without the recorded types the version scored every row as an unseen category ('1', '2'), silently.
    toy = _uncategorised_toy(engine, settings)
    score_day(engine, toy, DAY, run_id="first")
    _alter(engine, settings, "ALTER COLUMN color TYPE integer USING (CASE WHEN color = 'red' THEN 1 ELSE 2 END)")
    assert str(_refusal(engine, toy)) == (
        f"model 'toy': features[2].name: column 'color' (a feature) is integer in source {settings.schema}.toy_rows, "
        "but 'toy' version 1 was trained on it as text: the column changed type from text to integer; cast it "
        "back in source.query (in place of source.table), e.g. `SELECT ..., color::text AS color`, or retrain "
        "on the new type"
    )


def test_a_numeric_column_widened_within_numbers_still_scores(engine: sa.Engine, settings: Settings) -> None:
    # real -> double precision reads the same floats: the recorded type differs, the values do not.
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=DAYS_OF_DATA, rows_per_day=ROWS_PER_DAY)
    _alter(engine, settings, "ALTER COLUMN x1 TYPE real")
    version = train_and_register(engine, spec, AS_OF, actor="t", promote=True).version
    assert version.source_types is not None and version.source_types["x1"] == "real"
    _alter(engine, settings, "ALTER COLUMN x1 TYPE double precision")
    assert score_day(engine, spec, DAY, run_id="widened").scored > 0


def test_a_version_without_recorded_types_scores_as_before(engine: sa.Engine, settings: Settings) -> None:
    # A version registered before migration 0014 recorded nothing: nothing is compared.
    toy = _uncategorised_toy(engine, settings)
    with engine.begin() as conn:
        conn.execute(sa.update(model_versions).where(model_versions.c.model_name == toy.name).values(
            source_types=None))
    _alter(engine, settings, "ALTER COLUMN color TYPE integer USING (CASE WHEN color = 'red' THEN 1 ELSE 2 END)")
    assert score_day(engine, toy, DAY, run_id="unrecorded").scored > 0
