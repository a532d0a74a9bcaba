"""A multiclass model's predictions in monitoring: reading class_scores, the profile's classes, class drift."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.classes import ClassScores, class_probabilities, frame_class_scores
from ml_batch.monitoring.drift import check_drift
from ml_batch.monitoring.inputs import PREDICTED_CLASS, DriftInputError, class_feature
from ml_batch.monitoring.profile import build_profile
from ml_batch.monitoring.report import render_html
from ml_batch.spec import Spec, load_spec
from tests.unit.monitoring.data import REPO, rows_of

CLASSES = ["billing", "other", "sales", "technical"]


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "message_length": rng.lognormal(6, 0.8, rows), "attachments": rng.poisson(0.5, rows).astype(float),
        "account_age_days": rng.exponential(600, rows), "paid_plan": (rng.random(rows) < 0.4).astype(float),
        "channel": rng.choice(["email", "chat", "phone", "web"], size=rows, p=[0.4, 0.25, 0.15, 0.2]),
    })


def _probabilities(rows: int, seed: int, weights: tuple[float, ...] = (4.0, 1.5, 2.0, 3.0)) -> np.ndarray:
    """Rows of class probabilities (columns in CLASSES order) whose argmax mix follows `weights`."""
    return np.random.default_rng(seed).dirichlet(weights, size=rows)


@pytest.fixture(scope="module")
def profile(spec: Spec) -> dict[str, Any]:
    days = (pd.Timestamp("2026-03-01") + pd.to_timedelta(np.arange(6000) % 20, unit="D")).to_numpy()
    built = build_profile(spec, _frame(6000, 0), _probabilities(6000, 1), days=days, score_days=days,
                          classes=CLASSES)
    return json.loads(json.dumps(built))  # through JSON, as it comes back from the registry


def test_class_probabilities_reads_json_text_and_objects_in_the_class_order() -> None:
    values = ['{"sales": 0.2, "billing": 0.7, "other": 0.1}', {"billing": 0.1, "other": 0.3, "sales": 0.6}]
    assert class_probabilities(values, ["billing", "other", "sales"], "rows").tolist() == [
        [0.7, 0.1, 0.2], [0.1, 0.3, 0.6]]


def test_class_probabilities_names_a_missing_class() -> None:
    with pytest.raises(DriftInputError, match=r"row 0 has no probability for the classes \['sales'\]"):
        class_probabilities(['{"billing": 0.9, "other": 0.1}'], ["billing", "other", "sales"], "the day's rows")


def test_predictions_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(DriftInputError, match=r"shape \(2, 3\): expected \(n, 4\)"):
        ClassScores.from_probabilities(CLASSES, np.full((2, 3), 1 / 3))


def test_profile_holds_the_predicted_mix_and_each_class_probability(profile: dict[str, Any]) -> None:
    probabilities = _probabilities(6000, 1)
    entry = profile["classes"]
    assert entry["names"] == CLASSES
    predicted = pd.Series(np.asarray(CLASSES)[probabilities.argmax(axis=1)]).value_counts(normalize=True)
    for name in CLASSES:
        assert entry["predicted"]["frequencies"][name] == pytest.approx(predicted[name])
        assert entry["scores"][name]["mean"] == pytest.approx(probabilities[:, CLASSES.index(name)].mean())
    # The profile's score is what the predictions table's score holds: the predicted class's probability.
    assert profile["score"]["mean"] == pytest.approx(probabilities.max(axis=1).mean())
    calibrated = profile["calibration"]["classes"]
    assert set(calibrated) == {PREDICTED_CLASS, *(class_feature(name) for name in CLASSES)}
    assert len(calibrated[PREDICTED_CLASS]["js"]) == 20 and len(calibrated[class_feature("sales")]["ks"]) == 20


def test_a_day_like_the_reference_has_no_class_drift(spec: Spec, profile: dict[str, Any]) -> None:
    day = _probabilities(3000, 7)
    result = check_drift(spec, profile, _frame(3000, 8), day.max(axis=1),
                         classes=ClassScores.from_probabilities(CLASSES, day))
    assert result.class_drift is False
    assert set(rows_of(result, PREDICTED_CLASS)) == {"psi", "js", "chi2"}
    assert set(rows_of(result, class_feature("technical"))) == {"psi", "ks", "wasserstein"}
    assert result.unseen_classes == []


def test_a_shifted_class_mix_is_class_drift_and_not_dataset_drift(spec: Spec, profile: dict[str, Any]) -> None:
    day = _probabilities(3000, 7, weights=(1.0, 1.0, 1.0, 8.0))  # most tickets are technical now
    result = check_drift(spec, profile, _frame(3000, 8), day.max(axis=1),
                         classes=ClassScores.from_probabilities(CLASSES, day))
    assert result.class_drift is True
    assert rows_of(result, PREDICTED_CLASS)["js"].drifted
    assert rows_of(result, class_feature("technical"))["ks"].drifted
    assert not result.dataset_drift  # the features did not move: class drift is its own verdict
    assert "Class drift: YES" in render_html(spec.name, 1, pd.Timestamp("2026-04-01").date(), result, profile)


def test_a_class_the_reference_never_predicted_is_named(spec: Spec) -> None:
    reference = _probabilities(2000, 1)
    reference[:, CLASSES.index("other")] = 0.0  # the holdout never predicted "other"
    reference /= reference.sum(axis=1, keepdims=True)
    profile = json.loads(json.dumps(build_profile(spec, _frame(2000, 0), reference, classes=CLASSES)))
    day = _probabilities(500, 7)
    day[:50] = [0.05, 0.8, 0.1, 0.05]
    result = check_drift(spec, profile, _frame(500, 8), day.max(axis=1),
                         classes=ClassScores.from_probabilities(CLASSES, day))
    assert result.unseen_classes == ["other"]
    assert rows_of(result, PREDICTED_CLASS)["js"].detail["unseen"]["other"] >= 50
    html = render_html(spec.name, 1, pd.Timestamp("2026-04-01").date(), result, profile)
    assert "never on the reference holdout: other" in html


def test_a_multiclass_profile_needs_the_day_classes(spec: Spec, profile: dict[str, Any]) -> None:
    day = _probabilities(100, 7)
    with pytest.raises(DriftInputError, match="needs the day's predicted classes"):
        check_drift(spec, profile, _frame(100, 8), day.max(axis=1))


def test_the_day_classes_must_be_the_profiled_version_classes(spec: Spec, profile: dict[str, Any]) -> None:
    day = _probabilities(100, 7)
    other = ClassScores.from_probabilities(["a", "b", "c", "d"], day)
    with pytest.raises(DriftInputError, match=r"classes \['a', 'b', 'c', 'd'\] but the profile's are"):
        check_drift(spec, profile, _frame(100, 8), day.max(axis=1), classes=other)


def test_frame_class_scores_reads_the_published_columns() -> None:
    frame = pd.DataFrame({"p": ["sales", "billing"], "s": ['{"billing": 0.2, "sales": 0.8}',
                                                          '{"billing": 0.6, "sales": 0.4}']})
    read = frame_class_scores(frame, ["billing", "sales"], predicted="p", scores="s", what="rows")
    assert read.predicted.tolist() == ["sales", "billing"]
    assert read.probabilities.tolist() == [[0.2, 0.8], [0.6, 0.4]]


def test_class_rows_are_calibrated_on_the_holdout_days(spec: Spec, profile: dict[str, Any]) -> None:
    from ml_batch.monitoring.thresholds import feature_thresholds

    for feature in (PREDICTED_CLASS, class_feature("sales")):
        limits = feature_thresholds(spec, profile, feature)
        assert limits.source == "calibrated" and limits.calibrated  # from calibration["classes"], per score day
