"""Training validated like scoring (`ml_batch.model.validity`): rows scoring would quarantine are excluded from
the training set, the holdout and the drift reference, counted per reason, and too many of them fail training."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.errors import SourceError, TrainingError
from ml_batch.model import registry
from ml_batch.model.training import (
    TrainingWindow,
    load_labelled,
    predict_scores,
    split,
    train,
    window_for,
    window_rows,
)
from ml_batch.model.validity import VIEW_PREFIX
from ml_batch.monitoring.profile import reference_profile
from ml_batch.promotion.retrain import train_and_register
from ml_batch.spec import Spec
from tests.integration.helpers import load_recurring_data, load_toy_data, recurring_spec, toy_spec
from tests.support.toy import AS_OF, FIRST

pytestmark = pytest.mark.integration

BOUNDED = "x1: expect_column_values_to_be_between (min -5, max 5)"


def _bounded(spec: Spec, **validation: object) -> Spec:
    """`spec` with x1 bounded to -5..5 (the toy's x1 is N(0, 1), so every generated value is inside)."""
    data = spec.model_dump()
    data["features"][0].update(min=-5.0, max=5.0)
    data["validation"] = {**data["validation"], **validation}
    return Spec.model_validate(data)


def _set_x1(engine: sa.Engine, table: str, where: str, value: float) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET x1 = :v WHERE {where}"), {"v": value})


def test_out_of_bounds_rows_are_excluded_counted_and_kept_out_of_the_reference(
    settings: Settings, engine: sa.Engine
) -> None:
    spec = _bounded(toy_spec(settings.schema))
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    window = window_for(spec, AS_OF)
    everything = load_labelled(engine, spec, window)
    train_all, holdout_all = split(everything, window)
    bad_train = train_all["id"].iloc[[3, 40, 200]].tolist()  # ages 510 in the issue: far above the max
    bad_holdout = holdout_all["id"].iloc[[7, 9]].tolist()  # and 2: below the min
    _set_x1(engine, spec.source.table or "", f"id IN ({', '.join(map(str, bad_train))})", 510.0)
    _set_x1(engine, spec.source.table or "", f"id IN ({', '.join(map(str, bad_holdout))})", -20.0)

    outcome = train_and_register(engine, spec, AS_OF, actor="t")

    version = outcome.version
    assert version.n_excluded == 5
    assert version.exclusions is not None
    assert version.exclusions["reasons"] == {BOUNDED: 5}
    assert (version.exclusions["train"], version.exclusions["holdout"]) == (3, 2)
    assert version.exclusions["checked_rows"] == 10 * 80  # every source row of the window, labelled or not
    assert version.n_train == len(train_all) - 3 and version.n_holdout == len(holdout_all) - 2
    # The stored drift reference is the one built from the valid rows alone.
    bad = set(bad_train) | set(bad_holdout)
    valid = load_labelled(engine, spec, window)
    valid = valid.loc[~valid["id"].isin(bad)]
    valid_train, valid_holdout = split(valid, window)
    pipeline = registry.load(engine, spec, version.version).pipeline
    expected = reference_profile(spec, pipeline, valid_train, valid_holdout,
                                 predict_scores(pipeline, valid_holdout, spec))
    stored = registry.reference_profile(engine, spec.name, version.version)
    assert stored == json.loads(json.dumps(expected))
    assert stored["features"]["x1"]["max"] < 5  # type: ignore[index]


def test_a_recurring_entity_loses_only_its_bad_days_row(settings: Settings, engine: sa.Engine) -> None:
    spec = _bounded(recurring_spec(settings.schema))
    load_recurring_data(engine, settings.schema, FIRST, days=25, entities=40)
    window = window_for(spec, AS_OF)
    bad_day = window.start + dt.timedelta(days=2)
    start = dt.datetime.combine(bad_day, dt.time(), tzinfo=dt.UTC)
    _set_x1(engine, spec.source.table or "",
            f"entity_id = 5 AND snapshot_at >= '{start.isoformat()}' "
            f"AND snapshot_at < '{(start + dt.timedelta(days=1)).isoformat()}'", 510.0)

    result = train(engine, spec, AS_OF)

    assert result.n_excluded == 1
    assert result.exclusions is not None and result.exclusions["reasons"] == {BOUNDED: 1}
    entity5 = result.train.loc[result.train["entity_id"] == 5, "_event_day"]
    assert bad_day not in set(entity5)
    assert len(entity5) == (window.train_end - window.start).days  # every other training day of entity 5
    assert (result.holdout["entity_id"] == 5).sum() == spec.training.holdout_days


def test_the_gate_and_an_artifact_exclude_the_same_holdout_rows(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    import skops.io as sio

    from ml_batch.features import build_pipeline
    from ml_batch.promotion.artifacts import register_artifact
    from ml_batch.promotion.retrain import _holdout

    spec = _bounded(toy_spec(settings.schema))
    data = load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    window = window_for(spec, AS_OF)
    holdout_ids = split(load_labelled(engine, spec, window), window)[1]["id"].iloc[[1, 2]].tolist()
    _set_x1(engine, spec.source.table or "", f"id IN ({', '.join(map(str, holdout_ids))})", 510.0)

    trained = train(engine, spec, AS_OF)
    retried, _ = _holdout(engine, spec, AS_OF, None)  # what the gate scores the champion on, on a retry
    pd.testing.assert_frame_equal(retried, trained.holdout)
    assert not set(holdout_ids) & set(retried["id"])

    path = tmp_path / "notebook.skops"
    sio.dump(build_pipeline(spec).fit(data.loc[:399, spec.feature_names], data.loc[:399, "y"]), path)
    artifact = register_artifact(engine, spec, path, AS_OF, actor="nb")
    assert (artifact.n_holdout, artifact.n_excluded) == (len(trained.holdout), 2)
    assert artifact.exclusions is not None and artifact.exclusions["holdout"] == 2


def test_too_many_excluded_rows_fail_training_with_the_count(settings: Settings, engine: sa.Engine) -> None:
    data = _bounded(toy_spec(settings.schema), max_quarantine_share=0.05).model_dump()
    data["features"][1].update(min=-5.0, max=5.0)
    spec = Spec.model_validate(data)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    window = window_for(spec, AS_OF)
    rows = window_rows_ids(engine, spec, window)
    # 4% of the window fails on x1 and another 4% on x2: each check is within the 5% share, the rows are not.
    n = len(rows) * 4 // 100
    _set_x1(engine, spec.source.table or "", f"id IN ({', '.join(map(str, rows[:n]))})", 510.0)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET x2 = 99 WHERE id = ANY(:ids)"), {"ids": rows[n:2 * n]})

    with pytest.raises(TrainingError) as raised:
        train(engine, spec, AS_OF)

    message = str(raised.value)
    assert f"{2 * n} of {len(rows)} rows" in message
    assert "8.0%" in message and "validation.max_quarantine_share 5.0%" in message
    assert f"{BOUNDED} ({n} rows)" in message
    assert message.count("\n") == 0


def test_one_check_failing_on_most_rows_fails_training_naming_it(settings: Settings, engine: sa.Engine) -> None:
    spec = _bounded(toy_spec(settings.schema))
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    _set_x1(engine, spec.source.table or "", "true", 510.0)

    with pytest.raises(TrainingError, match=r"training window 2026-05-08\.\.2026-05-17 failed validation: "
                                            r"x1: expect_column_values_to_be_between .*800 of 800 rows failed"):
        train(engine, spec, AS_OF)


def test_a_feature_null_in_every_training_row_fails_with_one_line(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET x2 = NULL"))

    with pytest.raises(TrainingError) as raised:
        train(engine, spec, AS_OF)

    assert str(raised.value) == (
        "model 'toy': feature 'x2' is NULL in every one of the 560 rows of the training set 2026-05-08..2026-05-14: "
        "a model cannot learn from it (fill the column for these days, or remove the feature from the spec)"
    )


def test_a_numeric_feature_on_a_text_column_fails_training_naming_it(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {spec.source.table} ALTER COLUMN x2 TYPE text"))

    with pytest.raises(TrainingError, match=r"failed validation: x2: expect_column_values_to_be_in_type_list"):
        train(engine, spec, AS_OF)


def test_a_missing_feature_column_is_a_source_error(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {spec.source.table} RENAME COLUMN x2 TO x2_old"))

    with pytest.raises(SourceError, match=r"cannot read source .*toy_rows: column .*x2.* does not exist"):
        train(engine, spec, AS_OF)


def test_the_validation_view_is_dropped_whether_training_fails_or_not(settings: Settings, engine: sa.Engine) -> None:
    spec = _bounded(toy_spec(settings.schema))
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    train(engine, spec, AS_OF)
    _set_x1(engine, spec.source.table or "", "true", 510.0)
    with pytest.raises(TrainingError):
        train(engine, spec, AS_OF)
    with engine.connect() as conn:
        views = conn.execute(sa.text("SELECT viewname FROM pg_views WHERE schemaname = :s AND viewname LIKE :p"),
                             {"s": settings.schema, "p": f"{VIEW_PREFIX}%"}).scalars().all()
    assert views == []


def window_rows_ids(engine: sa.Engine, spec: Spec, window: TrainingWindow) -> list[int]:
    """Every source id of the window's days, in id order."""
    rows = window_rows(spec, window)
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(sa.select(rows.c.id).order_by(rows.c.id)).scalars()]
