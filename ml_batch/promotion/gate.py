"""The promotion gate: a candidate is promoted only when it is good enough and better than the champion.

Both models are scored on the *same* holdout rows, so the comparison measures the models, not the days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    def as_dict(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.__dict__.items()}


def decide(
    metric: str,
    candidate_score: float,
    champion_score: float | None,
    *,
    floor: float | None,
    min_improvement: float,
) -> GateDecision:
    """Floor first (absolute), then improvement over the champion (relative); no champion → floor alone."""

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
