"""The suite GX runs, built from the demo spec and from suite files (no database)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ml_batch.errors import SpecError
from ml_batch.spec import Spec
from ml_batch.validation.suite import build_suite, suite_path

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "include" / "models" / "credit_default.yaml"
KEY = "application_id"



@pytest.fixture(scope="module")
def suite(spec: Spec) -> Any:
    return build_suite(spec)


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


def test_suite_without_row_count_for_one_shard(spec: Spec) -> None:
    found = _types_by_column(build_suite(spec, check_row_count=False))
    assert found["<table>"] == {"expect_table_columns_to_match_set"}


def test_suite_without_key_uniqueness_when_the_database_guarantees_it(spec: Spec) -> None:
    found = _types_by_column(build_suite(spec, check_key_unique=False))
    assert found[KEY] == {"expect_column_values_to_not_be_null"}


def test_numeric_types_are_postgresql_types_and_numeric_precision_is_accepted(spec: Spec) -> None:
    def types(suite: Any, column: str) -> list[str]:
        return next(e.configuration.kwargs["type_list"] for e in suite.expectations
                    if e.expectation_type == "expect_column_values_to_be_in_type_list"
                    and e.configuration.kwargs["column"] == column)

    plain = build_suite(spec)
    assert "DOUBLE PRECISION" in types(plain, "income") and "BIGINT" in types(plain, "age")
    precise = build_suite(spec, column_types={"income": "NUMERIC(12, 2)", "age": "TEXT"})
    assert "NUMERIC(12, 2)" in types(precise, "income")
    assert "TEXT" not in types(precise, "age")


def _write_suite(tmp_path: Path, expectations: Any, name: str = "extra.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"name": "credit_default_extra", "expectations": expectations}))
    return path


def test_relative_suite_in_spec_is_resolved_against_the_spec_folder(spec: Spec, tmp_path: Path) -> None:
    extra = _write_suite(tmp_path, [{"type": "expect_column_to_exist", "kwargs": {"column": "income"}}])
    with_suite = spec.model_copy(update={"validation": spec.validation.model_copy(update={"suite": "extra.json"})})
    assert suite_path(with_suite, tmp_path) == extra
    assert suite_path(spec, tmp_path) is None
    with pytest.raises(SpecError, match=r"validation.suite 'extra.json' is relative"):
        build_suite(with_suite)
    absolute = spec.model_copy(update={"validation": spec.validation.model_copy(update={"suite": str(extra)})})
    assert len(build_suite(absolute).expectations) == len(build_suite(spec).expectations) + 1


def test_a_suite_file_entry_keeps_its_meta_and_names_its_source(spec: Spec, tmp_path: Path) -> None:
    extra = _write_suite(tmp_path, [{"type": "expect_column_to_exist", "kwargs": {"column": "income"},
                                     "meta": {"owner": "risk"}}])
    added = build_suite(spec, extra).expectations[-1]
    assert added.expectation_type == "expect_column_to_exist"
    assert added.meta == {"source": "suite extra.json", "owner": "risk"}


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
        (
            '{"name": "x", "expectations": [{"type": "expect_column_to_exist", "kwargs": []}]}',
            "expectations[0] (expect_column_to_exist): 'kwargs' and 'meta' must be objects",
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


def _kwargs(suite: Any, kind: str) -> dict[str, dict[str, Any]]:
    return {e.configuration.kwargs["column"]: {k: v for k, v in e.configuration.kwargs.items() if k != "column"}
            for e in suite.expectations if e.expectation_type == kind}


def test_a_missing_bound_of_a_float_column_is_infinite_so_nan_and_infinity_fail_the_range(spec: Spec) -> None:
    free = spec.model_copy(update={"features": [
        f.model_copy(update={"max": None}) if f.name == "income"
        else f.model_copy(update={"min": None, "max": None}) if f.name in ("debt_ratio", "age") else f
        for f in spec.features
    ]})
    types = {"income": "DOUBLE PRECISION", "age": "BIGINT", "debt_ratio": "NUMERIC(6, 3)", "utilization": "REAL",
             "home_ownership": "DOUBLE PRECISION", "purpose": "TEXT", "channel": "REAL"}
    between = _kwargs(build_suite(free, column_types=types), "expect_column_values_to_be_between")
    assert between["income"] == {"min_value": 0, "max_value": math.inf, "strict_max": True}
    assert between["debt_ratio"] == {"min_value": -math.inf, "max_value": math.inf, "strict_min": True,
                                     "strict_max": True}
    assert between["utilization"] == {"min_value": 0, "max_value": 1.5}  # as it always was
    assert "age" not in between  # BIGINT holds no NaN, and age lost its bounds here
    # a categorical float column: NaN is its missing category, rejected only where it may not be missing
    not_in = _kwargs(build_suite(free, column_types=types), "expect_column_values_to_not_be_in_set")
    assert not_in == {"home_ownership": {"value_set": ["NaN"]}}  # nullable: false; channel is nullable
