"""What GX's detailed results mean for a batch, from GX result objects built here (no database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml_batch.spec import Spec
from ml_batch.validation.interpret import Findings, interpret

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "include" / "models" / "credit_default.yaml"
KEY = "application_id"



def _failed(expectation: Any, **result: Any) -> Any:
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    return ExpectationValidationResult(success=False, expectation_config=expectation.configuration, result=result)


def _interpret(spec: Spec, present: list[str], *failed: tuple[Any, dict[str, Any]],
               share_of: int | None = None) -> Findings:
    expectations = [expectation for expectation, _ in failed]
    details = {i: _failed(expectation, **result) for i, (expectation, result) in enumerate(failed)}
    return interpret(spec, present, expectations, details, share_of)


def test_a_missing_column_is_named_once_by_the_columns_check(spec: Spec) -> None:
    import great_expectations.expectations as gxe

    findings = _interpret(
        spec, [KEY, "income"],
        (gxe.ExpectColumnValuesToNotBeNull(column="age"), {}),
        (gxe.ExpectColumnValuesToBeBetween(column="age", min_value=18, max_value=100), {}),
        (gxe.ExpectColumnValuesToBeBetween(column="debt_ratio", min_value=0, max_value=10), {}),
        (gxe.ExpectTableColumnsToMatchSet(column_set=[KEY, "income", "age"], exact_match=False),
         {"details": {"mismatched": {"missing": ["age"]}}}),
    )
    assert findings.batch_failures == [
        "expect_table_columns_to_match_set: missing columns ['age']",  # read first: it is table-level
        "debt_ratio: column is missing (needed by expect_column_values_to_be_between)",
    ]


def test_each_key_gets_its_distinct_reasons_sorted_and_keyless_rows_are_reported(spec: Spec) -> None:
    import great_expectations.expectations as gxe

    findings = _interpret(
        spec, [KEY, "income", "purpose"],
        (gxe.ExpectColumnValuesToBeBetween(column="income", min_value=0, max_value=10),
         {"element_count": 150, "unexpected_count": 3,
          "unexpected_index_list": [{KEY: 7, "income": -1.0}, {KEY: 7, "income": -1.0}, {KEY: None, "income": -2}]}),
        (gxe.ExpectColumnValuesToBeInSet(column="purpose", value_set=["car"]),
         {"element_count": 150, "unexpected_count": 2,
          "unexpected_index_list": [{KEY: 9, "purpose": "boat"}, {KEY: 7, "purpose": "boat"}]}),
    )
    assert findings.row_reasons == {
        7: ["income: expect_column_values_to_be_between (min 0, max 10), got -1.0",
            "purpose: expect_column_values_to_be_in_set (allowed: 'car'), got 'boat'"],
        9: ["purpose: expect_column_values_to_be_in_set (allowed: 'car'), got 'boat'"],
    }
    assert findings.batch_failures == [f"{KEY}: 1 failing rows have a null key and cannot be quarantined"]
    assert findings.rows == 150


def test_the_key_null_check_names_the_keyless_rows_itself(spec: Spec) -> None:
    import great_expectations.expectations as gxe

    findings = _interpret(
        spec, [KEY, "income"],
        (gxe.ExpectColumnValuesToNotBeNull(column=KEY), {"element_count": 150, "unexpected_count": 1}),
        (gxe.ExpectColumnValuesToBeBetween(column="income", min_value=0, max_value=10),
         {"element_count": 150, "unexpected_count": 1, "unexpected_index_list": [{KEY: None, "income": -2}]}),
    )
    assert findings.batch_failures == [
        f"{KEY}: 1 rows have a null key (expect_column_values_to_not_be_null); they cannot be quarantined by key"]
    assert findings.row_reasons == {}


def test_the_quarantine_share_of_a_shard_is_taken_of_its_days_rows(spec: Spec) -> None:
    import great_expectations.expectations as gxe

    capped = spec.model_copy(update={"validation": spec.validation.model_copy(update={"max_quarantine_share": 0.29})})
    income = gxe.ExpectColumnValuesToBeBetween(column="income", min_value=0, max_value=10)
    summary = {"element_count": 50, "unexpected_count": 30, "partial_unexpected_list": [-5.0, -5.0]}
    findings = _interpret(capped, [KEY, "income"], (income, summary), share_of=100)
    assert findings.batch_failures == [
        "income: expect_column_values_to_be_between (min 0, max 10): 30 of 100 rows failed (30.0%), "
        "above validation.max_quarantine_share 29.0%; e.g. -5.0, -5.0"
    ]
    assert findings.rows == 50


def test_an_expectation_gx_could_not_evaluate_fails_the_batch_with_its_error(spec: Spec) -> None:
    import great_expectations.expectations as gxe
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    income = gxe.ExpectColumnValuesToBeBetween(column="income", min_value=0, max_value=10)
    broken = ExpectationValidationResult(
        success=False, expectation_config=income.configuration, result={},
        exception_info={"m1": {"raised_exception": True, "exception_message": "division by zero"},
                        "m2": {"raised_exception": True, "exception_message": "division by zero"}})
    findings = interpret(spec, [KEY, "income"], [income], {0: broken}, None)
    assert findings.batch_failures == [
        "income: expect_column_values_to_be_between could not be evaluated: division by zero"]


def test_a_row_key_keys_the_failing_rows_instead_of_the_entity_key(spec: Spec) -> None:
    import great_expectations.expectations as gxe

    # One entity on two days (training's window): only its failing day's row is named, by the row's identity.
    expectation = gxe.ExpectColumnValuesToBeBetween(column="income", min_value=0, max_value=10)
    details = {0: _failed(expectation, element_count=150, unexpected_count=1,
                          unexpected_index_list=[{"_row_id": "7@1746061200", KEY: 7, "income": -1.0}])}
    findings = interpret(spec, [KEY, "income", "_row_id"], [expectation], details, None, row_key="_row_id")
    assert findings.row_reasons == {
        "7@1746061200": ["income: expect_column_values_to_be_between (min 0, max 10), got -1.0"],
    }
    assert findings.batch_failures == []
