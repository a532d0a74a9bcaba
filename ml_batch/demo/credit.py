"""Synthetic credit applications and their outcomes: the source tables the demo spec reads.

`generate` builds two frames from a seed, with no I/O; `seed` (re)creates schema `demo`'s tables and loads
them with COPY in one transaction. The data imitates a consumer-credit book:

* ~`rows_per_day` applications a day (fewer at weekends, most during the day) over `days` days ending at
  `end_date`;
* plausible, correlated features (lognormal income and loan amount, age-dependent tenure and home
  ownership, zero-inflated late payments) with a few nulls in the nullable ones only;
* a default label drawn from a logistic function of the features, known `label_delay_days` after the
  application, so the last `label_delay_days` days have no outcome yet;
* a real shift over the last `shift_days` days: lower incomes, higher utilization, a channel never seen
  before (`crypto_partner`), more debt consolidation and medical loans, and utilization weighing more on
  default. Before the shift every day is drawn from the same reference distribution.

Column names, ranges and categories match `include/models/credit_default.yaml`.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.demo.source import SCHEMA, DemoDays, check_int, draw, replace_tables

logger = logging.getLogger(__name__)

SHIFTED_CHANNEL = "crypto_partner"

HOME_OWNERSHIP = ("RENT", "OWN", "MORTGAGE", "OTHER")
PURPOSES = ("debt_consolidation", "credit_card", "home_improvement", "car", "medical", "other")
CHANNELS = ("web", "branch", "partner", "app")

# Mix of purposes and channels before / during the shift (same order as PURPOSES and CHANNELS + shifted).
_PURPOSE_P_REF = (0.38, 0.22, 0.12, 0.12, 0.06, 0.10)
_PURPOSE_P_SHIFT = (0.48, 0.16, 0.06, 0.06, 0.14, 0.10)
_CHANNEL_P_REF = (0.45, 0.18, 0.12, 0.25, 0.0)
_CHANNEL_P_SHIFT = (0.36, 0.12, 0.10, 0.22, 0.20)

# Share of nulls in the nullable features; every other feature is never null.
_NULL_SHARE = {"income": 0.03, "debt_ratio": 0.02, "utilization": 0.02, "employment_years": 0.05, "channel": 0.01}

# Volume by weekday (Monday first), relative to `rows_per_day`; normalised to average 1 over a week.
_WEEKDAY_VOLUME = np.array([1.10, 1.08, 1.08, 1.06, 1.04, 0.80, 0.70])
_WEEKDAY_VOLUME = _WEEKDAY_VOLUME / _WEEKDAY_VOLUME.mean()
# Applications by UTC hour: quiet at night, peaks around lunch and in the evening.
_HOURLY_VOLUME = np.array(
    [0.6, 0.4, 0.3, 0.3, 0.3, 0.5, 1.0, 2.0, 3.5, 4.5, 5.0, 5.5, 6.0, 5.5, 5.0, 5.0, 5.0, 5.5, 6.5, 7.0, 6.5, 5.0,
     3.0, 1.5]
)
_HOURLY_VOLUME = _HOURLY_VOLUME / _HOURLY_VOLUME.sum()

# Coefficients of the default logit. The intercept puts the reference default rate near 10%;
# with these, HistGradientBoosting reaches a ROC AUC near 0.78 on a time-based holdout.
_INTERCEPT = -2.35
_UTILIZATION_COEF_REF = 2.5
_UTILIZATION_COEF_SHIFT = 4.0
_HOME_RISK = {"RENT": 0.25, "OWN": -0.25, "MORTGAGE": 0.0, "OTHER": 0.3}
_PURPOSE_RISK = {
    "debt_consolidation": 0.15,
    "credit_card": 0.1,
    "home_improvement": -0.25,
    "car": -0.2,
    "medical": 0.4,
    "other": 0.1,
}
_CHANNEL_RISK = {"web": 0.05, "branch": -0.25, "partner": 0.3, "app": 0.0, SHIFTED_CHANNEL: 0.7}

# Loan size by purpose (log scale, relative to the typical loan).
_PURPOSE_SIZE = {
    "debt_consolidation": 0.2,
    "credit_card": -0.2,
    "home_improvement": 0.5,
    "car": 0.4,
    "medical": -0.5,
    "other": 0.0,
}

# Share of rows with a data-entry error in `age` (quarantined by validation, see _add_entry_errors).
ENTRY_ERROR_SHARE = 0.002

metadata = sa.MetaData(schema=SCHEMA)

credit_applications = sa.Table(
    "credit_applications",
    metadata,
    sa.Column("application_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("income", sa.Double),
    sa.Column("age", sa.Integer, nullable=False),
    sa.Column("debt_ratio", sa.Double),
    sa.Column("utilization", sa.Double),
    sa.Column("credit_lines", sa.Integer, nullable=False),
    sa.Column("late_payments_90d", sa.Integer, nullable=False),
    sa.Column("loan_amount", sa.Double, nullable=False),
    sa.Column("employment_years", sa.Double),
    sa.Column("home_ownership", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("channel", sa.Text),
    sa.Index("ix_credit_applications_applied_at", "applied_at"),
)

credit_outcomes = sa.Table(
    "credit_outcomes",
    metadata,
    sa.Column("application_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("defaulted", sa.SmallInteger, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
)

APPLICATION_COLUMNS = [column.name for column in credit_applications.columns]
OUTCOME_COLUMNS = [column.name for column in credit_outcomes.columns]


@dataclass(frozen=True)
class DemoConfig(DemoDays):
    """What to generate; invalid values raise `ConfigError` on construction.

    Attributes:
        end_date: Last day of applications (inclusive, UTC). The data's "now" is the midnight after it.
        days: Number of days of applications, ending at `end_date`.
        rows_per_day: Average applications a day (weekdays get more, weekends fewer).
        shift_days: The last `shift_days` days are drawn from the shifted distribution (0: no shift).
        seed: Seed of `numpy.random.default_rng`; the same config always gives the same data.
        label_delay_days: Days between an application and its known outcome.
    """

    end_date: datetime.date
    days: int = 120
    rows_per_day: int = 2000
    shift_days: int = 21
    seed: int = 42
    label_delay_days: int = 30

    def __post_init__(self) -> None:
        self.check_days()
        check_int("rows_per_day", self.rows_per_day, 1, 1_000_000)


@dataclass(frozen=True)
class SeedSummary:
    """What `seed` loaded."""

    applications: int
    outcomes: int
    first_day: datetime.date
    last_day: datetime.date
    shift_start: datetime.date


def generate(config: DemoConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the demo data, with no I/O.

    Args:
        config: What to generate.

    Returns:
        `(applications, outcomes)`: applications with the columns of `demo.credit_applications`, ordered by
        `applied_at` with sequential `application_id`s from 1; outcomes (`application_id`, `defaulted`,
        `observed_at`) for the applications whose outcome is known at `config.now`, with
        `observed_at == applied_at + label_delay_days`.
    """
    rng = np.random.default_rng(config.seed)
    applied_at, shifted = _timestamps(rng, config)
    n = len(applied_at)
    features = _features(rng, shifted)
    defaulted = rng.random(n) < _default_probability(features, shifted)
    _blank_nulls(rng, features)
    _add_entry_errors(rng, features)

    applications = pd.DataFrame(
        {"application_id": np.arange(1, n + 1, dtype=np.int64), "applied_at": applied_at, **features}
    )[APPLICATION_COLUMNS]
    observed_at = applied_at + pd.Timedelta(days=config.label_delay_days)
    known = np.asarray(observed_at <= pd.Timestamp(config.now))
    outcomes = pd.DataFrame(
        {
            "application_id": applications["application_id"].to_numpy()[known],
            "defaulted": defaulted[known].astype(np.int16),
            "observed_at": observed_at[known],
        }
    )
    return applications, outcomes


def seed(engine: sa.Engine, config: DemoConfig) -> SeedSummary:
    """(Re)create `demo.credit_applications` and `demo.credit_outcomes` and load generated data.

    Everything happens in one transaction: nobody sees half-loaded tables, a failure leaves the old ones,
    and seeding twice leaves one copy. Rows are loaded with PostgreSQL COPY, chunk by chunk.

    Args:
        engine: A SQLAlchemy engine on psycopg2.
        config: What to generate.

    Returns:
        Counts and dates of what was loaded.
    """
    started = time.perf_counter()
    applications, outcomes = generate(config)
    generated = time.perf_counter()
    replace_tables(engine, metadata, [(credit_applications, applications), (credit_outcomes, outcomes)])
    logger.info(
        "seeded %d applications and %d outcomes (%s to %s, shift from %s) in %.1fs (generation %.1fs)",
        len(applications),
        len(outcomes),
        config.first_day,
        config.end_date,
        config.shift_start,
        time.perf_counter() - started,
        generated - started,
    )
    return SeedSummary(
        applications=len(applications),
        outcomes=len(outcomes),
        first_day=config.first_day,
        last_day=config.end_date,
        shift_start=config.shift_start,
    )


def _timestamps(rng: np.random.Generator, config: DemoConfig) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Sorted application times (UTC, whole seconds) and whether each falls in the shift window."""
    days = pd.date_range(config.first_day, periods=config.days, freq="D", tz="UTC")
    weekday_factor = _WEEKDAY_VOLUME[days.day_of_week.to_numpy()]
    counts = rng.poisson(config.rows_per_day * weekday_factor)
    counts = np.maximum(counts, 1)
    day_index = np.repeat(np.arange(config.days), counts)
    hours = rng.choice(24, size=len(day_index), p=_HOURLY_VOLUME)
    # Seconds 1..3599 into the hour: no application sits exactly on midnight, so a day is labelled all at once.
    seconds = hours * 3600 + rng.integers(1, 3600, size=len(day_index))
    # Sorting keeps every row in its day (seconds < 86,400) and orders the day by time.
    offsets = np.sort(day_index.astype(np.int64) * 86_400 + seconds)
    stamps = days[0] + pd.to_timedelta(offsets, unit="s")
    shifted = day_index >= config.days - config.shift_days
    return pd.DatetimeIndex(stamps), shifted


def _features(rng: np.random.Generator, shifted: np.ndarray) -> dict[str, np.ndarray]:
    """True (complete) feature values; nulls are blanked later so the label can depend on hidden values."""
    n = len(shifted)
    age = np.clip(18 + rng.gamma(shape=4.0, scale=6.0, size=n), 18, 80).astype(np.int64)
    employment_years = np.clip((age - 18) * rng.beta(2.0, 2.5, size=n), 0, 60).round(1)
    log_income = np.log(38_000) + 0.25 * np.log1p(employment_years) + rng.normal(0, 0.5, size=n)
    # The shift: a poorer applicant pool (incomes ~25% lower).
    log_income = log_income + np.where(shifted, np.log(0.75), 0.0)
    income = np.clip(np.exp(log_income), 0, 1_000_000).round(0)

    # Older applicants rent less and own more.
    years = (age - 18).astype(float)
    home_logits = np.column_stack(
        [1.0 - 0.04 * years, -1.2 + 0.035 * years, 0.2 + 0.02 * years, np.full(n, -1.8)]
    )
    home_ownership = draw(rng, HOME_OWNERSHIP, _softmax(home_logits))

    debt_ratio = np.exp(np.log(0.28) - 0.15 * np.log(income / 38_000) + rng.normal(0, 0.55, size=n))
    debt_ratio = np.clip(debt_ratio, 0, 10).round(3)

    # The shift: utilization rises (mean ~0.35 -> ~0.5); a few accounts are over their limit.
    utilization = np.where(shifted, rng.beta(2.6, 2.7, size=n), rng.beta(1.6, 3.0, size=n))
    over_limit = rng.random(n) < 0.03
    utilization = np.where(over_limit, 1.0 + rng.uniform(0, 0.45, size=n), utilization)
    utilization = np.clip(utilization, 0, 1.5).round(4)

    credit_lines = np.clip(rng.poisson(2.0 + 0.15 * years), 0, 100).astype(np.int64)
    late_payments_90d = np.clip(rng.negative_binomial(0.35, 0.6, size=n), 0, 50).astype(np.int64)

    purpose_p = np.where(shifted[:, None], np.array(_PURPOSE_P_SHIFT), np.array(_PURPOSE_P_REF))
    purpose = draw(rng, PURPOSES, purpose_p)
    log_loan = (
        np.log(9_000)
        + 0.45 * np.log(income / 38_000)
        + _lookup(purpose, _PURPOSE_SIZE)
        + rng.normal(0, 0.6, size=n)
    )
    loan_amount = np.clip(np.round(np.exp(log_loan) / 50) * 50, 100, 200_000)

    channel_p = np.where(shifted[:, None], np.array(_CHANNEL_P_SHIFT), np.array(_CHANNEL_P_REF))
    channel = draw(rng, (*CHANNELS, SHIFTED_CHANNEL), channel_p)
    return {
        "income": income,
        "age": age,
        "debt_ratio": debt_ratio,
        "utilization": utilization,
        "credit_lines": credit_lines,
        "late_payments_90d": late_payments_90d,
        "loan_amount": loan_amount,
        "employment_years": employment_years,
        "home_ownership": home_ownership,
        "purpose": purpose,
        "channel": channel,
    }


def _default_probability(features: dict[str, np.ndarray], shifted: np.ndarray) -> np.ndarray:
    """Probability of default: a logistic function of the complete features."""
    utilization_coef = np.where(shifted, _UTILIZATION_COEF_SHIFT, _UTILIZATION_COEF_REF)
    late = features["late_payments_90d"]
    logit = (
        _INTERCEPT
        + utilization_coef * (features["utilization"] - 0.35)
        + 0.6 * np.minimum(late, 5)
        + 0.6 * features["utilization"] * (late > 0)
        + 1.0 * np.log(np.maximum(features["debt_ratio"], 0.01) / 0.28)
        - 0.7 * np.log(np.maximum(features["income"], 1_000) / 38_000)
        + 0.35 * np.log(features["loan_amount"] / 9_000)
        - 0.018 * (features["age"] - 40)
        - 0.03 * features["employment_years"]
        + _lookup(features["home_ownership"], _HOME_RISK)
        + _lookup(features["purpose"], _PURPOSE_RISK)
        + _lookup(features["channel"], _CHANNEL_RISK)
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _blank_nulls(rng: np.random.Generator, features: dict[str, np.ndarray]) -> None:
    """Replace a share of each nullable feature's values by NaN (numeric) or None (text), in place."""
    for name, share in _NULL_SHARE.items():
        values = features[name]
        missing = rng.random(len(values)) < share
        if values.dtype == object:
            values[missing] = None
        else:
            features[name] = np.where(missing, np.nan, values)


def _add_entry_errors(rng: np.random.Generator, features: dict[str, np.ndarray]) -> None:
    """Typos as real sources have them: a few ages keyed with an extra or a missing digit.

    They fall outside the spec's age range (18..100), so the daily validation quarantines those rows.
    """
    typo = rng.random(len(features["age"])) < ENTRY_ERROR_SHARE
    ages = features["age"]
    features["age"] = np.where(typo, np.where(ages >= 30, ages * 10, ages // 10), ages)


def _softmax(logits: np.ndarray) -> np.ndarray:
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def _lookup(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    """Per-row value of `table[category]` for an array of categories."""
    return pd.Series(values).map(table).to_numpy(dtype=float)
