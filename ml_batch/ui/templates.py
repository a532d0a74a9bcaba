"""The pages' Jinja templates (autoescaped): plain server-rendered HTML with inline CSS, no script."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import jinja2
from pydantic import TypeAdapter

from ml_batch.model.validity import excluded_text
from ml_batch.monitoring.inputs import PREDICTED_CLASS
from ml_batch.monitoring.rows import NULL_SHARE_RISE, stored_row_note
from ml_batch.monitoring.support import OutOfSupport, out_of_support_text

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1rem 1.5rem;color:#1f2933}
nav{margin-bottom:1rem;font-size:.95rem}nav a{margin-right:.8rem;color:#1a56db;text-decoration:none}
nav a.current{font-weight:700;text-decoration:underline}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0 1rem}
th,td{padding:.25rem .5rem;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#9b1c1c;font-weight:600}
.ok{color:#0e6027}.note{color:#52606d;font-size:.85rem}pre{font-size:.75rem;white-space:pre-wrap;margin:0}
svg text{font-size:11px;fill:#1f2933}ul.reasons{margin:0;padding-left:1.1rem}
.trends{display:flex;flex-wrap:wrap;gap:.3rem 1rem;margin:.2rem 0 .8rem}.trends figure{margin:0}
details summary{cursor:pointer;color:#1a56db;margin:.6rem 0}
"""

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} - ml-batch</title><style>{{ css }}</style></head>
<body><nav><a href="{{ base }}/">Models</a>
{%- if model %}| <b>{{ model }}</b>:
{%- for page, label in pages %} <a href="{{ base }}/models/{{ model|urlencode }}/{{ page }}"
{%- if page == current %} class="current"{% endif %}>{{ label }}</a>{% endfor %}{% endif %}</nav>
<h1>{{ title }}</h1>
{% block body %}{% endblock %}
</body></html>
"""

_INDEX = """{% extends "base" %}{% block body %}
{% if not models %}<p>No model has versions or runs yet.</p>{% else %}
<table id="models"><tr><th>Model</th><th>Health</th><th>Champion</th><th>Versions</th><th>Latest run day</th></tr>
{% for m in models %}{% set h = health[m.model_name] %}
<tr><td><a href="{{ base }}/models/{{ m.model_name|urlencode }}/runs">{{ m.model_name }}</a></td>
<td class="health {{ {'ok': 'ok', 'attention': 'bad'}.get(h.state, '') }}">
{{- {"ok": "ok", "attention": "needs attention", "unknown": "unknown"}[h.state] }}
{%- if h.lines %} <ul class="reasons">{% for line in h.lines %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}</td>
<td class="num">{{ m.champion if m.champion is not none else "-" }}</td><td class="num">{{ m.versions }}</td>
<td>{{ m.latest_day or "-" }}</td></tr>{% endfor %}</table>{% endif %}
<p class="note">Health: whether the model needs attention now (`ml-batch status`): no champion, a failed last run,
a due day not published, an open alert of warning or above, dataset drift, the realized gate metric past its
floor.{% if why %} <span class="bad">Health is not checked: {{ why }}.</span>{% endif %}</p>
{% if broken %}<h2>Spec files that cannot be read</h2><ul id="broken-specs">
{% for e in broken %}<li class="bad">{{ e.message }}</li>{% endfor %}</ul>{% endif %}
{% endblock %}"""

_REGISTRY = """{% extends "base" %}{% block body %}
<h2>Aliases</h2>
{% if aliases %}<table id="aliases"><tr><th>Alias</th><th>Version</th><th>Set by</th><th>Set at</th></tr>
{% for a in aliases %}<tr><td>{{ a.alias }}</td><td class="num">{{ a.version }}</td><td>{{ a.set_by }}</td>
<td>{{ a.set_at|when }}</td></tr>{% endfor %}</table>{% else %}<p>No aliases.</p>{% endif %}
<h2>Versions</h2>
<table id="versions"><tr><th>Version</th><th>Estimator</th><th>Trained on</th><th>Holdout</th>
<th>Rows train/holdout</th><th>Excluded</th><th>Holdout metrics</th><th>Environment</th><th>Artifact sha256</th>
<th>Created</th></tr>
{% for v in versions %}<tr><td class="num">{{ v.version }}</td><td>{{ v.estimator }}</td>
<td>{{ v.train_start }} .. {{ v.train_end }}</td><td>{{ v.holdout_start }} .. {{ v.holdout_end }}</td>
<td class="num">{{ v.n_train }} / {{ v.n_holdout }}</td>
<td class="excluded">{{ v|excluded }}</td>
<td>{% for name, value in v.metrics|dictsort %}
{{ name }} {{ value|f4 }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
<td class="environment">{% if v.environment %}{% for name, value in v.environment|dictsort %}{{ name }} {{ value }}
{%- if not loop.last %}<br>{% endif %}{% endfor %}{% else %}not recorded{% endif %}
{%- for e in v.verified_environments or [] %}<br>verified: scikit-learn {{ e.environment['scikit-learn'] }}
{%- endfor %}</td>
<td><code>{{ v.artifact_sha256[:12] }}</code></td><td>{{ v.created_at|when }} by {{ v.created_by }}</td></tr>
{% endfor %}</table>
{% if classes %}<h2>Classes</h2>
<p class="note">The classes each multiclass version predicts, in the order of its probabilities, with its
labelled rows of each class in training and in the holdout.</p>
<table id="classes"><tr><th>Version</th><th>Class</th><th>Train rows</th><th>Holdout rows</th></tr>
{% for c in classes %}<tr><td class="num">{{ c.version }}</td><td>{{ c.class_name }}</td>
<td class="num">{{ c.train|count_ }}</td><td class="num">{{ c.holdout|count_ }}</td></tr>{% endfor %}</table>
{% endif %}
<h2>Audit trail</h2>
{% if events %}<table id="events"><tr><th>When</th><th>Event</th><th>Alias</th><th>From</th><th>To</th><th>Actor</th>
<th>Reason</th></tr>
{% for e in events %}<tr><td>{{ e.created_at|when }}</td><td>{{ e.event }}</td><td>{{ e.alias or "" }}</td>
<td class="num">{{ e.from_version if e.from_version is not none else "" }}</td>
<td class="num">{{ e.to_version if e.to_version is not none else "" }}</td><td>{{ e.actor }}</td>
<td>{{ e.reason }}</td></tr>{% endfor %}</table>{% else %}<p>No events.</p>{% endif %}
{% endblock %}"""

_RUNS = """{% extends "base" %}{% block body %}
{% if not runs %}<p>No runs yet.</p>{% else %}
<p class="note">Newest day first (a day's latest run first); a run Airflow started links to it in Airflow.</p>
<table id="runs"><tr><th>Day</th><th>Status</th><th>Version</th><th>Type</th><th>Rows in</th><th>Scored</th>
<th>Quarantined</th><th>Score mean</th><th>Stage seconds</th><th>Run id</th><th>Finished</th>
<th>Expected rows</th></tr>
{% for r in runs %}<tr><td>{{ r.partition_date }}</td>
<td class="{{ 'ok' if r.status == 'success' else ('bad' if r.status == 'failed' else '') }}">{{ r.status }}
{%- if r.dry_run %} (dry run){% endif %}{% if r.partial %} <span class="bad">(partial)</span>{% endif %}</td>
<td class="num">{{ r.model_version }}</td><td>{{ r.run_type }}</td><td class="num">{{ r.rows_extracted|count_ }}</td>
<td class="num">{{ r.rows_scored|count_ }}</td><td class="num">{{ r.rows_quarantined|count_ }}</td>
<td class="num">{{ r.score_mean|f4 }}</td>
<td>{% for stage, seconds in r.stage_seconds|dictsort %}
{{ stage }} {{ seconds|secs }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{% if r.link %}<a href="{{ r.link }}" target="_top" title="this run in Airflow"><code>{{ r.run_id }}</code></a>
{%- else %}<code>{{ r.run_id }}</code>{% endif %}</td><td>{{ r.finished_at|when }}</td>
<td>{{ r.day_check|expected }}</td></tr>
{% if r.error %}<tr><td></td><td colspan="11" class="bad">{{ r.error }}</td></tr>{% endif %}
{% endfor %}</table>{% endif %}
{% endblock %}"""

_QUARANTINE = """{% extends "base" %}{% block body %}
<p class="note">Rows of the published run of each day (the last {{ days }} days with quarantine), per reason
without the row's own value, with up to {{ examples }} example rows.
{%- if not raw %} Raw rows and their values are shown only to users who may edit the model's DAG: you see
the example rows' keys.{% endif %}</p>
{% if not reasons %}<p>No quarantined rows.</p>{% else %}
<table id="quarantine"><tr><th>Day</th><th>Reason</th><th>Rows</th><th>Examples</th></tr>
{% for q in reasons %}<tr><td>{{ q.partition_date }}</td><td>{{ q.reason }}</td><td class="num">{{ q.rows }}</td>
<td>{% for e in q.examples %}<div>key <code>{{ e.entity_key }}</code>
{%- if raw %}: {{ e.reason }}<pre>{{ e.row_data|tojson_ }}</pre>{% endif %}</div>{% endfor %}</td></tr>
{%- endfor %}</table>{% endif %}
{% endblock %}"""

_DRIFT = """{% extends "base" %}{% block body %}
{% if not days %}<p>No drift checks yet.</p>{% else %}
<h2>Days</h2>
<table id="drift-days"><tr><th>Day</th><th>Version</th><th>Rows checked</th><th>Drift share</th><th>Dataset drift</th>
<th>Score drift</th><th>Drifted features</th><th>Report</th><th>No values</th><th>Multivariate</th>
<th>Out of support</th><th>Estimate</th></tr>
{% for d in days %}<tr><td>{{ d.partition_date }}</td><td class="num">{{ d.model_version }}</td>
<td class="num">{{ d.rows_checked }}</td><td class="num">{{ d.share|f3 }}</td>
<td class="{{ 'bad' if d.dataset_drift else 'ok' }}">{{ "yes" if d.dataset_drift else "no" }}</td>
<td class="{{ 'bad' if d.score_drift else 'ok' }}">{{ "yes" if d.score_drift else "no" }}</td>
<td>{{ d.drifted_features|join(", ") }}</td>
<td>{% if d.has_report %}
<a href="{{ base }}/models/{{ model|urlencode }}/drift/{{ d.partition_date }}/report">report</a>
{%- else %}-{% endif %}</td>
<td class="{{ 'bad' if d.detail.get('no_values') else '' }}">{{ d.detail.get("no_values", [])|join(", ") }}</td>
{% set summary = d.detail.get("summary") or {} %}
<td class="{{ 'bad' if summary.get('multivariate_drift') else '' }}">{{ summary.get("multivariate_drift")|yes_no }}</td>
<td class="{{ 'bad' if summary.get('out_of_support') else '' }}">
{%- for o in summary.get("out_of_support") or [] %}<div>{{ o|out_of_support }}</div>{% endfor %}</td>
<td class="{{ 'bad' if summary.get('estimate_reliable') == false else '' }}">{{ summary|reliability }}</td></tr>
{% endfor %}</table>
<p class="note">A feature with no values on a day counts as drifted when its reference had values. Null shares
are flagged when they rose by more than {{ null_share_rise }} over the reference's, and are reported only.
Out of support: the share of the day's values outside what the version was trained on. Estimate: whether the
day's label-free estimate can be trusted, and why not.</p>
{% if classed %}<h2>Predicted classes</h2>
<p class="note">A multiclass model's predicted-class mix and each class's probability against the holdout's
(the rows of <code>{{ predicted_class }}</code> and of each class's probability below): their own verdict,
like score drift, not counted in the drift share. Unseen: classes predicted on the day that the holdout
never predicted.</p>
<table id="class-drift"><tr><th>Day</th><th>Class drift</th><th>Unseen classes</th></tr>
{% for d in classed %}<tr><td>{{ d.day }}</td>
<td class="{{ 'bad' if d.drift else 'ok' }}">{{ d.drift|yes_no }}</td>
<td class="{{ 'bad' if d.unseen else '' }}">{{ d.unseen|join(", ") }}</td></tr>{% endfor %}</table>{% endif %}
<h2>Per feature</h2>
<p class="note">Each statistic over the checked days: the dashed line is its threshold, a red dot a day it
drifted.</p>
{% for feature, charts in trends %}<h3>{{ feature }}</h3><div class="trends" id="trend-{{ feature }}">
{% for c in charts %}<figure data-test="{{ c.test }}">{{ c.svg|safe }}</figure>{% endfor %}</div>{% endfor %}
<details><summary>Every statistic as a table</summary>
<table id="drift-features"><tr><th>Day</th><th>Feature</th><th>Test</th><th>Value</th><th>Threshold</th><th>p-value</th>
<th>Drifted</th><th>Note</th></tr>
{% for f in features %}<tr><td>{{ f.partition_date }}</td><td>{{ f.feature }}</td><td>{{ f.test }}</td>
<td class="num">{{ f.value|f4 }}</td><td class="num">{{ f.threshold|f4 }}</td><td class="num">{{ f.p_value|f4 }}</td>
<td class="{{ 'bad' if f.drifted else 'ok' }}">{{ "yes" if f.drifted else "no" }}</td><td>{{ f|drift_note }}</td></tr>
{% endfor %}</table></details>
{% endif %}
{% endblock %}"""

_CLASSES = """{% extends "base" %}{% block body %}
{% if missing %}<p class="bad">No class mix: {{ missing }}.</p>
{% elif not mix.days %}<p>No predictions published yet.</p>{% else %}
<p class="note">The share of each day's published predictions per predicted class (the most probable class of
each row), over the last {{ days }} scored days; the drift check compares it with the holdout's mix.</p>
{{ chart|safe }}
<table id="class-mix"><tr><th>Day</th><th>Rows</th>{% for c in mix.classes %}<th>{{ c }}</th>{% endfor %}</tr>
{% for d in mix.days %}<tr><td>{{ d.day }}</td><td class="num">{{ d.rows }}</td>
{%- for c in mix.classes %}<td class="num">{{ d.counts[c] }} ({{ d.shares[c]|pct }})</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
{% endblock %}"""

_ALERTS = """{% extends "base" %}{% block body %}
<p class="note">A condition (drift, out of support, a floor, an incomplete day) is one open alert until a clean
day resolves it; later days update it without sending again. Events are one row each.</p>
<h2>Open</h2>
{% if not open_ %}<p>No open alert.</p>{% else %}
<table id="open-alerts"><tr><th>Kind</th><th>Subject</th><th>Severity</th><th>Since</th><th>Latest day</th>
<th>Days seen</th><th>Message</th><th>What to do</th></tr>
{% for a in open_ %}<tr><td>{{ a.kind }}</td><td>{{ a.subject or "" }}</td>
<td class="{{ 'bad' if a.severity == 'critical' else '' }}">{{ a.severity }}</td><td>{{ a.first_day or "" }}</td>
<td>{{ a.partition_date or "" }}</td><td class="num">{{ a.occurrences }}</td><td>{{ a.message }}</td>
<td><code>{{ a.runbook }}</code></td></tr>{% endfor %}</table>{% endif %}
<h2>Recent</h2>
{% if not recent %}<p>No alerts.</p>{% else %}
<table id="alerts"><tr><th>State</th><th>Kind</th><th>Subject</th><th>Severity</th><th>Day</th><th>Days seen</th>
<th>Resolved on</th><th>Updated</th><th>Message</th></tr>
{% for a in recent %}<tr>
<td class="{{ 'bad' if a.state == 'open' else ('ok' if a.state == 'resolved' else '') }}">{{ a.state }}</td>
<td>{{ a.kind }}</td><td>{{ a.subject or "" }}</td><td>{{ a.severity }}</td><td>{{ a.partition_date or "" }}</td>
<td class="num">{{ a.occurrences }}</td><td>{{ a.resolved_day or "" }}</td><td>{{ a.updated_at|when }}</td>
<td>{{ a.message }}</td></tr>
{% endfor %}</table>{% endif %}
{% endblock %}"""

_PERFORMANCE = """{% extends "base" %}{% block body %}
{% if not charts %}<p>No performance recorded yet (labels arrive after the label delay).</p>{% endif %}
{% if charts %}<p class="note">Solid lines: the realized metric (labels arrived); dashed: the label-free estimate.
{%- if floor_missing %} No floor line: {{ floor_missing }}.{% endif %}</p>{% endif %}
{% for metric, svg in charts %}<h2>{{ metric }}</h2>{{ svg|safe }}{% endfor %}
{% if rows %}<table id="performance"><tr><th>Day</th><th>Version</th><th>Metric</th><th>Value</th><th>Rows</th>
<th>Kind</th><th>Reliable</th></tr>
{% for p in rows %}<tr><td>{{ p.partition_date }}</td><td class="num">{{ p.model_version }}</td><td>{{ p.metric }}</td>
<td class="num">{{ p.value|f4 }}</td><td class="num">{{ p.n }}</td><td>{{ p.detail.get("kind", "") }}</td>
<td class="{{ 'bad' if p.detail.get('reliable') == false else '' }}">{{ p.detail|estimate_reliability }}</td></tr>
{% endfor %}</table>{% endif %}
{% if unseen %}<p class="note" id="unseen-classes">Labelled rows of classes the version was not trained on, left out
of its metrics (an <code>unseen_class</code> alert):
{% for u in unseen %}{{ u.day }} v{{ u.version }}: {{ u.rows }} (
{%- for name, n in u.classes|dictsort %}{{ name }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- if not loop.last %}; {% endif %}{% endfor %}.</p>{% endif %}
<h2>Validation results</h2>
{% if not results %}<p>No validation results stored.</p>{% else %}
<form method="get"><label>Run <select name="run_id">{% for r in runs %}<option value="{{ r }}"
{%- if r == run_id %} selected{% endif %}>{{ r }}</option>{% endfor %}</select></label> <button>Show</button></form>
{% for v in shown %}<h3>{{ v.partition_date }} run <code>{{ v.run_id }}</code> shard {{ v.part }}:
<span class="{{ 'ok' if v.verdict.ok else 'bad' }}">{{ v.verdict.text }}</span></h3>
<p>{{ v.statistics.get("successful_expectations") }} of {{ v.statistics.get("evaluated_expectations") }}
expectations passed; {{ v.quarantined_keys }} keys quarantined; rows {{ v.rows if v.rows is not none else "-" }}.
<a href="{{ base }}/models/{{ model|urlencode }}/validation/
{{- v.partition_date }}/{{ v.run_id|urlencode }}/{{ v.part }}.json">JSON</a></p>
{% if v.batch_failures %}<p class="bad">{{ v.batch_failures|join("; ") }}</p>{% endif %}
<table class="validation"><tr><th>Expectation</th><th>Column</th><th>Success</th><th>Unexpected</th></tr>
{% for e in v.expectations %}<tr><td>{{ e.type }}</td><td>{{ e.column }}</td>
<td class="{{ 'ok' if e.success else 'bad' }}">{{ "yes" if e.success else "no" }}</td>
<td class="num">{{ e.unexpected if e.unexpected is not none else "" }}</td></tr>{% endfor %}</table>
{% endfor %}{% endif %}
{% endblock %}"""


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fixed(digits: int) -> Any:
    def render(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.{digits}f}" if isinstance(value, int | float) else str(value)

    return render


def _drift_note(row: Mapping[str, Any]) -> str:
    """What a stored drift statistic's detail adds (`ml_batch.monitoring.rows.stored_row_note`)."""
    return stored_row_note(str(row.get("test")), row.get("detail"))


def _expected(day_check: Mapping[str, Any] | None) -> str:
    """A run's expected volume as its plan computed it (`runs.day_check`), e.g. `~810 (0.52x, low)`; the reason
    when it was not checked; empty for a run from before the check."""
    volume = (day_check or {}).get("volume") or {}
    if not volume:
        return ""
    if volume.get("expected") is None:
        return "not checked"
    return f"~{volume['expected']:.0f} ({volume['ratio']:.2f}x, {volume['verdict']})"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _out_of_support(entry: Mapping[str, Any]) -> str:
    """A stored `OutOfSupport` entry as its one sentence (`ml_batch.monitoring.support`)."""
    return out_of_support_text(TypeAdapter(OutOfSupport).validate_python(dict(entry)))


def _reliability(summary: Mapping[str, Any]) -> str:
    """A day summary's estimate reliability: "reliable", "unreliable: <reasons>" or "-" (no estimate)."""
    reliable = summary.get("estimate_reliable")
    if reliable is None:
        return "-"
    return "reliable" if reliable else "unreliable: " + "; ".join(summary.get("estimate_reasons") or [])


def _estimate_reliability(detail: Mapping[str, Any]) -> str:
    """A `performance` row's reliability (estimates only; empty for realized metrics)."""
    if detail.get("kind") != "estimated" or "reliable" not in detail:
        return ""
    if detail["reliable"]:
        return "yes"
    return "no: " + "; ".join(detail.get("unreliable_reasons") or [])


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def environment() -> jinja2.Environment:
    """The template environment (autoescaping on: every value from the database is escaped)."""
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"base": _BASE, "index": _INDEX, "registry": _REGISTRY, "runs": _RUNS,
                                  "quarantine": _QUARANTINE, "drift": _DRIFT, "performance": _PERFORMANCE,
                                  "alerts": _ALERTS, "classes": _CLASSES}),
        autoescape=True, undefined=jinja2.StrictUndefined,
    )
    env.filters.update(pct=lambda v: f"{v:.1%}")
    env.filters.update(when=_when, f3=_fixed(3), f4=_fixed(4), count_=_count, secs=_secs, drift_note=_drift_note,
                       expected=_expected, yes_no=_yes_no, out_of_support=_out_of_support,
                       reliability=_reliability, estimate_reliability=_estimate_reliability,
                       excluded=lambda v: excluded_text(v["n_excluded"], v["exclusions"]),
                       tojson_=lambda v: json.dumps(v, sort_keys=True, default=str))
    env.globals["css"] = _CSS
    env.globals["null_share_rise"] = NULL_SHARE_RISE
    env.globals["predicted_class"] = PREDICTED_CLASS
    return env
