"""Out of support through the real registry: the profile a trained version stores (JSONB) bounds the support
by the whole training window, training and holdout rows, so no day of the window is ever out of support."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.model import registry
from ml_batch.model.training import window_for
from ml_batch.monitoring.drift import check_drift
from ml_batch.monitoring.support import out_of_support_text
from ml_batch.spec import Spec
from tests.support.toy import AS_OF

pytestmark = pytest.mark.integration


def _window_rows(engine: sa.Engine, schema: str, spec: Spec) -> pd.DataFrame:
    window = window_for(spec, AS_OF)
    query = sa.text(f'SELECT event_time, x1, x2, color FROM "{schema}".toy_rows '
                    "WHERE event_time >= :start AND event_time < :end ORDER BY id")
    with engine.connect() as conn:
        rows = pd.read_sql(query, conn, params={
            "start": dt.datetime.combine(window.start, dt.time(), tzinfo=dt.UTC),
            "end": dt.datetime.combine(window.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})
    rows["day"] = rows["event_time"].dt.date
    return rows


def test_no_day_of_the_training_window_is_out_of_support(settings: Settings, engine: sa.Engine, toy: Spec) -> None:
    profile = registry.reference_profile(engine, toy.name, 1)
    assert profile is not None
    window = window_for(toy, AS_OF)
    rows = _window_rows(engine, settings.schema, toy)
    train = rows[rows["day"] < window.holdout_start]
    # The support is the whole window's range; the distribution entries are the training rows' alone.
    for name in ("x1", "x2"):
        entry = profile["features"][name]
        assert (entry["support"]["low"], entry["support"]["high"]) == (rows[name].min(), rows[name].max())
        assert (entry["min"], entry["max"]) == (train[name].min(), train[name].max())
    assert profile["features"]["color"]["support"] == {"categories": ["blue", "red"], "complete": True}
    shares = []
    for day, part in rows.groupby("day"):
        result = check_drift(toy, profile, part.reset_index(drop=True), np.full(len(part), 0.5))
        assert result.out_of_support == (), day
        shares += [row.value for row in result.rows if row.test == "out_of_support"]
    assert len(shares) == 10 * 3 and max(shares) == 0.0


def test_a_day_above_the_training_range_is_out_of_support_and_says_which_bound(
    settings: Settings, engine: sa.Engine, toy: Spec
) -> None:
    profile = registry.reference_profile(engine, toy.name, 1)
    assert profile is not None
    day = _window_rows(engine, settings.schema, toy).head(60).reset_index(drop=True)
    top = profile["features"]["x1"]["support"]["high"]
    day["x1"] = top + 1.0
    day.loc[:2, "color"] = "green"
    result = check_drift(toy, profile, day, np.full(len(day), 0.5))
    assert [out_of_support_text(entry) for entry in result.out_of_support] == [
        f"x1: 100% of rows above the training maximum {top:.4g}"]
    colors = next(row for row in result.rows if row.feature == "color" and row.test == "out_of_support")
    assert colors.value == pytest.approx(3 / 60) and not colors.drifted
    assert colors.detail["unseen"] == {"green": 3}
