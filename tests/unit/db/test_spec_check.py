"""`SpecProblem`: the one line a user reads for a spec that does not fit its database."""

from __future__ import annotations

from ml_batch.db.spec_check import SpecProblem


def test_a_problem_names_file_field_column_what_was_found_and_the_fix() -> None:
    problem = SpecProblem("a.yaml", "labels.column", "y", "is text: expected a number", "cast it")
    assert str(problem) == "a.yaml: labels.column: column 'y' is text: expected a number; cast it"


def test_a_problem_without_column_or_fix_names_the_field() -> None:
    assert str(SpecProblem("a.yaml", "source.table", None, "table 't' does not exist")) == \
        "a.yaml: source.table: table 't' does not exist"
