"""The HTML drift report (`ml_batch.monitoring.report`): complete, escaped, self-contained, written atomically."""

from __future__ import annotations

import datetime
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.drift import DriftResult, check_drift
from ml_batch.monitoring.profile import build_profile
from ml_batch.monitoring.report import render_html, write_report
from ml_batch.spec import Spec

DAY = datetime.date(2026, 3, 1)
EVIL = "<script>alert(1)</script>"


def _frame(rows: int, seed: int, evil_share: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10.5, 0.6, rows),
            "age": np.round(rng.normal(42, 12, rows)),
            "debt_ratio": rng.lognormal(-1, 0.7, rows),
            "utilization": rng.beta(2, 5, rows),
            "credit_lines": rng.poisson(6, rows),
            "late_payments_90d": rng.poisson(0.3, rows),
            "loan_amount": rng.lognormal(9, 0.8, rows),
            "employment_years": rng.exponential(6, rows),
            "home_ownership": rng.choice(["RENT", "OWN", "MORTGAGE", "OTHER"], rows),
            "purpose": rng.choice(["car", "medical", "other", 'A&B "quoted"'], rows),
            "channel": rng.choice(["web", "branch"], rows).astype(object),
        }
    )
    frame.loc[rng.random(rows) < evil_share, "channel"] = EVIL
    return frame, rng.beta(2, 8, rows)


@pytest.fixture(scope="module")
def checked(spec: Spec) -> tuple[DriftResult, dict[str, Any]]:
    reference, ref_scores = _frame(5000, seed=0)
    profile = build_profile(spec, reference, ref_scores)
    current, scores = _frame(2000, seed=1, evil_share=0.25)
    current["age"] += 8
    return check_drift(spec, profile, current, scores), profile


@pytest.fixture(scope="module")
def page(checked: tuple[DriftResult, dict[str, Any]]) -> str:
    result, profile = checked
    return render_html("credit_default", 3, DAY, result, profile)


def test_report_shows_every_feature_the_score_and_the_header(spec: Spec, page: str) -> None:
    for name in spec.feature_names:
        assert f">{name}</a>" in page  # in the statistics table
        assert f"<h3>{name} " in page  # and a section of its own with a chart
    assert "Score (prediction)" in page
    assert "credit_default v3, 2026-03-01" in page
    assert page.count("<svg") == len(spec.features) + 1


def test_charts_are_well_formed_svg_with_a_bar_per_bin_or_category(page: str) -> None:
    charts = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    for chart in charts:
        ET.fromstring(chart)  # raises on malformed markup
    channel = charts[-1]  # the last feature section: reference categories, (missing), (unseen categories)
    assert "(unseen categories)" in channel and "(missing)" in channel
    assert channel.count('<rect class="ref"') == 1 + 4  # legend + branch, web, (missing), (unseen)


def test_report_states_the_verdict(checked: tuple[DriftResult, dict[str, Any]], page: str) -> None:
    result, _ = checked
    assert result.drifted_features == ["age", "channel"]
    assert not result.dataset_drift  # 2 of 11 < the demo's 0.3
    assert "No dataset drift. 2 of 11 features drifted" in page
    assert "Drifted: age, channel" in page
    assert len(re.findall(r'<tr class="drifted">', page)) == sum(row.drifted for row in result.rows)


def test_report_escapes_a_malicious_category(page: str) -> None:
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "A&amp;B &quot;quoted&quot;" in page


def test_report_is_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and " src=" not in page and "@import" not in page


def test_dataset_drift_verdict(spec: Spec, checked: tuple[DriftResult, dict[str, Any]]) -> None:
    _, profile = checked
    current, scores = _frame(2000, seed=2)
    for name in ("income", "age", "debt_ratio", "loan_amount"):
        current[name] = current[name] * 1.8
    result = check_drift(spec, profile, current, scores)
    assert result.dataset_drift
    assert "Dataset drift: YES. 4 of 11 features drifted" in render_html("m", 1, DAY, result, profile)


def test_write_report_writes_the_file_atomically(tmp_path: Path, page: str) -> None:
    path = write_report(page, tmp_path, "credit_default", DAY)
    assert path == tmp_path / "credit_default" / "2026-03-01.html"
    assert path.read_text(encoding="utf-8") == page
    # A re-run replaces the file and leaves no temp file behind.
    assert write_report("<p>again</p>", tmp_path, "credit_default", DAY) == path
    assert path.read_text(encoding="utf-8") == "<p>again</p>"
    assert [p.name for p in path.parent.iterdir()] == ["2026-03-01.html"]


def test_write_report_gives_the_file_the_umask_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    # The one atomic-write rule (ml_batch.files.write_atomic): the mode `open(path, "w")` would give.
    previous = os.umask(0o027)
    try:
        path = write_report("<p>report</p>", tmp_path, "credit_default", DAY)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.read_text(encoding="utf-8") == "<p>report</p>"
    assert [p.name for p in path.parent.iterdir()] == ["2026-03-01.html"]


def test_write_report_refuses_a_path_as_model_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model name '\.\./evil' cannot be a report folder"):
        write_report("<p></p>", tmp_path, "../evil", DAY)


def test_report_shows_window_sustained_status_weighted_share_and_estimates(
    spec: Spec, checked: tuple[DriftResult, dict[str, Any]]
) -> None:
    reference, ref_scores = _frame(5000, seed=0)
    importance = {name: 1.0 if name == "age" else 0.5 for name in spec.feature_names}
    profile = build_profile(spec, reference, ref_scores, importance=importance)
    current, scores = _frame(2000, seed=1)
    current["age"] += 8
    result = check_drift(spec, profile, current, scores)
    window = {"days": 3, "days_with_rows": 3, "rows": 6000, "share": 0.0909, "dataset_drift": False,
              "drifted_features": ["age"]}
    sustained = {"days": 2, "of": 3, "drifted_days": ["2026-02-28", "2026-03-01"], "sustained_drift": True}
    estimates = [{"metric": "estimated_roc_auc", "value": 0.7712, "model_version": 1,
                  "detail": {"assumption": "no concept drift <here>"}}]
    page = render_html("m", 1, DAY, result, profile, window=window, sustained=sustained, estimates=estimates)
    assert "importance-weighted 17%" in page  # age: 1.0 of 1.0 + 10 x 0.5
    assert "thresholds fixed" in page  # a profile without per-day calibration
    assert "Window of the last 3 days (3 with rows, 6,000 rows pooled): 1 features drifted (9%): no dataset " \
        "drift" in page
    assert "Sustained drift: YES. 2 of the last 3 days drifted; the alert (and retraining) needs 2" in page
    assert "Estimated performance without labels: roc_auc 0.7712 (v1)" in page
    assert "no concept drift &lt;here&gt;" in page


def test_report_of_a_day_with_an_empty_and_a_constant_feature_says_why(
    spec: Spec, checked: tuple[DriftResult, dict[str, Any]]
) -> None:
    _, profile = checked
    current, scores = _frame(2000, seed=3)
    result = check_drift(spec, profile, current.assign(income=np.nan, channel=None, loan_amount=5000.0), scores)
    assert result.no_values == ["income", "channel"]
    page = render_html("m", 1, DAY, result, profile)
    assert "income: no values on the day, where the reference had 100.0% non-null: counted as drifted" in page
    assert "channel: no values on the day, where the reference had 100.0% non-null" in page
    section = page.split('<h3>income ', 1)[1].split("</article>", 1)[0]
    assert section.startswith('<span class="badge drift">drifted</span>')
    assert "no values on the day (no KS: nothing to compare)" in section and "null 0.0% → 100.0%" in section
    assert "constant on the day (the reference was not)" in page.split('<h3>loan_amount ', 1)[1].split("</article>")[0]
    for chart in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(chart)
    # Each feature's null share is in the table, flagged when it rose, but reported only.
    assert page.count("<td>null share</td>") == len(spec.features)
    assert "<td>null share</td>" in page and "YES (reported only)" in page and "no (reported only)" in page


def test_report_shows_the_notes_of_an_estimate(spec: Spec, checked: tuple[DriftResult, dict[str, Any]]) -> None:
    result, profile = checked
    estimates = [{"metric": "estimated_roc_auc", "value": 0.5, "model_version": 1,
                  "detail": {"assumption": "no concept drift", "notes": ["every score is 0.3: they rank nothing"]}}]
    page = render_html("m", 1, DAY, result, profile, estimates=estimates)
    assert "roc_auc 0.5000 (v1). Every score is 0.3: they rank nothing." in page
