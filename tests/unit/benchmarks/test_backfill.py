"""Pure helpers of benchmarks/backfill.py (report figures, ratios, targets). The benchmark itself starts the
Airflow components and runs with `make bench`; nothing here times anything."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.scripts import load_script

BACKFILL = Path(__file__).resolve().parents[3] / "benchmarks" / "backfill.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(BACKFILL, "ml_batch_backfill_bench")


def _ti(task_id: str, duration: float | None, map_index: int = -1) -> dict[str, object]:
    return {"task_id": task_id, "map_index": map_index, "duration": duration, "state": "success"}


def test_days_per_min_is_wall_time_from_creation_to_the_last_run_end(bench: ModuleType) -> None:
    ends = ["2026-03-01T10:01:00Z", "2026-03-01T10:02:00+00:00", None]
    assert bench.days_per_min(4, "2026-03-01T10:00:00Z", ends) == 2.0
    assert bench.days_per_min(4, "2026-03-01T10:00:00Z", [None]) is None


def test_per_task_seconds_sums_mapped_instances_and_divides_by_days(bench: ModuleType) -> None:
    tis = [_ti("plan", 2.0), _ti("plan", 4.0), _ti("score", 1.0, 0), _ti("score", 2.0, 1), _ti("score", 3.0, 0),
           _ti("dataset_drifted", None)]
    assert bench.per_task_seconds(tis, 2) == {"dataset_drifted": 0.0, "plan": 3.0, "score": 3.0}
    with pytest.raises(ValueError, match="days=0"):
        bench.per_task_seconds(tis, 0)


def test_overhead_ratio_is_ours_minus_noop_over_cli(bench: ModuleType) -> None:
    assert bench.overhead_ratio(52.0, 12.0, 2.0) == 20.0
    assert bench.overhead_ratio(52.0, None, 2.0) is None
    assert bench.overhead_ratio(52.0, 12.0, 0.0) is None


def test_summarise_adds_sums_ratio_and_both_targets(bench: ModuleType) -> None:
    measured = {"days": 14, "rows": 2000, "days_per_min": 6.0, "noop_days_per_min": 12.0, "cli_s_per_day": 2.0,
                "per_task": {"plan": 3.0, "score": 5.0}, "noop_per_task": {"plan": 1.5, "score": 1.5}}
    baseline = {"days_per_min": 1.5, "task_s_per_day": 52.0, "per_task": {"plan": 12.1}, "commit": "abc"}
    out = bench.summarise(measured, baseline)
    assert (out["task_s_per_day"], out["noop_task_s_per_day"], out["overhead_ratio"]) == (8.0, 3.0, 2.5)
    assert out["targets"]["task_s_per_day"]["met"] is True  # 8 <= 2 x 3 + 2
    assert out["targets"]["days_per_min_vs_baseline"] == {
        "value": 4.0, "target": ">= 3", "met": True,
        "what": "backfill days per minute at least 3x the baseline's (1.5)"}
    slow = bench.summarise({**measured, "days_per_min": 3.0, "per_task": {"plan": 9.0}}, baseline)
    assert slow["targets"]["task_s_per_day"]["met"] is False  # 9 > 8
    assert slow["targets"]["days_per_min_vs_baseline"]["met"] is False  # 2x


def test_targets_are_not_measured_without_noop_or_baseline(bench: ModuleType) -> None:
    out = bench.summarise({"days": 14, "days_per_min": 2.0, "cli_s_per_day": 2.0, "per_task": {"plan": 3.0},
                           "noop_per_task": None}, None)
    assert out["noop_task_s_per_day"] is None and out["overhead_ratio"] is None
    assert {v["met"] for v in out["targets"].values()} == {None}
    report = bench.format_report(out)
    assert "not measured" in report and "plan" in report


def test_report_lists_every_task_of_ours_noop_and_baseline(bench: ModuleType) -> None:
    out = bench.summarise({"days": 2, "rows": 100, "days_per_min": 4.0, "noop_days_per_min": 8.0,
                           "cli_s_per_day": 1.0, "per_task": {"plan_and_shards": 2.0},
                           "noop_per_task": {"plan_and_shards": 0.5}},
                          {"days_per_min": 1.0, "per_task": {"plan": 12.1, "list_shards": 1.0}})
    rows = {line.split()[0]: line.split()[1:] for line in bench.format_report(out).splitlines()[2:6]}
    assert rows["plan"] == ["-", "-", "12.10"]
    assert rows["plan_and_shards"] == ["2.00", "0.50", "-"]
    assert "target days_per_min_vs_baseline: 4.00 >= 3 -> MET" in bench.format_report(out)


def test_baseline_file_round_trips_and_options_default_to_the_issue(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    assert bench.load_baseline(path) is None
    path.write_text(json.dumps({"commit": "abc", "date": "2026-11-30", "machine": {},
                                "backfill": {"days_per_min": 1.5, "per_task": {"plan": 12.1}}}))
    assert bench.load_baseline(path) == {"days_per_min": 1.5, "per_task": {"plan": 12.1}, "commit": "abc",
                                         "date": "2026-11-30"}
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.backfill_days, args.backfill_rows, args.backfill_baseline) == (14, 2000, bench.BASELINE_FILE)
    prefixed = argparse.ArgumentParser()
    bench.add_arguments(prefixed, prefix="backfill-")
    assert prefixed.parse_args(["--backfill-days", "3"]).backfill_days == 3
