"""A line chart as inline SVG: one line per series, days on x, values on y (no script, no external file)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape

_WIDTH, _HEIGHT = 760, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 150, 16, 34
_COLOURS = ("#2f80ed", "#e02424", "#0e9f6e", "#9061f9", "#ff8a4c", "#52606d")


def line_chart(title: str, series: Mapping[str, Sequence[tuple[dt.date, float]]]) -> str:
    """An SVG line chart of `series` (label -> (day, value) points); each point carries its value as a title."""
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    days = sorted({d for d, _ in points})
    low, high = min(v for _, v in points), max(v for _, v in points)
    if high - low < 1e-9:
        low, high = low - 0.05, high + 0.05
    span_days = max(1, (days[-1] - days[0]).days)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x(day: dt.date) -> float:
        return _LEFT + plot_w * ((day - days[0]).days / span_days if len(days) > 1 else 0.5)

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - (value - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" role="img" '
             f'aria-label="{escape(title)}">',
             f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" stroke="#9aa5b1"/>',
             f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}" stroke="#9aa5b1"/>']
    for value in (low, (low + high) / 2, high):
        parts.append(f'<text x="{_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3f}</text>')
    for day in (days[0], days[-1]) if len(days) > 1 else (days[0],):
        parts.append(f'<text x="{x(day):.1f}" y="{_HEIGHT - 12}" text-anchor="middle">{day.isoformat()}</text>')
    for index, (label, values) in enumerate(series.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        ordered = sorted(values)
        path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in ordered)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts += [f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"><title>{escape(label)} '
                  f'{d.isoformat()}: {v:.4f}</title></circle>' for d, v in ordered]
        legend_y = _TOP + 14 + 16 * index
        parts.append(f'<rect x="{_WIDTH - _RIGHT + 12}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{_WIDTH - _RIGHT + 28}" y="{legend_y}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
