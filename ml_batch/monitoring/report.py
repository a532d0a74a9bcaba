"""A self-contained HTML page per model and day from a drift check.

The page needs nothing but a browser: CSS is inline and the charts are inline SVG drawn here (horizontal
bars, reference vs current share per quantile bin or category), so it opens on a machine without internet
and references no external script, style sheet or font. Every piece of text that comes from data (model
and feature names, categories, bin labels) is escaped. The page holds no timestamp: the same check gives
the same bytes, so a re-run task rewrites an identical file.

A feature with no value on the day is named under the verdict, with why it counts as drifted (or not); its
section shows the statistics that could be computed. Each feature's null share and, for a numeric one,
whether its values became constant, are in its section's facts and in the table (`null share` rows, flagged
but reported only: see `ml_batch.monitoring.rows`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ml_batch.files import write_atomic
from ml_batch.monitoring.drift import DriftResult
from ml_batch.monitoring.inputs import CLASS_PREFIX, MISSING, OTHER, PREDICTED_CLASS, SCORE, UNSEEN, is_class_feature
from ml_batch.monitoring.rows import REPORTED_ONLY, DriftRow, feature_drifted, vanished
from ml_batch.monitoring.support import out_of_support_text

# A model name becomes a folder name: no separators, no leading dot (spec names are stricter still).
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_MAX_BARS = 40
_MAX_LABEL = 28
_MAX_UNSEEN_SHOWN = 20
_DISPLAY = {UNSEEN: "(unseen categories)", MISSING: "(missing)", OTHER: "(other, pooled)"}
_TEST_NAMES = {"psi": "PSI", "ks": "KS D", "js": "JS distance", "chi2": "chi-square", "null_share": "null share",
               "wasserstein": "Wasserstein (sd)", "out_of_support": "out of support",
               "multivariate": "PCA reconstruction"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1000px;
color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #d9e2ec}
h3{margin-bottom:.3rem}.meta{color:#52606d;margin-top:0}
.verdict{padding:.6rem 1rem;border-radius:6px;margin:.5rem 0;font-weight:600}
.verdict.drift{background:#fde8e8;color:#9b1c1c;border:1px solid #f8b4b4}
.verdict.ok{background:#e3f9e5;color:#0e6027;border:1px solid #a8e6b0}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:.3rem .5rem;border-bottom:1px solid #e4e7eb;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fde8e8}tr.drifted td.flag{color:#9b1c1c;font-weight:700}
.badge{font-size:.75rem;padding:.1rem .4rem;border-radius:4px;vertical-align:middle;font-weight:600}
.badge.drift{background:#f8b4b4;color:#771d1d}.badge.ok{background:#c6f7d0;color:#0e6027}
.note{color:#52606d;font-size:.85rem}.facts{color:#3e4c59;font-size:.9rem;margin:.2rem 0 .5rem}
svg text{font-size:11px;fill:#1f2933}svg .ref{fill:#9aa5b1}svg .cur{fill:#2f80ed}svg .cur.drift{fill:#e02424}
a{color:#1a56db;text-decoration:none}
"""


def render_html(
    model: str,
    version: int,
    day: datetime.date,
    result: DriftResult,
    profile: Mapping[str, Any],
    *,
    window: Mapping[str, Any] | None = None,
    sustained: Mapping[str, Any] | None = None,
    estimates: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The drift report of one model version and day as a self-contained HTML page.

    Args:
        model: Model name.
        version: Model version the batch was scored with (the profile's version).
        day: The day of the batch.
        result: The drift check's result.
        profile: The version's reference profile (for feature types and the reference row count).
        window: The verdict over the pooled last `drift.window_days` days (`daily.WindowVerdict.as_detail()`).
        sustained: The `drift.alert_after` status (K of the last M days drifted, and which days;
            `daily.Sustained.as_detail()`).
        estimates: The day's label-free performance estimates (`performance` records of kind "estimated").

    Returns:
        The HTML page.
    """
    named = list(dict.fromkeys(row.feature for row in result.rows))
    features = [name for name in named if name != SCORE and not is_class_feature(name)]
    predictions = [name for name in named if is_class_feature(name)]
    types = {name: str(profile.get("features", {}).get(name, {}).get("type", "")) for name in features}
    types[SCORE] = "score"
    types.update({name: "categorical" if name == PREDICTED_CLASS else "class probability" for name in predictions})
    anchors = {name: f"f{index}" for index, name in enumerate([*features, SCORE, *predictions])}
    title = f"Drift report: {model} v{version}, {day:%Y-%m-%d}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">{result.n_rows:,} rows checked against a reference of '
        f"{int(profile.get('n_rows', 0)):,} training rows.</p>",
        _verdicts(result),
        _window_verdicts(window, sustained),
        _estimates(estimates),
        "</header>",
        _table(result, types, anchors),
        "<section><h2>Score distribution</h2>",
        _feature_section(SCORE, "score", result.feature_rows(SCORE), anchors[SCORE]),
        *(_feature_section(name, types[name], result.feature_rows(name), anchors[name]) for name in predictions),
        "</section><section><h2>Features</h2>",
        *(_feature_section(name, types[name], result.feature_rows(name), anchors[name]) for name in features),
        "</section></body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(html: str, folder: Path, model: str, day: datetime.date) -> Path:
    """Write a report to `folder/model/YYYY-MM-DD.html` atomically (`ml_batch.files.write_atomic`).

    Args:
        html: The page, from `render_html`.
        folder: Root folder of the reports.
        model: Model name (a folder under `folder`).
        day: The day of the batch.

    Returns:
        The path written.

    Raises:
        ValueError: If `model` is not usable as a folder name.
    """
    if not _SAFE_NAME_RE.match(model) or ".." in model:
        raise ValueError(
            f"model name {model!r} cannot be a report folder: expected letters, digits, '_', '-' or '.', "
            "not starting with '.' or '-'"
        )
    target = Path(folder) / model / f"{day:%Y-%m-%d}.html"
    # A reader never sees a half-written page (temp file, fsync, rename); the mode follows the umask.
    write_atomic(target, html)
    return target


def _verdicts(result: DriftResult) -> str:
    drifted = len(result.drifted_features)
    weighted = "" if result.weighted_share is None else f"; importance-weighted {result.weighted_share:.0%}"
    counts = (
        f"{drifted} of {result.n_features} features drifted ({result.share:.0%}{weighted}; "
        f"dataset drift from {result.share_threshold:.0%} of the {result.share_basis} share; "
        f"thresholds {result.threshold_source})"
    )
    if result.dataset_drift:
        dataset = f'<div class="verdict drift">Dataset drift: YES. {_e(counts)}</div>'
    else:
        dataset = f'<div class="verdict ok">No dataset drift. {_e(counts)}</div>'
    if result.drifted_features:
        dataset += f'<p class="meta">Drifted: {_e(", ".join(result.drifted_features))}</p>'
    dataset += "".join(f'<p class="meta">{_e(_no_values_note(name, result.feature_rows(name)))}</p>'
                       for name in result.no_values)
    if result.multivariate_drift:
        dataset += ('<p class="meta">Multivariate drift: YES. The features move together differently than in '
                    'training.</p>')
    if result.out_of_support:
        dataset += ('<div class="verdict drift">Out of support: '
                    + _e("; ".join(out_of_support_text(entry) for entry in result.out_of_support))
                    + '. The model never saw such values: its scores there are extrapolation.</div>')
    dataset += "".join(f'<p class="meta">Not checked: {_e(note)}.</p>' for note in result.notes)
    if result.score_drift:
        score = '<div class="verdict drift">Score drift: YES. The prediction distribution changed.</div>'
    else:
        score = '<div class="verdict ok">No score drift.</div>'
    if result.class_drift is not None:
        what = "Class drift: YES. The predicted-class mix or a class's probabilities changed." if result.class_drift \
            else "No class drift."
        score += f'<div class="verdict {"drift" if result.class_drift else "ok"}">{_e(what)}</div>'
    if result.unseen_classes:
        score += (f'<p class="meta">Predicted on the day but never on the reference holdout: '
                  f'{_e(", ".join(result.unseen_classes))}.</p>')
    return dataset + score


def _no_values_note(name: str, rows: Sequence[DriftRow]) -> str:
    """Why a feature without values on the day counts as drifted, or does not."""
    if vanished(rows):
        share = next(float(row.detail["reference_null_share"]) for row in rows if row.test == "null_share")
        return (f"{name}: no values on the day, where the reference had {1 - share:.1%} non-null: counted as "
                "drifted (a feature that vanished is a change of its distribution).")
    return f"{name}: no values on the day, as in the reference: not counted as drifted."


def _estimates(estimates: Sequence[Mapping[str, Any]]) -> str:
    if not estimates:
        return ""
    if all(r.get("detail", {}).get("available") is False for r in estimates):
        why = "; ".join(dict.fromkeys(str(note) for r in estimates for note in r.get("detail", {}).get("notes") or []))
        return f'<p class="facts">Estimated performance without labels: unavailable ({_e(why)}).</p>'
    cells = ", ".join(
        f"{str(r['metric']).removeprefix('estimated_')} {_number(r.get('value'), '.4f')} (v{int(r['model_version'])})"
        for r in estimates)
    assumption = str(estimates[0].get("detail", {}).get("assumption", ""))
    notes = dict.fromkeys(str(note) for r in estimates for note in r.get("detail", {}).get("notes") or [])
    said = "".join(f" {_e(note[:1].upper() + note[1:])}." for note in notes)
    reasons = dict.fromkeys(str(reason) for r in estimates
                            for reason in r.get("detail", {}).get("unreliable_reasons") or [])
    trust = (f' <b>Not reliable</b>: {_e("; ".join(reasons))}.' if reasons else "")
    return (f'<p class="facts">Estimated performance without labels: {_e(cells)}.{said}{trust} '
            f'<span class="note">Assumes {_e(assumption)}; realized metrics follow when the labels arrive.</span></p>')


def _window_verdicts(window: Mapping[str, Any] | None, sustained: Mapping[str, Any] | None) -> str:
    parts = []
    if window is not None and int(window.get("days", 1)) > 1:
        text = (f"Window of the last {int(window['days'])} days ({int(window.get('days_with_rows', 0))} with rows, "
                f"{int(window.get('rows', 0)):,} rows pooled): {len(window.get('drifted_features', []))} features "
                f"drifted ({float(window.get('share', 0)):.0%})")
        css = "drift" if window.get("dataset_drift") else "ok"
        verdict = "dataset drift" if window.get("dataset_drift") else "no dataset drift"
        parts.append(f'<div class="verdict {css}">{_e(text)}: {verdict}.</div>')
    if sustained is not None:
        days = list(sustained.get("drifted_days", []))
        text = (f"{len(days)} of the last {int(sustained['of'])} days drifted; the alert (and retraining) needs "
                f"{int(sustained['days'])}" + (f": {', '.join(map(str, days))}" if days else ""))
        if sustained.get("sustained_drift"):
            parts.append(f'<div class="verdict drift">Sustained drift: YES. {_e(text)}.</div>')
        else:
            parts.append(f'<div class="verdict ok">No sustained drift. {_e(text)}.</div>')
    return "".join(parts)


def _table(result: DriftResult, types: Mapping[str, str], anchors: Mapping[str, str]) -> str:
    lines = [
        "<section><h2>Statistics</h2><table><thead><tr><th>Feature</th><th>Type</th><th>Test</th>"
        "<th>Value</th><th>Threshold</th><th>p-value</th><th>Drifted</th></tr></thead><tbody>"
    ]
    for row in result.rows:
        css = ' class="drifted"' if row.drifted else ""
        flag = "n/a (reported only)" if row.threshold is None else ("YES" if row.drifted else "no")
        if row.threshold is not None and row.test in REPORTED_ONLY:
            flag += " (reported only)"
        lines.append(
            f'<tr{css}><td><a href="#{anchors[row.feature]}">{_e(row.feature)}</a></td>'
            f"<td>{_e(types.get(row.feature, ''))}</td><td>{_e(_TEST_NAMES.get(row.test, row.test))}</td>"
            f'<td class="num">{_number(row.value, ".4f")}</td><td class="num">{_number(row.threshold, ".3g")}</td>'
            f'<td class="num">{_number(row.p_value, ".3g")}</td><td class="flag">{flag}</td></tr>'
        )
    lines.append(
        "</tbody></table><p class='note'>Drift is decided on effect sizes (PSI, KS D, JS distance) against "
        "their thresholds; a null share is flagged when it rose by more than its threshold's margin over the "
        "reference's share, but decides nothing (PSI already counts the nulls). A calibrated threshold is the "
        "largest value (or the chosen quantile) the reference's own days showed against the rest of the "
        "reference, and a value drifts only beyond it; a fixed one is "
        "the spec's. p-values are shown but decide nothing: with many rows every small change has "
        "p close to 0.</p></section>"
    )
    return "\n".join(lines)


def _feature_section(name: str, kind: str, rows: Sequence[DriftRow], anchor: str) -> str:
    drifted = feature_drifted(rows)
    badge = '<span class="badge drift">drifted</span>' if drifted else '<span class="badge ok">stable</span>'
    heading = {SCORE: "Score (prediction)", PREDICTED_CLASS: "Predicted class"}.get(
        name, f"P({name.removeprefix(CLASS_PREFIX)})" if is_class_feature(name) else name)
    parts = [f'<article id="{anchor}"><h3>{_e(heading)} {badge}</h3>']
    psi_row = next((row for row in rows if row.test == "psi"), None)
    if psi_row is None:
        return parts[0] + "<p class='note'>No statistics.</p></article>"
    detail = psi_row.detail
    parts.append(f'<p class="facts">{_e(_facts(kind, rows))}</p>')
    labels = [_DISPLAY.get(str(label), str(label)) for label in detail.get("labels", [])]
    caption = f"{heading}: reference vs current share per {'category' if kind == 'categorical' else 'bin'}"
    parts.append(_bars_svg(labels, detail.get("reference", []), detail.get("current", []), caption, drifted))
    unseen = detail.get("unseen") or {}
    if unseen:
        shown = list(unseen.items())[:_MAX_UNSEEN_SHOWN]
        items = "".join(f"<li>{_e(str(category))}: {int(count):,} rows</li>" for category, count in shown)
        more = detail.get("unseen_categories", len(unseen)) - len(shown)
        suffix = f"<li>... and {more:,} more</li>" if more > 0 else ""
        parts.append(f'<p class="facts">Categories not in the reference:</p><ul>{items}{suffix}</ul>')
    parts.append("</article>")
    return "\n".join(parts)


def _facts(kind: str, rows: Sequence[DriftRow]) -> str:
    detail = next(row.detail for row in rows if row.test == "psi")
    nulls = next((row.detail for row in rows if row.test == "null_share"), detail)
    facts = [f"{detail.get('current_count', 0):,} rows (reference {detail.get('reference_count', 0):,})"]
    if detail.get("status"):
        facts.insert(0, f"{detail['status']} on the day (no KS: nothing to compare)" if kind != "categorical"
                     else f"{detail['status']} on the day")
    if kind == "categorical":
        total = detail.get("unseen_total", 0)
        facts.append(f"unseen categories: {detail.get('unseen_categories', 0)} ({total:,} rows)")
    else:
        facts.append(
            f"mean {_number(detail.get('reference_mean'), '.4g')} → {_number(detail.get('current_mean'), '.4g')}"
        )
        facts.append(f"std {_number(detail.get('reference_std'), '.4g')} → {_number(detail.get('current_std'), '.4g')}")
        if nulls.get("became_constant"):
            facts.append("constant on the day (the reference was not)")
    facts.append(f"null {_percent(nulls.get('reference_null_share'))} → {_percent(nulls.get('current_null_share'))}")
    return "; ".join(facts)


def _bars_svg(
    labels: Sequence[str], reference: Sequence[float], current: Sequence[float], caption: str, drifted: bool
) -> str:
    """Horizontal bars: per label, the reference share (grey) above the current share (blue, red if drifted)."""
    entries = list(zip(labels, map(float, reference), map(float, current), strict=True))
    if len(entries) > _MAX_BARS:
        # Keep the categories that weigh most on either side (in their order) and pool the rest.
        keep_labels = {_DISPLAY[UNSEEN], _DISPLAY[MISSING]}
        ranked = sorted(entries, key=lambda entry: -max(entry[1], entry[2]))
        keep_labels.update(label for label, _, _ in ranked[: _MAX_BARS - 3])
        kept = [entry for entry in entries if entry[0] in keep_labels]
        rest = [entry for entry in entries if entry[0] not in keep_labels]
        kept.append((f"({len(rest)} more, pooled)", sum(e[1] for e in rest), sum(e[2] for e in rest)))
        entries = kept
    label_w, bar_w, value_w, row_h, top = 190, 330, 140, 22, 26
    width = label_w + bar_w + value_w
    height = top + row_h * len(entries) + 6
    scale = max([1e-12, *(max(ref, cur) for _, ref, cur in entries)])
    current_css = "cur drift" if drifted else "cur"
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(caption)}"><title>{_e(caption)}</title>',
        f'<rect class="ref" x="{label_w}" y="6" width="12" height="10"/>'
        f'<text x="{label_w + 16}" y="15">reference</text>'
        f'<rect class="{current_css}" x="{label_w + 90}" y="6" width="12" height="10"/>'
        f'<text x="{label_w + 106}" y="15">current</text>',
    ]
    for index, (label, ref, cur) in enumerate(entries):
        y = top + index * row_h
        short = label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 1] + "…"
        parts.append(
            f"<g><title>{_e(label)}: reference {_percent(ref)}, current {_percent(cur)}</title>"
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_e(short)}</text>'
            f'<rect class="ref" x="{label_w}" y="{y + 3}" width="{ref / scale * bar_w:.1f}" height="7"/>'
            f'<rect class="{current_css}" x="{label_w}" y="{y + 11}" width="{cur / scale * bar_w:.1f}" height="7"/>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 14}">{_percent(ref)} / {_percent(cur)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _e(text: str) -> str:
    return escape(text, quote=True)


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else _e(format(value, spec))


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"
