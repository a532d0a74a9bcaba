"""Run types and statuses: one list each (`ml_batch.run.runs`), Airflow's run types mapped onto them."""

from __future__ import annotations

import pytest

from ml_batch.run.runs import RUN_TYPES, check_run_type, run_type_of


@pytest.mark.parametrize(("given", "expected"), [
    ("scheduled", "scheduled"), ("DagRunType.BACKFILL", "backfill"), ("manual", "manual"),
    ("operator_triggered", "manual"), ("asset_triggered", "asset_triggered"),
    ("asset_materialization", "asset_triggered"), (None, "manual"), ("something_new", "manual"),
])
def test_airflow_run_types_map_onto_ml_batch_run_types(given: str | None, expected: str) -> None:
    assert run_type_of(given) == expected


def test_every_airflow_run_type_is_one_the_plan_accepts() -> None:
    """Each DagRunType of the pinned Airflow maps to a run type `plan_run` (and the runs table) accepts.

    Before one list existed, an asset-triggered run was recorded as `manual` (the partition rule's table) while
    the plan's own list did not know `asset_triggered` at all.
    """
    from airflow.utils.types import DagRunType

    mapped = {member.value: run_type_of(member.value) for member in DagRunType}
    assert set(mapped.values()) <= set(RUN_TYPES)
    assert mapped["asset_triggered"] == "asset_triggered"
    for run_type in mapped.values():
        assert check_run_type(run_type) == run_type


def test_an_unknown_run_type_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"run_type 'nightly': expected one of \('scheduled', 'manual'"):
        check_run_type("nightly")
