"""Line charts as inline SVG (no script, no external file): days on x, values on y.

Drawn to be read at a glance: the y-axis shows its range in round ticks and never spans less than
`min_span(values)` (so 0.895 -> 0.921 does not fill the chart like a crash), a reference line (a floor, a
threshold) is always inside the range, and a line breaks where days are missing (a gap stays a gap: the
path moves, it does not draw across). `line_chart` is a page's chart with a legend, `trend_chart` a small one
per drift statistic.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from html import escape

_COLOURS = ("#2f80ed", "#e02424", "#0e9f6e", "#9061f9", "#ff8a4c", "#52606d")
_AXIS, _REFERENCE, _FLAGGED = "#9aa5b1", "#7b8794", "#c81e1e"
_DASH = ' stroke-dasharray="5 3"'
#: Consecutive points further apart than this are not joined: the days between them have no value.
MAX_STEP = dt.timedelta(days=1)
#: The least span of a y-axis, as a share of the largest value's magnitude (and at least `_MIN_SPAN_FLOOR`).
_MIN_SPAN_SHARE, _MIN_SPAN_FLOOR = 0.1, 0.1

Point = tuple[dt.date, float]


@dataclass(frozen=True)
class Reference:
    """A horizontal line across a chart (a floor, a threshold), labelled e.g. `floor 0.7`."""

    label: str
    value: float


@dataclass(frozen=True)
class _Frame:
    """Where a chart's plot area is and which days and values it spans."""

    left: float
    top: float
    width: float
    height: float
    first: dt.date
    days: int
    low: float
    high: float

    def x(self, day: dt.date) -> float:
        return self.left + self.width * ((day - self.first).days / self.days if self.days else 0.5)

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - (value - self.low) / (self.high - self.low))


def min_span(values: Sequence[float]) -> float:
    """The least span of a y-axis over `values`: a tenth of the largest magnitude, and at least 0.1."""
    return max(_MIN_SPAN_FLOOR, _MIN_SPAN_SHARE * max((abs(v) for v in values), default=0.0))


def y_ticks(values: Sequence[float]) -> list[float]:
    """The y-axis ticks over `values` (non-empty): 3 to 7 round numbers whose ends hold every value and span
    at least `min_span(values)`."""
    low, high = min(values), max(values)
    least = min_span(values)
    if high - low < least:
        middle = (low + high) / 2
        low, high = middle - least / 2, middle + least / 2
    step = _round_step((high - low) / 4)
    start, stop = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(start, stop + 1)]


def _round_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `raw`."""
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw - 1e-12)


def _tick_text(value: float, step: float) -> str:
    return f"{value:.{max(0, math.ceil(-math.log10(step) - 1e-9))}f}"


def segments(points: Sequence[Point], max_step: dt.timedelta = MAX_STEP) -> list[list[Point]]:
    """`points` sorted by day and split where consecutive days are more than `max_step` apart."""
    runs: list[list[Point]] = []
    for point in sorted(points):
        if runs and point[0] - runs[-1][-1][0] <= max_step:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _path(frame: _Frame, points: Sequence[Point], max_step: dt.timedelta) -> str:
    """An SVG path's `d`: one `M` per run of consecutive days, so a gap is not drawn across."""
    return " ".join("M" + " L".join(f"{frame.x(d):.1f},{frame.y(v):.1f}" for d, v in run)
                    for run in segments(points, max_step))


def _axes(frame: _Frame, ticks: Sequence[float], last: dt.date, *, font: int, every: int = 1) -> list[str]:
    """The axes, a grid line per tick (every `every`-th and the last labelled) and the first and last day."""
    bottom, right = frame.top + frame.height, frame.left + frame.width
    step = ticks[1] - ticks[0]
    parts = [f'<line x1="{frame.left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{_AXIS}"/>',
             f'<line x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" y2="{bottom}" stroke="{_AXIS}"/>']
    for index, tick in enumerate(ticks):
        y = frame.y(tick)
        parts.append(f'<line x1="{frame.left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        if index % every == 0 or index == len(ticks) - 1:
            parts.append(f'<text class="y-tick" x="{frame.left - 4}" y="{y + font / 3:.1f}" text-anchor="end" '
                         f'font-size="{font}">{_tick_text(tick, step)}</text>')
    for day in dict.fromkeys((frame.first, last)):
        parts.append(f'<text x="{frame.x(day):.1f}" y="{bottom + font + 4}" text-anchor="middle" '
                     f'font-size="{font}">{day.isoformat()}</text>')
    return parts


def _frame(points: Sequence[Point], ticks: Sequence[float], box: tuple[float, float, float, float]) -> _Frame:
    days = sorted({d for d, _ in points})
    left, top, width, height = box
    return _Frame(left, top, width, height, days[0], (days[-1] - days[0]).days, ticks[0], ticks[-1])


def _reference_line(frame: _Frame, reference: Reference, *, font: int, label: bool) -> str:
    y = frame.y(reference.value)
    text = (f'<text x="{frame.left + frame.width - 2}" y="{y - 3:.1f}" text-anchor="end" font-size="{font}" '
            f'fill="{_REFERENCE}">{escape(reference.label)}</text>') if label else ""
    return (f'<line class="reference" x1="{frame.left}" y1="{y:.1f}" x2="{frame.left + frame.width}" y2="{y:.1f}" '
            f'stroke="{_REFERENCE}" stroke-dasharray="6 4"><title>{escape(reference.label)}</title></line>{text}')


def line_chart(title: str, series: Mapping[str, Sequence[Point]], *, reference: Reference | None = None,
               dashed: Collection[str] = (), max_step: dt.timedelta = MAX_STEP) -> str:
    """An SVG chart of `series` (label -> (day, value) points), one line each, with a legend.

    Args:
        title: The chart's accessible name.
        series: The lines; each point is a dot whose title is `<label> <day>: <value>`.
        reference: A horizontal line (the floor), inside the y-range and named in the legend.
        dashed: Labels of the series drawn dashed (estimates, beside the solid realized lines).
        max_step: Points further apart are not joined (`segments`).

    Returns:
        The `<svg>` element, or "" when there is no point.
    """
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    width, height, legend = 820, 260, 190
    values = [v for _, v in points] + ([reference.value] if reference is not None else [])
    ticks = y_ticks(values)
    frame = _frame(points, ticks, (56, 14, width - 56 - legend, height - 14 - 34))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="line-chart" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(title)}">', *_axes(frame, ticks, max(d for d, _ in points), font=11)]
    labels: list[tuple[str, str, bool]] = []
    if reference is not None:
        parts.append(_reference_line(frame, reference, font=11, label=False))
        labels.append((reference.label, _REFERENCE, True))
    for index, (label, line) in enumerate(series.items()):
        colour, dash = _COLOURS[index % len(_COLOURS)], label in dashed
        parts.append(f'<path class="series" data-series="{escape(label)}" fill="none" stroke="{colour}" '
                     f'stroke-width="2"{_DASH if dash else ""} '
                     f'd="{_path(frame, line, max_step)}"/>')
        parts += [f'<circle cx="{frame.x(d):.1f}" cy="{frame.y(v):.1f}" r="3" fill="{colour}"><title>'
                  f'{escape(label)} {d.isoformat()}: {v:.4f}</title></circle>' for d, v in sorted(line)]
        labels.append((label, colour, dash))
    for index, (label, colour, dash) in enumerate(labels):
        y, x = 14 + 12 + 16 * index, width - legend + 12
        parts.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{colour}" stroke-width="2"'
                     f'{_DASH if dash else ""}/>'
                     f'<text x="{x + 24}" y="{y}" font-size="11">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(title: str, points: Sequence[tuple[dt.date, float, bool]], *, reference: Reference | None = None,
                max_step: dt.timedelta = MAX_STEP) -> str:
    """A small SVG chart of one statistic over days: (day, value, flagged) points, a flagged one (drifted) a
    red dot, the `reference` (the threshold) a dashed line; the y-range holds 0. "" when there is no point."""
    if not points:
        return ""
    width, height = 260, 110
    line = [(d, v) for d, v, _ in points]
    values = [0.0, *(v for _, v in line)] + ([reference.value] if reference is not None else [])
    ticks = y_ticks(values)
    frame = _frame(line, ticks, (40, 16, width - 40 - 8, height - 16 - 24))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend-chart" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="4" y="11" font-size="11" font-weight="600">{escape(title)}</text>',
             *_axes(frame, ticks, max(line)[0], font=9, every=2 if len(ticks) > 4 else 1)]
    if reference is not None:
        parts.append(_reference_line(frame, reference, font=9, label=True))
    parts.append(f'<path class="series" fill="none" stroke="{_COLOURS[0]}" stroke-width="1.5" '
                 f'd="{_path(frame, line, max_step)}"/>')
    parts += [f'<circle class="{"flagged" if flagged else "point"}" cx="{frame.x(d):.1f}" cy="{frame.y(v):.1f}" '
              f'r="{3 if flagged else 2}" fill="{_FLAGGED if flagged else _COLOURS[0]}"><title>{d.isoformat()}: '
              f'{v:.4f}{" (drifted)" if flagged else ""}</title></circle>' for d, v, flagged in sorted(points)]
    parts.append("</svg>")
    return "".join(parts)
