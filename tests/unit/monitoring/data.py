"""Data for the monitoring unit tests: rows drawn from fixed distributions of the demo features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_batch.monitoring.drift import DriftResult

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "include" / "models" / "credit_default.yaml"

HOME = (["RENT", "OWN", "MORTGAGE", "OTHER"], [0.40, 0.15, 0.40, 0.05])
PURPOSE = (
    ["debt_consolidation", "credit_card", "home_improvement", "car", "medical", "other"],
    [0.35, 0.25, 0.15, 0.12, 0.08, 0.05],
)
CHANNEL = (["web", "branch", "partner", "phone"], [0.55, 0.2, 0.15, 0.1])


def make_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows drawn from one fixed distribution per demo feature (normal, lognormal, counts, categories), and scores."""
    rng = np.random.default_rng(seed)

    def with_nulls(values: np.ndarray, share: float) -> np.ndarray:
        values = values.astype(np.float64)
        values[rng.random(rows) < share] = np.nan
        return values

    channel = rng.choice(CHANNEL[0], size=rows, p=CHANNEL[1]).astype(object)
    channel[rng.random(rows) < 0.03] = None
    frame = pd.DataFrame(
        {
            "income": with_nulls(rng.lognormal(10.5, 0.6, rows), 0.02),
            "age": np.clip(np.round(rng.normal(42, 12, rows)), 18, 100),
            "debt_ratio": with_nulls(rng.lognormal(-1.0, 0.7, rows), 0.01),
            "utilization": with_nulls(rng.beta(2, 5, rows) * 1.2, 0.01),
            "credit_lines": rng.poisson(6, rows),
            "late_payments_90d": rng.poisson(0.3, rows),
            "loan_amount": np.clip(rng.lognormal(9, 0.8, rows), 100, 200_000),
            "employment_years": with_nulls(rng.exponential(6, rows), 0.05),
            "home_ownership": rng.choice(HOME[0], size=rows, p=HOME[1]),
            "purpose": rng.choice(PURPOSE[0], size=rows, p=PURPOSE[1]),
            "channel": channel,
        }
    )
    return frame, rng.beta(2, 8, rows)


def clustered_days(days: int, rows_per_day: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Days whose rows share a day-level effect (weather-like, calendar-like): each day is a narrow cluster."""
    frame, scores = make_frame(days * rows_per_day, seed)
    rng = np.random.default_rng(seed + 100)
    day_index = np.repeat(np.arange(days), rows_per_day)
    frame["age"] = np.clip(frame["age"] + rng.normal(0, 6, days)[day_index], 18, 100)
    frame["loan_amount"] = frame["loan_amount"] * rng.lognormal(0, 0.4, days)[day_index]
    frame["employment_years"] = frame["employment_years"] + rng.normal(0, 3, days)[day_index]
    frame["credit_lines"] = frame["credit_lines"] + rng.poisson(2, days)[day_index]
    dominant = rng.choice(PURPOSE[0], size=days)[day_index]
    frame["purpose"] = np.where(rng.random(len(frame)) < 0.6, dominant, frame["purpose"])
    day_values = (pd.Timestamp("2026-03-01") + pd.to_timedelta(day_index, unit="D")).to_numpy()
    return frame, scores, day_values


def rows_of(result: DriftResult, feature: str) -> dict[str, Any]:
    """The rows of one feature, by test."""
    return {row.test: row for row in result.feature_rows(feature)}
