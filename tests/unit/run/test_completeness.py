"""The rules that judge a day as a whole (no database: the functions that decide)."""

from __future__ import annotations

import datetime as dt

import pytest

from ml_batch.errors import DayIncomplete
from ml_batch.run.completeness import (
    DayCheck,
    Volume,
    judge_volume,
    next_check,
    null_share_refusals,
    raise_if_refused,
    volume_refusal,
)
from ml_batch.spec import Spec

DAY = dt.date(2026, 6, 6)  # a Saturday


def _with(spec: Spec, **validation: object) -> Spec:
    return spec.model_copy(update={"validation": spec.validation.model_copy(update=validation)})


@pytest.mark.parametrize(("rows", "verdict"), [(399, "low"), (400, "ok"), (600, "ok"), (2400, "ok"), (2401, "high")])
def test_the_volume_rule_holds_the_day_between_half_and_three_times_its_expected_volume(
        spec: Spec, rows: int, verdict: str) -> None:
    assert judge_volume(spec, rows, 800.0, "median").verdict == verdict


def test_a_holiday_at_75_percent_passes_and_a_lunchtime_load_does_not(spec: Spec) -> None:
    assert judge_volume(spec, 608, 810.0, "median").verdict == "ok"
    assert judge_volume(spec, 419, 810.0, "median").verdict == "ok"  # 0.52: still above the default 0.5
    assert judge_volume(_with(spec, min_volume_ratio=0.6), 419, 810.0, "median").verdict == "low"


def test_without_history_or_with_an_empty_history_nothing_is_judged(spec: Spec) -> None:
    assert judge_volume(spec, 10, None, "not checked: 0 day(s)").verdict == "unchecked"
    assert judge_volume(spec, 10, 0.0, "median").verdict == "unchecked"
    assert volume_refusal(spec, DAY, judge_volume(spec, 10, None, "not checked")) is None


def test_the_refusal_names_both_numbers_how_the_expectation_was_computed_and_what_changes_it(spec: Spec) -> None:
    volume = Volume(rows=320, expected=800.0, basis="median of the 4 Saturdays published", verdict="low")
    message = volume_refusal(spec, DAY, volume)
    assert message is not None
    for part in ("day 2026-06-06: 320 rows, expected about 800", "median of the 4 Saturdays", "0.40 of it",
                 "below validation.min_volume_ratio 0.5", "--allow-partial", "volume_history_weeks"):
        assert part in message
    high = volume_refusal(spec, DAY, Volume(rows=3000, expected=800.0, basis="b", verdict="high"))
    assert high is not None and "above validation.max_volume_ratio 3" in high


def test_a_feature_null_in_most_rows_that_training_had_is_refused_unless_exempt(spec: Spec) -> None:
    name = spec.features[0].name
    day = {name: 1.0}
    [refusal] = null_share_refusals(spec, DAY, day, {name: 0.0})
    assert f"feature {name!r} is null in 100.0% of the day's rows but in 0.0% of the training data" in refusal
    assert null_share_refusals(spec, DAY, {name: 0.5}, {name: 0.0}) == [], "at most max_null_share passes"
    assert null_share_refusals(spec, DAY, day, {name: 0.05}) == [], "a feature often null in training is not held"
    assert null_share_refusals(spec, DAY, day, {name: None}) == [], "no reference: nothing to compare with"
    exempt = [f.model_copy(update={"null_share_check": False}) if f.name == name else f for f in spec.features]
    assert null_share_refusals(spec.model_copy(update={"features": exempt}), DAY, day, {name: 0.0}) == []


def test_allow_partial_waives_an_incomplete_day_but_never_a_broken_one(spec: Spec) -> None:
    volume = Volume(rows=1, expected=10.0, basis="b", verdict="low")
    incomplete = DayCheck(volume, incomplete=["too few rows"])
    with pytest.raises(DayIncomplete, match="too few rows") as refused:
        raise_if_refused(spec, DAY, incomplete, allow_partial=False)
    assert refused.value.waitable
    assert raise_if_refused(spec, DAY, incomplete, allow_partial=True).partial
    broken = DayCheck(volume, incomplete=["too few rows"], broken=["x is null"])
    with pytest.raises(DayIncomplete, match="x is null") as failed:
        raise_if_refused(spec, DAY, broken, allow_partial=True)
    assert not failed.value.waitable
    assert not raise_if_refused(spec, DAY, DayCheck(volume), allow_partial=False).partial


def test_a_waiting_plan_looks_again_every_recheck_until_the_deadline_then_stops(spec: Spec) -> None:
    rules = _with(spec, wait_for_volume="1h", recheck_every="25m")
    first = dt.datetime(2026, 6, 7, 6, tzinfo=dt.UTC)
    assert next_check(rules, first_check=first, now=first, run_type="scheduled") == first + dt.timedelta(minutes=25)
    late = first + dt.timedelta(minutes=50)
    assert next_check(rules, first_check=first, now=late, run_type="manual") == first + dt.timedelta(hours=1)
    assert next_check(rules, first_check=first, now=first + dt.timedelta(hours=1), run_type="scheduled") is None
    assert next_check(rules, first_check=first, now=first, run_type="backfill") is None, "a past day won't fill"
