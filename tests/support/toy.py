"""The toy model most integration and reliability tests score: its days, and a trained, promoted champion.

Toy data (`tests.integration.helpers.load_toy_data`) runs FIRST .. FIRST + DAYS_OF_DATA - 1 (2026-05-01 ..
2026-05-25); labels are known 3 days after their event. The champion is trained on the labels known on
AS_OF (training window 2026-05-08 .. 17, holdout 05-15 .. 17) and DAY, after the window, is the day a test
scores.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec

FIRST = dt.date(2026, 5, 1)
DAYS_OF_DATA = 25
AS_OF = dt.date(2026, 5, 20)
DAY = dt.date(2026, 5, 21)
ROWS_PER_DAY = 80


def trained_toy(engine: sa.Engine, schema: str, *, rows_per_day: int = ROWS_PER_DAY, **spec_overrides: Any) -> Spec:
    """Load the toy source of `schema` (`rows_per_day` rows a day), train the toy model as of AS_OF and promote
    it through the gate; its spec (`toy_spec(schema, **spec_overrides)`)."""
    from ml_batch.promotion.retrain import train_and_register  # scikit-learn: only for the tests that train

    spec = toy_spec(schema, **spec_overrides)
    load_toy_data(engine, schema, FIRST, days=DAYS_OF_DATA, rows_per_day=rows_per_day)
    train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    return spec
