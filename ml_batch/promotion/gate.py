"""The promotion gate: a candidate is promoted only when it is good enough and better than the champion.

Both models are scored on the *same* holdout rows, so the comparison measures the models, not the days.
Two multiclass models may know different classes (a class new in the window, or one gone from it): then
both are judged on the same rows *and* the same classes, by `ml_batch.model.metrics.shared_class_scores`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ml_batch.jsonvalues import json_safe
from ml_batch.model.metrics import is_better, meets_floor


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, with the numbers the decision was made on."""

    promote: bool
    metric: str
    candidate_score: float
    champion_score: float | None
    floor: float | None
    min_improvement: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The decision as JSON (the audit trail's `gate_decision` details): a score that is no finite
        number (an undefined metric) is null, by the one JSON-safe rule."""
        return dict(json_safe(self.__dict__))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        """The decision back from `as_dict`'s JSON (extra keys, such as the rest of an audit event's details,
        are ignored); an undefined candidate score, stored as null, is NaN again."""
        candidate = data["candidate_score"]
        return cls(
            promote=bool(data["promote"]), metric=str(data["metric"]),
            candidate_score=math.nan if candidate is None else float(candidate),
            champion_score=data["champion_score"], floor=data["floor"],
            min_improvement=float(data["min_improvement"]), reason=str(data["reason"]),
        )


def decide(
    metric: str,
    candidate_score: float,
    champion_score: float | None,
    *,
    floor: float | None,
    min_improvement: float,
) -> GateDecision:
    """Floor first (absolute), then improvement over the champion (relative); no champion → floor alone.

    Args:
        metric: The spec's `training.metric` (its direction decides "better").
        candidate_score: The candidate's score on the holdout (NaN when undefined).
        champion_score: The champion's score on the same rows, None without a champion.
        floor: `training.min_score`, None for no floor.
        min_improvement: `training.min_improvement` over the champion.

    Returns:
        The decision with its reason.
    """

    def verdict(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, metric, candidate_score, champion_score, floor, min_improvement, reason)

    if math.isnan(candidate_score):
        return verdict(False, f"candidate {metric} is undefined on the holdout (nan), so it cannot be promoted")
    if not meets_floor(metric, candidate_score, floor):
        return verdict(False, f"candidate {metric} {candidate_score:.4f} does not reach the floor {floor}")
    if champion_score is None:
        if floor is None:
            return verdict(True, f"no champion yet and no floor (training.min_score) set; candidate {metric} "
                                 f"{candidate_score:.4f} passes on its own")
        return verdict(True, f"no champion yet; candidate {metric} {candidate_score:.4f} reaches the floor {floor}")
    if is_better(metric, candidate_score, champion_score, min_improvement):
        return verdict(
            True,
            f"candidate {metric} {candidate_score:.4f} beats champion {champion_score:.4f} "
            f"by at least {min_improvement}",
        )
    return verdict(
        False,
        f"candidate {metric} {candidate_score:.4f} does not beat champion {champion_score:.4f} "
        f"by {min_improvement} on the same holdout",
    )
