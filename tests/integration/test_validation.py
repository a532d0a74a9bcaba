"""Validation with real Great Expectations on a real PostgreSQL table (the demo spec's expectations)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from ml_batch.db import arrow
from ml_batch.spec import Spec
from ml_batch.validation.passes import validate_relation
from ml_batch.validation.reasons import nan_columns
from ml_batch.validation.relation import key_is_unique, relation_column_types
from ml_batch.validation.results import ValidationOutcome
from ml_batch.validation.suite import build_suite

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "include" / "models" / "credit_default.yaml"
KEY = "application_id"



def _frame(spec: Spec, rows: int = 150, seed: int = 0) -> pd.DataFrame:
    """A frame that meets every expectation of the spec."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        KEY: np.arange(1000, 1000 + rows),
        "applied_at": pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
    }
    for feature in spec.features:
        if feature.type == "numeric":
            data[feature.name] = rng.uniform(feature.min or 0.0, feature.max or 1.0, rows)
        else:
            data[feature.name] = rng.choice(feature.categories or ["web", "app", "branch"], rows)
    frame = pd.DataFrame(data)
    frame["age"] = frame["age"].round().astype("int64")
    return frame


def _load(engine: sa.Engine, frame: pd.DataFrame, name: str = "rows") -> str:
    """The frame as a new table of the test's schema (types from Arrow: bigint, double precision, text...)."""
    schema = _schema(engine)
    with arrow.connect(engine.url.render_as_string(hide_password=False)) as conn:
        conn.cursor().adbc_ingest(name, pa.Table.from_pandas(frame, preserve_index=False), mode="create",
                                  db_schema_name=schema)
        conn.commit()
    return f"{schema}.{name}"


def _schema(engine: sa.Engine) -> str:
    return str(next(iter(engine.get_execution_options()["schema_translate_map"].values())))


def _validate(engine: sa.Engine, spec: Spec, frame: pd.DataFrame, suite: Any = None,
              extra: Path | None = None, **suite_args: Any) -> ValidationOutcome:
    relation = _load(engine, frame)
    types = relation_column_types(engine, relation)
    if suite is None:
        suite = build_suite(spec, extra, column_types=types, **suite_args)
    return validate_relation(spec, engine.url.render_as_string(hide_password=False), relation, suite, columns=types)


def test_clean_table_passes_in_one_gx_pass(engine: sa.Engine, spec: Spec) -> None:
    outcome = _validate(engine, spec, _frame(spec))
    assert outcome.passed_batch, outcome.batch_failures
    assert outcome.row_reasons == {} and outcome.passes == 1
    assert outcome.result_json["success"] is True
    assert outcome.result_json["statistics"]["evaluated_expectations"] == len(build_suite(spec).expectations)


def test_bad_rows_are_quarantined_by_key_with_every_reason(engine: sa.Engine, spec: Spec) -> None:
    frame = _frame(spec)
    frame["age"] = frame["age"].astype("Int64")
    frame.loc[3, "income"] = -5.0
    frame.loc[3, "home_ownership"] = "CASTLE"  # same row, second reason
    frame.loc[7, "age"] = pd.NA  # a null in a non-nullable column
    frame.loc[11, "purpose"] = "vacation"
    frame.loc[12, "income"] = None  # a null in a nullable column is fine
    frame.loc[13, "channel"] = "carrier-pigeon"  # any channel is fine

    outcome = _validate(engine, spec, frame)

    assert outcome.passed_batch, outcome.batch_failures
    assert outcome.row_reasons == {
        1003: [
            "home_ownership: expect_column_values_to_be_in_set (allowed: 'RENT', 'OWN', 'MORTGAGE', 'OTHER'), "
            "got 'CASTLE'",
            "income: expect_column_values_to_be_between (min 0, max 1000000), got -5.0",
        ],
        1007: ["age: expect_column_values_to_not_be_null, got null"],
        1011: [
            "purpose: expect_column_values_to_be_in_set (allowed: 'debt_consolidation', 'credit_card', "
            "'home_improvement', 'car', 'medical', 'other'), got 'vacation'"
        ],
    }
    assert (outcome.rows, outcome.quarantined_keys, outcome.passes) == (150, 3, 3)
    saved = outcome.result_json
    assert saved["success"] is False and saved["meta"]["ml_batch"]["gx_passes"] == 3
    failed = [r for r in saved["results"] if not r["success"]]
    assert sorted(entry[KEY] for r in failed for entry in r["result"]["unexpected_index_list"]) == [
        1003, 1003, 1007, 1011]
    json.dumps(saved, default=str)  # what save_result writes


def test_too_few_rows_fail_the_batch_naming_count_and_bound(engine: sa.Engine, spec: Spec) -> None:
    outcome = _validate(engine, spec, _frame(spec, rows=12))
    assert outcome.batch_failures == ["expect_table_row_count_to_be_between: 12 rows, expected at least 100"]


def test_missing_column_fails_the_batch_naming_it_once(engine: sa.Engine, spec: Spec) -> None:
    outcome = _validate(engine, spec, _frame(spec).drop(columns=["age"]))
    # age has three expectations that cannot run: the one missing column is reported once
    assert outcome.batch_failures == ["expect_table_columns_to_match_set: missing columns ['age']"]
    assert outcome.row_reasons == {}


def test_numeric_column_of_strings_fails_the_batch_naming_the_type(engine: sa.Engine, spec: Spec) -> None:
    frame = _frame(spec)
    frame["debt_ratio"] = frame["debt_ratio"].astype(str)
    outcome = _validate(engine, spec, frame)
    assert "debt_ratio: expect_column_values_to_be_in_type_list (numeric types): observed 'TEXT'" in \
        outcome.batch_failures, outcome.batch_failures


def test_numeric_with_precision_is_a_numeric_type(engine: sa.Engine, spec: Spec) -> None:
    relation = _load(engine, _frame(spec))
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {relation} ALTER COLUMN income TYPE numeric(12, 2)"))
    types = relation_column_types(engine, relation)
    assert types["income"] == "NUMERIC(12, 2)"
    outcome = validate_relation(spec, engine.url.render_as_string(hide_password=False), relation,
                                build_suite(spec, column_types=types), columns=types)
    assert outcome.passed_batch, outcome.batch_failures


def test_duplicate_keys_quarantine_every_duplicated_key(engine: sa.Engine, spec: Spec) -> None:
    frame = _frame(spec)
    frame.loc[[20, 21, 22], KEY] = 555
    outcome = _validate(engine, spec, frame)
    assert outcome.passed_batch
    assert outcome.row_reasons == {555: ["application_id: expect_column_values_to_be_unique (key not unique), got 555"]}


def test_a_unique_index_on_the_key_makes_the_uniqueness_check_unnecessary(engine: sa.Engine, spec: Spec) -> None:
    relation = _load(engine, _frame(spec))
    table_spec = spec.model_copy(update={"source": spec.source.model_copy(update={"table": relation})})
    assert not key_is_unique(engine, table_spec)
    with engine.begin() as conn:  # a partial or multi-column unique index proves nothing about the key alone
        conn.execute(sa.text(f"CREATE UNIQUE INDEX ON {relation} ({KEY}, applied_at)"))
        conn.execute(sa.text(f"CREATE UNIQUE INDEX ON {relation} ({KEY}) WHERE income > 0"))
    assert not key_is_unique(engine, table_spec)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {relation} ADD PRIMARY KEY ({KEY})"))
    assert key_is_unique(engine, table_spec)
    query_spec = spec.model_copy(update={"source": spec.source.model_copy(
        update={"table": None, "query": f"SELECT * FROM {relation}"})})
    assert not key_is_unique(engine, query_spec)
    kinds = [e.expectation_type for e in build_suite(spec, check_key_unique=False).expectations]
    assert "expect_column_values_to_be_unique" not in kinds


def test_null_keys_are_a_batch_failure(engine: sa.Engine, spec: Spec) -> None:
    frame = _frame(spec)
    frame[KEY] = frame[KEY].astype("Int64")
    frame.loc[[5, 6], KEY] = pd.NA
    frame.loc[5, "income"] = -1.0  # a row without a key cannot be quarantined
    outcome = _validate(engine, spec, frame)
    assert outcome.batch_failures == [
        "application_id: 2 rows have a null key (expect_column_values_to_not_be_null); "
        "they cannot be quarantined by key"
    ]
    assert outcome.row_reasons == {}


def test_a_column_failing_on_more_rows_than_the_share_fails_without_listing_them(
    engine: sa.Engine, spec: Spec
) -> None:
    frame = _frame(spec)
    frame.loc[:29, "purpose"] = "vacation"  # 30 of 150 = 20% > 5%
    outcome = _validate(engine, spec, frame)
    assert outcome.batch_failures == [
        "purpose: expect_column_values_to_be_in_set (allowed: 'debt_consolidation', 'credit_card', "
        "'home_improvement', 'car', 'medical', 'other'): 30 of 150 rows failed (20.0%), above "
        "validation.max_quarantine_share 5.0%; e.g. 'vacation'"
    ]
    assert outcome.row_reasons == {} and outcome.passes == 2


def test_nan_and_infinity_are_quarantined_with_their_values(engine: sa.Engine, spec: Spec) -> None:
    """NaN is missing (nullable: false) and no number (nullable or not); +-Infinity is no number, with or
    without bounds. The reasons and the saved result name the values; GX's own JSON would say null."""
    frame = _frame(spec)
    frame.loc[24, "income"] = None  # a NULL where NULL is allowed: fine
    relation = _load(engine, frame)  # Arrow turns pandas NaN into NULL: set the special values in SQL
    with engine.begin() as conn:
        for key, column, value in ((1020, "income", "NaN"), (1021, "debt_ratio", "Infinity"),
                                   (1022, "utilization", "-Infinity"), (1023, "loan_amount", "NaN")):
            conn.execute(sa.text(f"UPDATE {relation} SET {column} = CAST(:v AS float8) WHERE {KEY} = :k"),
                         {"v": value, "k": key})
    types = relation_column_types(engine, relation)
    outcome = validate_relation(spec, engine.url.render_as_string(hide_password=False), relation,
                                build_suite(spec, column_types=types), columns=types)
    assert outcome.passed_batch, outcome.batch_failures
    assert outcome.row_reasons == {
        1020: ["income: expect_column_values_to_be_between (min 0, max 1000000), got NaN"],
        1021: ["debt_ratio: expect_column_values_to_be_between (min 0, max 10), got inf"],
        1022: ["utilization: expect_column_values_to_be_between (min 0, max 1.5), got -inf"],
        1023: ["loan_amount: expect_column_values_to_be_between (min 100, max 200000), got NaN"],
    }
    assert {key: nan_columns(reasons) for key, reasons in outcome.row_reasons.items()} == {
        1020: {"income"}, 1021: set(), 1022: set(), 1023: {"loan_amount"}}
    saved = json.loads(json.dumps(outcome.result_json, allow_nan=False, default=str))  # valid JSON
    listed = sorted((entry[KEY], column, entry[column]) for r in saved["results"] if not r["success"]
                    for column in [r["expectation_config"]["kwargs"]["column"]]
                    if r["expectation_config"]["type"] == "expect_column_values_to_be_between"
                    for entry in r["result"]["unexpected_index_list"])
    assert listed == [(1020, "income", "NaN"), (1021, "debt_ratio", "inf"), (1022, "utilization", "-inf"),
                      (1023, "loan_amount", "NaN")]


def test_extra_suite_is_merged_and_applied(engine: sa.Engine, spec: Spec, tmp_path: Path) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"name": "credit_default_extra", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "debt_ratio", "max_value": 5}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "income", "max_value": 900_000}},
    ]}))
    frame = _frame(spec)
    frame["debt_ratio"] = 1.0
    frame["income"] = 50_000.0
    frame.loc[9, "debt_ratio"] = 7.5  # within the spec's 0..10, above the extra suite's 5
    frame.loc[10, "income"] = 950_000.0
    outcome = _validate(engine, spec, frame, extra=extra)
    assert outcome.row_reasons == {1009: ["debt_ratio: expect_column_values_to_be_between (min none, max 5), got 7.5"]}
    assert outcome.batch_failures == ["income: expect_column_max_to_be_between (max_value 900000): observed 950000.0"]


def test_custom_suite_without_key_check_still_reports_rows_without_key(engine: sa.Engine, spec: Spec) -> None:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(
        name="custom", expectations=[gxe.ExpectColumnValuesToBeBetween(column="income", min_value=0)]
    )
    frame = _frame(spec)
    frame[KEY] = frame[KEY].astype("Int64")
    frame.loc[5, KEY] = pd.NA
    frame.loc[[5, 6], "income"] = -1.0
    outcome = _validate(engine, spec, frame, suite=suite)
    assert outcome.batch_failures == ["application_id: 1 failing rows have a null key and cannot be quarantined"]
    assert list(outcome.row_reasons) == [1006]


def test_gx_opens_no_network_connection_of_its_own(engine: sa.Engine, spec: Spec,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """GX talks to PostgreSQL through libpq (C); any Python-level connection (analytics...) is refused."""
    frame = _frame(spec)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"validation tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert _validate(engine, spec, frame).passed_batch



def _failing_income(engine: sa.Engine, spec: Spec, failing: int, share: float) -> ValidationOutcome:
    """100 rows, the first `failing` of them below income's minimum, under `max_quarantine_share: share`."""
    capped = spec.model_copy(update={"validation": spec.validation.model_copy(update={"max_quarantine_share": share})})
    frame = _frame(spec, rows=100)
    frame.loc[: failing - 1, "income"] = -5.0
    return _validate(engine, capped, frame)


def test_every_failing_row_is_quarantined_not_only_the_first_twenty(engine: sa.Engine, spec: Spec) -> None:
    """GX's SQL engine lists at most `partial_unexpected_count` (20 by default) failing rows' keys, even with
    the COMPLETE result format: a row it did not list would be scored although it failed validation."""
    frame = _frame(spec)
    frame.loc[:24, "income"] = -5.0  # 25 of 150 rows, below the share allowed here (30)
    frame.loc[:21, "purpose"] = "vacation"  # 22 of them fail a second check
    capped = spec.model_copy(update={"validation": spec.validation.model_copy(update={"max_quarantine_share": 0.2})})
    outcome = _validate(engine, capped, frame)
    assert outcome.passed_batch, outcome.batch_failures
    assert sorted(outcome.row_reasons) == list(range(1000, 1025))
    assert [len(outcome.row_reasons[key]) for key in (1021, 1022)] == [2, 1]
    income = next(r for r in outcome.result_json["results"]
                  if r["expectation_config"]["type"] == "expect_column_values_to_be_between"
                  and r["expectation_config"]["kwargs"]["column"] == "income")
    assert len(income["result"]["unexpected_index_list"]) == 25


def test_exactly_the_quarantine_share_of_rows_failing_is_quarantined_not_a_batch_failure(
    engine: sa.Engine, spec: Spec
) -> None:
    """29 of 100 rows is exactly 0.29, not above it (`ValidationSpec.quarantine_exceeded`, as publish reads it):
    the rows are quarantined and the batch passes, where a float product (0.29 * 100 = 28.999...) failed it."""
    outcome = _failing_income(engine, spec, 29, 0.29)
    assert outcome.passed_batch, outcome.batch_failures
    assert sorted(outcome.row_reasons) == list(range(1000, 1029))
    assert outcome.row_reasons[1000] == ["income: expect_column_values_to_be_between (min 0, max 1000000), got -5.0"]
    assert outcome.passes == 3


def test_one_row_above_the_quarantine_share_fails_the_batch_naming_the_rule(engine: sa.Engine, spec: Spec) -> None:
    outcome = _failing_income(engine, spec, 30, 0.29)
    assert outcome.batch_failures == [
        "income: expect_column_values_to_be_between (min 0, max 1000000): 30 of 100 rows failed (30.0%), "
        "above validation.max_quarantine_share 29.0%; e.g. -5.0"
    ]
    assert outcome.row_reasons == {} and outcome.passes == 2
