"""Re-verifying a version under another environment: re-score the holdout sample stored with it at training.

A version fitted under other library versions is refused at load (`ml_batch.model.environment`). Whether it
still predicts the same here is a question with an exact answer: each version stores a sample of its holdout
rows with the scores it gave them at training (`holdout_sample`, in `model_versions.holdout_sample`), and
`verify_version` unpickles the version here (after the same sha256/HMAC check as any load, but without the
environment refusal: that is the point), re-scores the sample with `training.predict_scores` and compares.
Within the tolerance (max abs difference 1e-9 by default) this environment is recorded as verified and the
version loads in it; otherwise a "verify_failed" event is recorded and the version stays refused.

The sample is up to `SAMPLE_ROWS` holdout rows, evenly spaced over the holdout in its order (event time, key),
so the same holdout always gives the same sample. Its values are stored so that they read back as exactly the
values scored (the tolerance is far below what a lossy round trip would cost):

* numeric features as JSON numbers, which PostgreSQL's jsonb keeps digit for digit (Python writes the shortest
  digits that read back as the same float), and NaN/inf/-inf as the text "NaN"/"inf"/"-inf"
  (`ml_batch.jsonvalues`); read back as float64, which is what the pipeline's numeric step makes of them
  (jsonb has no negative zero: -0.0 reads back as 0.0, which the imputer and scaler treat alike);
* categorical features as their JSON value (text, a number, a bool) and a missing one as null, which turns
  into the same category (`ml_batch.categories`) as the value scored;
* scores as JSON numbers: one per row, or for a multiclass version one list per row of its class
  probabilities (in `training.class_names` order), so the re-scored (n, k) matrix is compared cell by cell.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.db.tables import model_versions
from ml_batch.errors import FeatureSchemaMismatch, RegistryError, VerificationFailed
from ml_batch.jsonvalues import json_scalar
from ml_batch.model import environment, registry
from ml_batch.model.environment import VerifiedEnvironment
from ml_batch.model.training import predict_scores
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 500
DEFAULT_TOLERANCE = 1e-9
_FORMAT = 1


@dataclass(frozen=True)
class HoldoutSample:
    """Holdout rows' feature values (column by column, in the spec's order) and their scores at training."""

    features: dict[str, list[Any]]
    scores: list[Any]  # a float per row, or a multiclass row's list of class probabilities

    @classmethod
    def of(cls, spec: Spec, holdout: pd.DataFrame, scores: np.ndarray) -> HoldoutSample:
        """Up to `SAMPLE_ROWS` rows of `holdout`, evenly spaced, with their `scores` (one per holdout row)."""
        if len(scores) != len(holdout):
            raise ValueError(f"{len(scores)} scores for {len(holdout)} holdout rows: expected one score per row")
        n = len(holdout)
        k = min(n, SAMPLE_ROWS)
        positions = [i * n // k for i in range(k)]  # distinct, first row included, spread over the holdout
        rows = holdout.iloc[positions]
        features = {f.name: [_encode(value, f.type) for value in rows[f.name].tolist()] for f in spec.features}
        picked = np.asarray(scores, dtype=np.float64)[positions]
        if picked.ndim == 2:
            return cls(features, [[_encode(float(p), "numeric") for p in row] for row in picked])
        return cls(features, [_encode(float(s), "numeric") for s in picked])

    def as_dict(self) -> dict[str, Any]:
        """As `model_versions.holdout_sample` stores it (JSON-safe)."""
        return {"format": _FORMAT, "features": self.features, "scores": self.scores}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HoldoutSample:
        """A stored `model_versions.holdout_sample`."""
        if data.get("format") != _FORMAT:
            raise RegistryError(f"holdout sample has format {data.get('format')!r}: expected {_FORMAT}")
        return cls({name: list(values) for name, values in data["features"].items()}, list(data["scores"]))

    def frame(self, spec: Spec) -> pd.DataFrame:
        """The sample's rows as the frame `training.predict_scores` takes (the spec's feature columns, in its
        order: jsonb keeps an object's keys in an order of its own, shortest first)."""
        if sorted(self.features) != sorted(spec.feature_names):
            raise FeatureSchemaMismatch(
                f"model {spec.name!r}: the holdout sample has features {list(self.features)}, the spec "
                f"{spec.feature_names}")
        return pd.DataFrame({f.name: _decoded(self.features[f.name], f.type) for f in spec.features})

    def recorded_scores(self) -> np.ndarray:
        """The scores recorded at training, as float64: (n,), or (n, k) for a multiclass version."""
        if self.scores and isinstance(self.scores[0], list):
            return np.array([_decoded(row, "numeric") for row in self.scores], dtype=np.float64)
        return np.asarray(_decoded(self.scores, "numeric"), dtype=np.float64)


def holdout_sample(spec: Spec, holdout: pd.DataFrame, scores: np.ndarray) -> dict[str, Any]:
    """What `NewVersion.holdout_sample` holds: `HoldoutSample.of(spec, holdout, scores)`, JSON-safe.

    Args:
        spec: The model's spec (its features are sampled).
        holdout: The holdout rows scored at training, in their order.
        scores: Their scores (`training.predict_scores`), one per row.

    Returns:
        The sample as `model_versions.holdout_sample` stores it.
    """
    return HoldoutSample.of(spec, holdout, scores).as_dict()


def _encode(value: Any, kind: str) -> Any:
    if kind == "categorical" and _missing(value):
        return None  # NaN, NA, NaT and None are all the missing category
    return json_scalar(value, non_finite="text")


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _decoded(values: Sequence[Any], kind: str) -> np.ndarray:
    if kind == "categorical":
        return np.array(values, dtype=object)
    # "NaN", "inf", "-inf" are what `json_scalar` wrote for non-finite numbers; float() reads them back
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class VerifyResult:
    """A successful verification: the version now loads in `environment`."""

    model_name: str
    version: int
    rows: int
    max_abs_diff: float
    tolerance: float
    environment: dict[str, str]
    fitted_environment: dict[str, str] | None

    def as_dict(self) -> dict[str, Any]:
        """As `models verify --json` prints it."""
        return dict(self.__dict__)


def verify_version(engine: sa.Engine, spec: Spec, version: int | str, *, actor: str,
                   tolerance: float = DEFAULT_TOLERANCE) -> VerifyResult:
    """Re-score a version's holdout sample here; within `tolerance`, record this environment as verified.

    Args:
        engine: The ml-batch database.
        spec: The model's spec.
        version: A version number or an alias.
        actor: Who verifies (recorded with the environment and the audit event).
        tolerance: The largest absolute score difference accepted.

    Returns:
        The verification (rows re-scored, max abs difference, this environment).

    Raises:
        ArtifactIntegrityError: The bytes are not the ones registered and signed (nothing was unpickled).
        RegistryError: No such version, or it has no holdout sample (registered before migration 0013).
        VerificationFailed: The scores differ by more than `tolerance` (recorded; the version stays refused).
    """
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance {tolerance!r} must be a finite number >= 0")
    loaded = registry.load(engine, spec, version, refuse_other_environment=False)
    number = loaded.info.version
    stored = stored_sample(engine, spec.name, number)
    if stored is None:
        raise RegistryError(
            f"model {spec.name!r} version {number} has no holdout sample to re-score (it was registered before "
            "migration 0013): it cannot be verified; retrain the model ('ml-batch train') or re-register its "
            "pipeline ('ml-batch models register') under this environment")
    sample = HoldoutSample.from_dict(stored)
    diff = max_abs_diff(predict_scores(loaded.pipeline, sample.frame(spec), spec), sample.recorded_scores())
    here = environment.current()
    details = {"environment": here, "fitted_environment": loaded.info.environment, "rows": len(sample.scores),
               "max_abs_diff": diff, "tolerance": tolerance}
    if not diff <= tolerance:
        registry.record_event(engine, spec.name, "verify_failed", actor=actor, to_version=number, details=details,
                              reason=f"max abs score difference {diff:.3g} > tolerance {tolerance:.3g}")
        raise VerificationFailed(
            f"model {spec.name!r} version {number}: re-scoring its {len(sample.scores)} holdout sample rows under "
            f"{environment.describe(here)} gives scores up to {diff:.6g} away from those recorded at training "
            f"(tolerance {tolerance:g}): it stays refused in this environment; retrain it here ('ml-batch train')")
    entry = VerifiedEnvironment(here, dt.datetime.now(dt.UTC).isoformat(), actor, diff, len(sample.scores))
    registry.add_verified_environment(engine, spec.name, number, entry, actor=actor, details=details)
    logger.info("verified %s version %d under %s: %d rows, max abs difference %.3g", spec.name, number,
                environment.describe(here), len(sample.scores), diff)
    return VerifyResult(spec.name, number, len(sample.scores), diff, tolerance, here, loaded.info.environment)


def max_abs_diff(scores: np.ndarray, recorded: np.ndarray) -> float:
    """The largest absolute difference of two score arrays (pure): NaN where both are NaN counts as equal,
    NaN on one side only as infinitely far; arrays of different lengths are infinitely far too."""
    if scores.shape != recorded.shape:
        return math.inf
    both_nan = np.isnan(scores) & np.isnan(recorded)
    with np.errstate(invalid="ignore"):
        diffs = np.where(both_nan, 0.0, np.abs(scores - recorded))
    diffs = np.where(np.isnan(diffs), math.inf, diffs)
    return float(diffs.max()) if diffs.size else 0.0


def stored_sample(engine: sa.Engine, model_name: str, version: int) -> dict[str, Any] | None:
    """The holdout sample stored with a version at registration (`HoldoutSample.as_dict`), or None for versions
    registered without one."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(model_versions.c.holdout_sample).where(
                model_versions.c.model_name == model_name, model_versions.c.version == version
            )
        ).scalar_one_or_none()
