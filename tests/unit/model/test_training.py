"""The training window (`ml_batch.model.training.training_window`): days whose labels are known, a time holdout."""

from __future__ import annotations

import datetime as dt

import pytest

from ml_batch.model.training import training_window
from ml_batch.spec import Spec


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


# -- multiclass labels and scores ---------------------------------------------------------------------------
def _multiclass_spec() -> Spec:
    from tests.integration.helpers import toy_spec

    data = toy_spec("s").model_dump(mode="json")
    data["model"]["task"] = "multiclass"
    data["training"].pop("metric")
    return Spec.model_validate(data)


def test_multiclass_labels_are_class_names_as_text_and_never_null() -> None:
    import numpy as np
    import pandas as pd

    from ml_batch.errors import TrainingError
    from ml_batch.model.labels import LABEL
    from ml_batch.model.training import labels_of

    spec = _multiclass_spec()
    labels = labels_of(pd.DataFrame({LABEL: [3, 1, 3]}), spec)
    assert labels.dtype == object and labels.tolist() == ["3", "1", "3"]
    assert labels_of(pd.DataFrame({LABEL: [3.0, 1.0]}), spec).tolist() == ["3", "1"]  # an int column with NULLs
    assert labels_of(pd.DataFrame({LABEL: ["sales", "billing"]}), spec).tolist() == ["sales", "billing"]
    with pytest.raises(TrainingError, match=r"label column 'y' is NULL in 1 of 2 labelled rows"):
        labels_of(pd.DataFrame({LABEL: ["sales", np.nan]}), spec)


def test_multiclass_scores_are_the_probabilities_of_the_classes_in_class_names_order() -> None:
    import numpy as np
    import pandas as pd

    from ml_batch.features import build_pipeline, feature_frame
    from ml_batch.model.training import class_names, predict_scores

    spec = _multiclass_spec()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({name: rng.normal(size=60) for name in spec.feature_names})
    frame[[f.name for f in spec.features if f.type == "categorical"]] = "a"
    pipeline = build_pipeline(spec).fit(feature_frame(frame, spec), np.array([3, 10, 2] * 20))  # fitted on ints
    assert class_names(pipeline) == ["2", "3", "10"]
    scores = predict_scores(pipeline, frame, spec)
    assert scores.shape == (60, 3) and scores.dtype == np.float64
    assert np.allclose(scores.sum(axis=1), 1.0)
    assert predict_scores(pipeline, frame.iloc[:0], spec).shape == (0, 3)
