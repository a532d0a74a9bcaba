"""The training window (`ml_batch.model.training.training_window`): days whose labels are known, a time holdout."""

from __future__ import annotations

import datetime as dt

import pytest

from ml_batch.model.training import training_window


def test_window_ends_at_the_last_day_whose_labels_have_arrived() -> None:
    w = training_window(dt.date(2026, 3, 31), delay_days=30, window_days=60, holdout_days=10)
    assert w.end == dt.date(2026, 3, 1)
    assert w.start == dt.date(2026, 1, 1)
    assert w.holdout_start == dt.date(2026, 2, 20)
    assert w.train_end == dt.date(2026, 2, 19)
    assert (w.end - w.holdout_start).days + 1 == 10
    assert (w.end - w.start).days + 1 == 60


def test_window_rejects_a_holdout_as_long_as_the_window() -> None:
    with pytest.raises(ValueError, match="holdout_days \\(10\\) must be smaller than window_days \\(10\\)"):
        training_window(dt.date(2026, 3, 31), delay_days=0, window_days=10, holdout_days=10)
