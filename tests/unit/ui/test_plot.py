"""The pages' charts (`ml_batch.ui.plot`): a y-range that does not exaggerate, a reference line inside it, gaps
left open."""

from __future__ import annotations

import datetime as dt
import re

from ml_batch.ui.plot import Reference, line_chart, segments, trend_chart, y_ticks

DAY = dt.date(2026, 5, 1)


def _day(offset: int) -> dt.date:
    return DAY + dt.timedelta(days=offset)


def test_a_small_change_does_not_fill_the_y_axis() -> None:
    ticks = y_ticks([0.895, 0.921])
    assert ticks[0] <= 0.895 and ticks[-1] >= 0.921 and ticks[-1] - ticks[0] >= 0.1, ticks
    assert 3 <= len(ticks) <= 7


def test_the_y_axis_holds_the_floor_and_scales_with_the_values() -> None:
    assert y_ticks([0.9, 0.92, 0.6])[0] <= 0.6
    ticks = y_ticks([30.0, 31.0])  # an error metric (mae): a tenth of the value, not 0.1
    assert ticks[-1] - ticks[0] >= 3.1 and ticks[0] <= 30 <= 31 <= ticks[-1], ticks


def test_points_more_than_a_day_apart_are_separate_segments() -> None:
    points = [(_day(25), 0.9), (_day(0), 0.8), (_day(1), 0.85)]
    assert segments(points) == [[(_day(0), 0.8), (_day(1), 0.85)], [(_day(25), 0.9)]]


def test_a_line_chart_breaks_its_path_at_a_gap_and_draws_the_floor() -> None:
    svg = line_chart("roc_auc", {"v1 published": [(_day(0), 0.9), (_day(1), 0.91), (_day(25), 0.92)],
                                 "v1 estimated": [(_day(0), 0.88)]},
                     reference=Reference("floor 0.7", 0.7), dashed={"v1 estimated"})
    [published] = re.findall(r'data-series="v1 published"[^>]* d="([^"]*)"', svg)
    assert published.count("M") == 2 and published.count("L") == 1
    assert re.search(r'data-series="v1 estimated"[^>]*stroke-dasharray', svg)
    assert "<title>floor 0.7</title>" in svg and '<text class="y-tick"' in svg
    labels = [float(t) for t in re.findall(r'class="y-tick"[^>]*>([^<]*)<', svg)]
    assert labels[0] <= 0.7 and labels[-1] >= 0.92


def test_a_trend_chart_marks_drifted_days_and_its_threshold() -> None:
    svg = trend_chart("x1 psi", [(_day(0), 0.02, False), (_day(1), 0.4, True)], reference=Reference("threshold 0.2",
                                                                                                   0.2))
    assert svg.count('class="flagged"') == 1 and f"<title>{_day(1)}: 0.4000 (drifted)</title>" in svg
    assert "<title>threshold 0.2</title>" in svg
    assert trend_chart("x1 psi", []) == "" and line_chart("roc_auc", {}) == ""
