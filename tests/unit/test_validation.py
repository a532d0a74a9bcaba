"""Validation with real Great Expectations on the demo spec (no database)."""

from __future__ import annotations

import datetime
import json
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.errors import SpecError
from ml_batch.spec import Spec, load_spec
from ml_batch.validation import (
    ValidationOutcome,
    build_suite,
    save_result,
    suite_path,
    validate_frame,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "include" / "models" / "credit_default.yaml"
KEY = "application_id"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(DEMO)


@pytest.fixture(scope="module")
def suite(spec: Spec) -> Any:
    return build_suite(spec)


def _frame(spec: Spec, rows: int = 150, seed: int = 0) -> pd.DataFrame:
    """A frame that meets every expectation of the spec."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        KEY: np.arange(1000, 1000 + rows),
        "applied_at": pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
    }
    for feature in spec.features:
        if feature.type == "numeric":
            data[feature.name] = rng.uniform(feature.min or 0.0, feature.max or 1.0, rows)
        else:
            data[feature.name] = rng.choice(feature.categories or ["web", "app", "branch"], rows)
    frame = pd.DataFrame(data)
    frame["age"] = frame["age"].round().astype("int64")
    return frame


def _types_by_column(suite: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        found[kwargs.get("column", "<table>")].add(expectation.expectation_type)
    return found


def test_suite_from_demo_spec_has_the_expected_expectations_per_column(spec: Spec, suite: Any) -> None:
    found = _types_by_column(suite)
    assert found[KEY] == {"expect_column_values_to_not_be_null", "expect_column_values_to_be_unique"}
    assert found["<table>"] == {"expect_table_row_count_to_be_between", "expect_table_columns_to_match_set"}
    numeric = {"expect_column_values_to_be_in_type_list", "expect_column_values_to_be_between"}
    assert found["income"] == numeric  # nullable
    assert found["age"] == numeric | {"expect_column_values_to_not_be_null"}
    assert found["home_ownership"] == {"expect_column_values_to_be_in_set", "expect_column_values_to_not_be_null"}
    assert "channel" not in found  # nullable categorical without a category list: nothing to expect
    by_type = {(e.expectation_type, e.configuration.kwargs.get("column")): e for e in suite.expectations}
    between = by_type[("expect_column_values_to_be_between", "income")].configuration.kwargs
    assert (between["min_value"], between["max_value"]) == (0, 1_000_000)
    purpose = by_type[("expect_column_values_to_be_in_set", "purpose")].configuration.kwargs
    assert set(purpose["value_set"]) == {
        "debt_consolidation",
        "credit_card",
        "home_improvement",
        "car",
        "medical",
        "other",
    }
    columns = by_type[("expect_table_columns_to_match_set", None)].configuration.kwargs["column_set"]
    assert set(columns) == {KEY, "applied_at", *spec.feature_names}
    rows = by_type[("expect_table_row_count_to_be_between", None)].configuration.kwargs
    assert (rows["min_value"], rows.get("max_value")) == (100, None)


def test_suite_without_row_count_for_chunked_validation(spec: Spec) -> None:
    found = _types_by_column(build_suite(spec, check_row_count=False))
    assert found["<table>"] == {"expect_table_columns_to_match_set"}


def test_clean_frame_passes_with_no_reasons(spec: Spec, suite: Any) -> None:
    outcome = validate_frame(spec, _frame(spec), suite)
    assert outcome.passed_batch, outcome.batch_failures
    assert outcome.row_reasons == {}
    assert (outcome.rows, outcome.quarantined, outcome.quarantine_share) == (150, 0, 0.0)
    assert outcome.result_json["success"] is True
    assert outcome.result_json["statistics"]["evaluated_expectations"] == len(suite.expectations)


def test_bad_rows_are_quarantined_by_key_with_every_reason(spec: Spec, suite: Any) -> None:
    frame = _frame(spec)
    frame.loc[3, "income"] = -5.0
    frame.loc[3, "home_ownership"] = "CASTLE"  # same row, second reason
    frame.loc[7, "age"] = None  # a null in a non-nullable column (the column becomes float64)
    frame.loc[11, "purpose"] = "vacation"
    frame.loc[12, "income"] = None  # a null in a nullable column is fine
    frame.loc[13, "channel"] = "carrier-pigeon"  # any channel is fine

    outcome = validate_frame(spec, frame, suite)

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
    assert outcome.quarantined == 3
    assert outcome.quarantine_share == pytest.approx(3 / 150)
    assert outcome.result_json["success"] is False


def test_frame_index_is_ignored(spec: Spec, suite: Any) -> None:
    frame = _frame(spec).set_index(pd.Index(np.arange(150) * 7 + 5))
    frame.iloc[4, frame.columns.get_loc("loan_amount")] = 50.0
    outcome = validate_frame(spec, frame, suite)
    assert list(outcome.row_reasons) == [1004]
    assert outcome.row_reasons[1004] == [
        "loan_amount: expect_column_values_to_be_between (min 100, max 200000), got 50.0"
    ]


def test_too_few_rows_fail_the_batch_naming_count_and_bound(spec: Spec, suite: Any) -> None:
    outcome = validate_frame(spec, _frame(spec, rows=12), suite)
    assert not outcome.passed_batch
    assert outcome.batch_failures == ["expect_table_row_count_to_be_between: 12 rows, expected at least 100"]


def test_missing_column_fails_the_batch_naming_it_once(spec: Spec, suite: Any) -> None:
    outcome = validate_frame(spec, _frame(spec).drop(columns=["age"]), suite)
    assert not outcome.passed_batch
    # age has three expectations that cannot run: the one missing column is reported once
    assert outcome.batch_failures == ["expect_table_columns_to_match_set: missing columns ['age']"]
    assert outcome.row_reasons == {}


def test_numeric_column_of_strings_fails_the_batch(spec: Spec, suite: Any) -> None:
    frame = _frame(spec)
    frame["debt_ratio"] = frame["debt_ratio"].astype(str)
    outcome = validate_frame(spec, frame, suite)
    assert any(
        f.startswith("debt_ratio: expect_column_values_to_be_in_type_list (numeric types): observed")
        for f in outcome.batch_failures
    ), outcome.batch_failures


def test_duplicate_keys_quarantine_every_duplicated_row(spec: Spec, suite: Any) -> None:
    frame = _frame(spec)
    frame.loc[[20, 21, 22], KEY] = 555
    outcome = validate_frame(spec, frame, suite)
    assert outcome.passed_batch
    assert outcome.row_reasons == {555: ["application_id: expect_column_values_to_be_unique (key not unique), got 555"]}
    assert outcome.quarantined == 3  # rows, not keys
    assert outcome.quarantine_share == pytest.approx(3 / 150)


def test_null_keys_are_a_batch_failure(spec: Spec, suite: Any) -> None:
    frame = _frame(spec)
    frame[KEY] = frame[KEY].astype("Int64")
    frame.loc[[5, 6], KEY] = pd.NA
    frame.loc[5, "income"] = -1.0  # a row without a key cannot be quarantined
    outcome = validate_frame(spec, frame, suite)
    assert outcome.batch_failures == [
        "application_id: 2 rows have a null key (expect_column_values_to_not_be_null); "
        "they cannot be quarantined by key"
    ]
    assert outcome.row_reasons == {}


def _write_suite(tmp_path: Path, expectations: Any, name: str = "extra.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"name": "credit_default_extra", "expectations": expectations}))
    return path


def test_extra_suite_is_merged_and_applied(spec: Spec, tmp_path: Path) -> None:
    extra = _write_suite(
        tmp_path,
        [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "debt_ratio", "max_value": 5}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "income", "max_value": 900_000}},
        ],
    )
    generated = build_suite(spec)
    merged = build_suite(spec, extra)
    assert len(merged.expectations) == len(generated.expectations) + 2
    assert merged.expectations[-1].meta == {"source": "suite extra.json"}

    frame = _frame(spec)
    frame["debt_ratio"] = 1.0
    frame["income"] = 50_000.0
    frame.loc[9, "debt_ratio"] = 7.5  # within the spec's 0..10, above the extra suite's 5
    frame.loc[10, "income"] = 950_000.0
    outcome = validate_frame(spec, frame, merged)
    assert outcome.row_reasons == {1009: ["debt_ratio: expect_column_values_to_be_between (min none, max 5), got 7.5"]}
    assert outcome.batch_failures == ["income: expect_column_max_to_be_between (max_value 900000): observed 950000.0"]


def test_relative_suite_in_spec_is_resolved_against_the_spec_folder(spec: Spec, tmp_path: Path) -> None:
    extra = _write_suite(tmp_path, [{"type": "expect_column_to_exist", "kwargs": {"column": "income"}}])
    with_suite = spec.model_copy(update={"validation": spec.validation.model_copy(update={"suite": "extra.json"})})
    assert suite_path(with_suite, tmp_path) == extra
    assert suite_path(spec, tmp_path) is None
    with pytest.raises(SpecError, match=r"validation.suite 'extra.json' is relative"):
        build_suite(with_suite)
    absolute = spec.model_copy(update={"validation": spec.validation.model_copy(update={"suite": str(extra)})})
    assert len(build_suite(absolute).expectations) == len(build_suite(spec).expectations) + 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object with 'name' and 'expectations', got list"),
        ('{"name": "x", "expectations": {}}', "'expectations' must be a list"),
        ('{"name": "x", "expectations": [42]}', "expectations[0]: expected an object with 'type' and 'kwargs'"),
        ('{"name": "x", "expectations": [{"kwargs": {}}]}', "expectations[0]: 'type' must name an expectation"),
        (
            '{"name": "x", "expectations": [{"expectation_type": "expect_column_to_exist", "kwargs": {}}]}',
            "expectations[0]: 'expectation_type' is the GX 0.x format",
        ),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_to_be_fabulous", "kwargs": {"column": "a"}}]}',
            "expectations[0]: unknown expectation type 'expect_column_to_be_fabulous'",
        ),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_values_to_be_between", '
            '"kwargs": {"column": "a", "min_value": "low"}}]}',
            "expectations[0] (expect_column_values_to_be_between): invalid kwargs",
        ),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_values_to_not_be_null", '
            '"kwargs": {"colum": "a"}}]}',
            "colum",
        ),
    ],
)
def test_malformed_suite_file_is_a_spec_error_naming_the_file(
    spec: Spec, tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "broken_suite.json"
    path.write_text(content)
    with pytest.raises(SpecError) as caught:
        build_suite(spec, path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_missing_suite_file_is_a_spec_error(spec: Spec, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such expectation suite file"):
        build_suite(spec, tmp_path / "absent.json")


def test_save_result_writes_json_that_round_trips(spec: Spec, suite: Any, tmp_path: Path) -> None:
    frame = _frame(spec)
    frame.loc[3, "income"] = -5.0
    outcome = validate_frame(spec, frame, suite)
    run_id = "scheduled__2024-03-02T06:00:00+00:00"
    path = save_result(outcome, tmp_path, "credit_default", datetime.date(2024, 3, 2), run_id)
    assert path == tmp_path / "credit_default" / "2024-03-02" / "scheduled__2024-03-02T06_00_00_00_00.json"
    loaded = json.loads(path.read_text())
    assert loaded == json.loads(json.dumps(outcome.result_json, default=str))
    assert loaded["meta"]["ml_batch"]["key_column"] == KEY
    failed = [r for r in loaded["results"] if not r["success"]]
    assert [r["result"]["unexpected_index_list"] for r in failed] == [[3]]
    # a second run of the same task replaces the file and leaves no temporary files behind
    assert save_result(outcome, tmp_path, "credit_default", datetime.date(2024, 3, 2), run_id) == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_save_result_rejects_a_run_id_that_is_not_a_name(tmp_path: Path) -> None:
    outcome = ValidationOutcome(rows=0, batch_failures=[], row_reasons={}, result_json={})
    with pytest.raises(ValueError, match=r"run_id '\.\.' cannot be used as a file name"):
        save_result(outcome, tmp_path, "m", datetime.date(2024, 1, 1), "..")


def test_validation_opens_no_network_connection(spec: Spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"validation tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    outcome = validate_frame(spec, _frame(spec), build_suite(spec))
    assert outcome.passed_batch


def test_importing_the_module_does_not_import_great_expectations() -> None:
    code = "import sys, ml_batch.validation; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_custom_suite_without_key_check_still_reports_rows_without_key(spec: Spec) -> None:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(
        name="custom", expectations=[gxe.ExpectColumnValuesToBeBetween(column="income", min_value=0)]
    )
    frame = _frame(spec)
    frame[KEY] = frame[KEY].astype("Int64")
    frame.loc[5, KEY] = pd.NA
    frame.loc[[5, 6], "income"] = -1.0
    outcome = validate_frame(spec, frame, suite)
    assert outcome.batch_failures == ["application_id: 1 failing rows have a null key and cannot be quarantined"]
    assert list(outcome.row_reasons) == [1006]
