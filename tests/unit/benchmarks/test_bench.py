"""Pure helpers of benchmarks/bench.py. The benchmark itself runs with `make bench`; nothing here times anything."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.support.scripts import load_script

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(BENCH, "ml_batch_bench")


def _measured(**overrides: object) -> dict[str, object]:
    results: dict[str, object] = {
        "rows": 1_000_000, "small_rows": 100_000, "naive_s": 48.0, "floor_s": 6.0, "ours_s": 7.5,
        "ours_small_s": 1.0, "peak_rss_mb_large": 600.0, "peak_rss_mb_small": 420.0, "validate_s": 1.2,
        "drift_s": 0.6, "sharded_1_s": 7.5, "sharded_2_s": 5.0, "day_check_s": 0.3,
        "source_reads": {"day": "2026-03-03", "day_rows": 100_000, "by_shards": {
            "1": {"rows_read": 100_000, "day_rows": 100_000, "plan_s": 0.2},
            "2": {"rows_read": 100_000, "day_rows": 100_000, "plan_s": 0.3},
            "4": {"rows_read": 105_000, "day_rows": 100_000, "plan_s": 0.3}}},
    }
    results.update(overrides)
    return results


def test_ratio_is_none_without_both_numbers(bench: ModuleType) -> None:
    assert bench.ratio(3.0, 2.0) == 1.5
    assert bench.ratio(None, 2.0) is None
    assert bench.ratio(3.0, None) is None
    assert bench.ratio(3.0, 0.0) is None


def test_summarise_derives_the_issue_ratios(bench: ModuleType) -> None:
    out = bench.summarise(_measured())
    assert out["naive_over_ours"] == 6.4
    assert out["ours_over_floor"] == 1.25
    assert out["rss_ratio"] == pytest.approx(600 / 420, abs=1e-3)
    assert out["checks_share"] == 0.24
    assert out["drift_share"] == 0.08
    assert out["sharded_speedup"] == 1.5
    assert out["ours_rows_per_s"] == pytest.approx(133_333.3)
    assert out["ours_small_rows_per_s"] == 100_000.0
    assert out["source_read_ratio_max"] == 1.05
    assert out["day_check_share"] == 0.04
    assert all(verdict["met"] for verdict in out["targets"].values())


def test_summarise_flags_each_missed_target(bench: ModuleType) -> None:
    reads = {"day": "2026-03-03", "day_rows": 100, "by_shards": {
        "1": {"rows_read": 100, "day_rows": 100, "plan_s": 0.1},
        "2": {"rows_read": 300, "day_rows": 100, "plan_s": 0.1}}}
    out = bench.summarise(_measured(ours_s=10.0, peak_rss_mb_large=700.0, sharded_2_s=7.4, source_reads=reads,
                                    day_check_s=0.6, drift_s=2.6, validate_s=0.1))
    met = {name: verdict["met"] for name, verdict in out["targets"].items()}
    assert met == {"naive_over_ours": False, "ours_over_floor": False, "rss_ratio": False,
                   "checks_share": False, "drift_share": False, "sharded_speedup": False,
                   "source_read_ratio_max": False, "day_check_share": False}
    assert out["source_read_ratio_max"] == 3.0


def test_skipped_naive_run_leaves_its_target_unmeasured(bench: ModuleType) -> None:
    results = _measured()
    del results["naive_s"]
    verdict = bench.summarise(results)["targets"]["naive_over_ours"]
    assert verdict["value"] is None and verdict["met"] is None


def test_generated_rows_fall_inside_the_spec_bounds(bench: ModuleType) -> None:
    spec = bench.bench_spec("bench")
    table, labels = bench.make_rows(5_000, dt.date(2026, 3, 2), 101, seed=0)
    assert spec.feature_names == bench.FEATURES and len(spec.features) == 20
    assert table.column_names == ["id", "event_time", *bench.FEATURES]
    assert table.column("id").to_pylist()[:2] == [101, 102]
    times = table.column("event_time").to_pylist()
    assert {t.date() for t in times} == {dt.date(2026, 3, 2)}
    for feature in spec.features:
        values = table.column(feature.name).to_numpy()
        assert feature.min < values.min() and values.max() < feature.max
    assert set(np.unique(labels)) == {0, 1}


def test_report_lists_every_target(bench: ModuleType) -> None:
    results = bench.summarise({**_measured(), "machine": {"summary": "test box"}, "checks": {}})
    report = bench.format_report(results)
    for _, _, _, description in bench.TARGETS:
        assert description in report
    assert "correctness checks: all passed" in report
