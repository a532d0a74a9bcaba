"""A multiclass model's predictions as monitoring reads them: the predicted class and every class's probability.

A multiclass version's predictions table holds, per row, `predicted_label` (the argmax class name), `score`
(its probability) and `class_scores` (JSON, class name -> probability). Monitoring reads them into
`ClassScores`: the class names in the version's order (`ml_batch.model.training.class_names`, stored with the
version and in its reference profile), the predicted class of each row, and an (n, k) array of probabilities
in that order. `class_probabilities` is the one reader of `class_scores`, for drift and realized performance.

**Drift rows.** The reference profile stores the holdout's predicted-class mix under `PREDICTED_CLASS` (as a
categorical feature's frequencies) and each class's probability under `class_feature(name)` (as a numeric
feature's bins and sample), calibrated per holdout day like the scores (`ml_batch.monitoring.profile`). The
day's mix gets the PSI, JS and chi-square rows of a categorical feature and each class's probability the PSI,
KS and Wasserstein rows of the scores (`ml_batch.monitoring.rows`), with their thresholds
(`ml_batch.monitoring.thresholds`). A class predicted on the day that the holdout never predicted is in the
"unseen" bucket of the mix's rows and named in `DriftResult.unseen_classes`. Like score drift, class drift is
its own verdict (`DriftResult.class_drift`): it is about the predictions, not the inputs, and does not count
towards the dataset-drift share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_batch.monitoring.inputs import PREDICTED_CLASS, DriftInputError, class_feature
from ml_batch.monitoring.rows import DriftRow, KsSubset, categorical_rows, numeric_rows
from ml_batch.monitoring.thresholds import feature_thresholds
from ml_batch.spec import Spec


@dataclass(frozen=True)
class ClassScores:
    """A multiclass model's predictions of some rows.

    Attributes:
        classes: The class names, in the order of the probabilities' columns.
        predicted: The predicted class of each row (text).
        probabilities: (n, k) probabilities, columns in `classes` order.
    """

    classes: tuple[str, ...]
    predicted: np.ndarray
    probabilities: np.ndarray

    def __post_init__(self) -> None:
        n, k = len(self.predicted), len(self.classes)
        if self.probabilities.shape != (n, k):
            raise DriftInputError(f"class probabilities have shape {self.probabilities.shape}: expected ({n}, {k}) "
                                  f"for {n} rows and the classes {list(self.classes)}")

    @classmethod
    def from_probabilities(cls, classes: Sequence[str], probabilities: np.ndarray) -> ClassScores:
        """Predictions from probabilities alone: each row's predicted class is its argmax (the first of ties)."""
        array = np.asarray(probabilities, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != len(classes):
            raise DriftInputError(f"class probabilities have shape {array.shape}: expected (n, {len(classes)}) for "
                                  f"the classes {list(classes)}")
        names = np.asarray([str(c) for c in classes], dtype=object)
        predicted = names[array.argmax(axis=1)] if array.shape[0] else np.empty(0, dtype=object)
        return cls(tuple(names.tolist()), predicted, array)


def class_probabilities(values: Sequence[Any] | pd.Series, classes: Sequence[str], what: str) -> np.ndarray:
    """The (n, k) probabilities of `class_scores` values (JSON text, as ADBC reads jsonb, or dicts, as
    psycopg does), columns in `classes` order.

    Raises:
        DriftInputError: If a value is not a JSON object, or lacks one of the classes (`what` names the rows).
    """
    names = [str(c) for c in classes]
    rows = list(values)
    out = np.empty((len(rows), len(names)), dtype=np.float64)
    for i, value in enumerate(rows):
        scores = json.loads(value) if isinstance(value, str | bytes) else value
        if not isinstance(scores, Mapping):
            raise DriftInputError(f"{what}: class_scores of row {i} is {type(scores).__name__}, expected an object "
                                  f"of class name -> probability for the classes {names}")
        missing = [name for name in names if name not in scores]
        if missing:
            raise DriftInputError(f"{what}: class_scores of row {i} has no probability for the classes {missing} "
                                  f"(it has {sorted(map(str, scores))}; expected {names})")
        out[i] = [float(scores[name]) if scores[name] is not None else np.nan for name in names]
    return out


def frame_class_scores(frame: pd.DataFrame, classes: Sequence[str], *, predicted: str, scores: str,
                       what: str) -> ClassScores:
    """The predictions of a frame's rows: its `predicted` column (the class names) and `scores` column
    (`class_scores`), in `classes` order."""
    for name in (predicted, scores):
        if name not in frame.columns:
            raise DriftInputError(f"{what} has no column {name!r}: a multiclass model's drift check needs the "
                                  "predicted class and the class probabilities")
    labels = np.asarray([None if v is None else str(v) for v in frame[predicted]], dtype=object)
    return ClassScores(tuple(str(c) for c in classes), labels, class_probabilities(frame[scores], classes, what))


def profile_classes(profile: Mapping[str, Any]) -> list[str] | None:
    """The class names a profile was built with (None: not a multiclass model's profile)."""
    entry = profile.get("classes")
    if not isinstance(entry, Mapping):
        return None
    return [str(name) for name in entry["names"]]


def class_rows(spec: Spec, profile: Mapping[str, Any], predictions: ClassScores, ks_subset: KsSubset
               ) -> tuple[list[DriftRow], list[str]]:
    """The predicted-class mix's rows and each class's probability rows against the profile, and the classes
    predicted on the day that the reference never predicted (most rows first).

    Raises:
        DriftInputError: If the profile's classes are not the predictions'.
    """
    entry = profile["classes"]
    names = [str(name) for name in entry["names"]]
    if list(predictions.classes) != names:
        raise DriftInputError(f"the day's predictions are of the classes {list(predictions.classes)} but the "
                              f"profile's are {names}: they were not scored by the profiled version")
    counts = pd.Series(predictions.predicted, dtype=object).value_counts(sort=False)
    mix = {str(name): int(n) for name, n in counts.items()}
    rows = categorical_rows(PREDICTED_CLASS, entry["predicted"], mix, feature_thresholds(spec, profile,
                                                                                          PREDICTED_CLASS))
    unseen = sorted((name for name in mix if name not in entry["predicted"]["frequencies"]),
                    key=lambda name: (-mix[name], name))
    for index, name in enumerate(names):
        feature = class_feature(name)
        values = predictions.probabilities[:, index]
        values = np.where(np.isfinite(values), values, np.nan)
        rows.extend(numeric_rows(feature, entry["scores"][name], values, feature_thresholds(spec, profile, feature),
                                 ks_subset))
    return rows, unseen
