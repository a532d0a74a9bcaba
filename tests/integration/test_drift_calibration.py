"""Drift thresholds calibrated on the reference's own day-to-day variation, on the demos' deterministic data.

The store demo is the case a fixed KS/PSI threshold gets wrong: every store is scored every day, and
`day_of_week`, `is_holiday` (and the weekday-driven `units_lag7`) are shared within a day, so one day's rows
are a narrow cluster of the reference, and with fixed thresholds days taken from the training window itself
are "drifted".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.demo import credit as demo
from ml_batch.demo import stores as demo_stores
from ml_batch.model.training import window_for
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.monitoring.performance import estimate_performance, performance_table, realized_performance
from ml_batch.ops import alerts
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec, load_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STORES_LAST = dt.date(2026, 6, 30)
# 300 stores a day; no shift inside the data the model is trained on (as_of is before the shift starts).
STORES = demo_stores.StoreDemandConfig(end_date=STORES_LAST, days=100, stores=300)
STORES_AS_OF = STORES.shift_start - dt.timedelta(days=1)


def _stores_spec(settings: Settings, **drift: object) -> Spec:
    shipped = load_spec(REPO / "include" / "models" / "store_demand.yaml")
    return shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.store_demand"}),
        "validation": shipped.validation.model_copy(update={"min_rows": 100}),
        "drift": shipped.drift.model_copy(update=drift),
    })


def _training_days(spec: Spec, as_of: dt.date) -> list[dt.date]:
    window = window_for(spec, as_of)
    days = [window.start + dt.timedelta(days=i) for i in range((window.train_end - window.start).days + 1)]
    return days[::8]


def _dataset_drift_days(engine: sa.Engine, spec: Spec, days: list[dt.date]) -> list[tuple[dt.date, list[str]]]:
    flagged = []
    for day in days:
        score_day(engine, spec, day, run_id=f"in-window-{day}")
        summary = check_day_drift(engine, spec, day, run_id=f"in-window-{day}")
        assert summary.status == "checked", summary
        if summary.dataset_drift:
            flagged.append((day, summary.drifted_features))
    return flagged


def test_days_inside_the_training_window_are_not_drift_on_a_source_clustered_within_a_day(
    settings: Settings, engine: sa.Engine
) -> None:
    spec = _stores_spec(settings)
    demo_stores.seed(engine, STORES)
    assert train_and_register(engine, spec, STORES_AS_OF, actor="t", promote=True).promoted
    days = _training_days(spec, STORES_AS_OF)
    assert len(days) >= 5
    flagged = _dataset_drift_days(engine, spec, days)
    print(f"stores: {len(flagged)} of {len(days)} training-window days flagged with the defaults")
    assert flagged == []
    assert [a for a in alerts.recent(engine, spec.name) if a["kind"] == "dataset_drift"] == []


def test_fixed_thresholds_flag_the_training_window_of_a_clustered_source(settings: Settings, engine: sa.Engine) -> None:
    # The failure calibration fixes, kept reproducible: the fixed thresholds (still available) flag most
    # days the reference was built from.
    spec = _stores_spec(settings, thresholds="fixed")
    demo_stores.seed(engine, STORES)
    assert train_and_register(engine, spec, STORES_AS_OF, actor="t", promote=True).promoted
    days = _training_days(spec, STORES_AS_OF)
    assert len(_dataset_drift_days(engine, spec, days)) >= 2


# The credit demo: a real shift over its last days; before it every day is drawn from one distribution.
# The shift lasts 51 days so that its first 21 days have their outcomes (30-day delay) at the data's "now".
# The model is trained as of the day before the shift, so its window ends 30 days earlier (the label
# delay) and the 30 days in between are stable days it has never seen.
CREDIT_LAST = dt.date(2026, 6, 30)
CREDIT = demo.DemoConfig(end_date=CREDIT_LAST, days=150, rows_per_day=2000, shift_days=51)
CREDIT_AS_OF = CREDIT.shift_start - dt.timedelta(days=1)


def _credit_spec(settings: Settings) -> Spec:
    shipped = load_spec(REPO / "include" / "models" / "credit_default.yaml")
    return shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.credit_default"}),
    })


def test_sustained_drift_is_silent_on_stable_days_and_fires_soon_after_the_shift(
    settings: Settings, engine: sa.Engine
) -> None:
    spec = _credit_spec(settings)
    demo.seed(engine, CREDIT)
    assert train_and_register(engine, spec, CREDIT_AS_OF, actor="t", promote=True).promoted
    rule = spec.drift.alert_after
    assert (spec.drift.window_days, rule.days, rule.of) == (1, 2, 3)  # the defaults

    # Days from inside the training window: never dataset drift.
    assert _dataset_drift_days(engine, spec, _training_days(spec, CREDIT_AS_OF)) == []

    stable = [CREDIT.shift_start - dt.timedelta(days=i) for i in range(14, 0, -1)]
    shifted = [CREDIT.shift_start + dt.timedelta(days=i) for i in range(rule.days + 1)]
    summaries = {}
    for day in stable + shifted:
        score_day(engine, spec, day, run_id=f"day-{day}")
        summaries[day] = check_day_drift(engine, spec, day, run_id=f"day-{day}")
    false_alarms = [day for day in stable if summaries[day].sustained_drift]
    assert false_alarms == []
    assert [day for day in stable if summaries[day].dataset_drift] == []
    first_alert = next(day for day in shifted if summaries[day].sustained_drift)
    delay = (first_alert - CREDIT.shift_start).days + 1
    print(f"credit: {len(stable)} stable days, {len(false_alarms)} sustained alerts; first alert on shift day "
          f"{delay} (share {summaries[first_alert].share:.2f}, {summaries[first_alert].drifted_features})")
    assert delay <= rule.days, summaries
    # One open alert for the whole run of sustained days (issue 21: repeated days update it, not resend it).
    [alert] = [a for a in alerts.recent(engine, spec.name) if a["kind"] == "dataset_drift"]
    sustained = [day for day in shifted if summaries[day].sustained_drift]
    assert alert["state"] == "open" and alert["first_day"] == first_alert
    assert alert["partition_date"] == sustained[-1] and alert["occurrences"] == len(sustained)


def test_label_free_estimate_tracks_realized_roc_auc_and_follows_the_shift(
    settings: Settings, engine: sa.Engine
) -> None:
    spec = _credit_spec(settings)
    demo.seed(engine, CREDIT)
    assert train_and_register(engine, spec, CREDIT_AS_OF, actor="t", promote=True).promoted
    delay = dt.timedelta(days=spec.labels.delay_days)
    stable = [CREDIT.shift_start - dt.timedelta(days=i) for i in range(14, 0, -1)]
    shifted = [CREDIT.shift_start + dt.timedelta(days=i) for i in range(0, 14, 2)]
    estimated: dict[tuple[dt.date, str], float] = {}
    realized: dict[tuple[dt.date, str], float] = {}
    for day in stable + shifted:
        score_day(engine, spec, day, run_id=f"day-{day}")
        for r in estimate_performance(engine, spec, day, run_id=f"day-{day}"):
            assert r["detail"]["kind"] == "estimated" and "no concept drift" in r["detail"]["assumption"]
            estimated[day, r["metric"].removeprefix("estimated_")] = r["value"]
        for r in realized_performance(engine, spec, day + delay):
            realized[day, r["metric"]] = r["value"]
    errors = [abs(estimated[day, "roc_auc"] - realized[day, "roc_auc"]) for day in stable]
    within = sum(error <= 0.03 for error in errors) / len(errors)
    mean_error = float(np.mean(errors))
    print(f"estimate: {within:.0%} of {len(errors)} stable days within 0.03, mean absolute error {mean_error:.4f}")
    assert within >= 0.8, (errors, mean_error)

    def move(values: dict[tuple[dt.date, str], float], metric: str) -> float:
        return float(np.mean([values[d, metric] for d in shifted]) - np.mean([values[d, metric] for d in stable]))

    for metric in ("roc_auc", "accuracy"):
        print(f"shift: realized {metric} moved {move(realized, metric):+.4f}, estimated {move(estimated, metric):+.4f}")
    # The demo's shift lowers accuracy (more defaults, among rows that score higher): the estimate follows.
    # (Its ROC AUC barely moves, within a day's noise, so its direction is no test.)
    assert move(realized, "accuracy") < -0.005 and move(estimated, "accuracy") < -0.005
    # The estimation error is recorded next to the realized value once the labels arrived.
    [row] = [r for r in performance_table(engine, spec.name, limit=1000)
             if r["metric"] == "estimated_roc_auc" and r["partition_date"] == stable[0]]
    assert row["detail"]["realized"] == pytest.approx(realized[stable[0], "roc_auc"])
    assert row["detail"]["error"] == pytest.approx(estimated[stable[0], "roc_auc"] - realized[stable[0], "roc_auc"])
