"""Out of support: the share of a day's rows outside what the version was trained on.

A model says nothing trustworthy about values it has never seen: a tree is flat beyond its last split, a
linear model extrapolates. Effect sizes (KS, PSI, Wasserstein) say *how much* a distribution moved; this
says whether today's rows are *outside* the training data at all, which no day of the training window can be.

**Support.** The profile stores each feature's support (`support_entry`, at registration): for a numeric
feature the `drift.support_quantiles` band of the training window's values (default (0, 1): its minimum and
maximum); for a categorical feature the categories seen (nulls are not a category). The training window is
the training rows *and* the holdout rows (`profile.reference_profile` passes both): the version was fitted on
the first and measured on the second, so a holdout day is within support as much as a training day is.

**The check.** `out_of_support_row` gives every feature an `out_of_support` row: the share of the day's
non-null values below the lower bound or above the upper one, or of never-seen categories; nulls are left
out (their share has its own row). The row drifted when the share reaches `drift.out_of_support_share`
(default 0.25), and it is a deciding row: a feature a quarter of whose values the model has never seen has
changed, whatever the effect sizes say, and it is the one signal that a feature shared within a day (the
weather) has left the training range, where every other statistic compares it with days that differ
wildly among themselves. With the default band (minimum, maximum) a day of the training window is never out
of support: each of its values lies within the window's range. A narrower band (e.g. (0.01, 0.99)) makes the
extremes of the window out of support too: that is what such a band asks for.

**Categories beyond `max_categories`.** The profile keeps at most `max_categories` categories and pools the
rarest under `__other__`; the support keeps at most as many seen categories. When more were seen, a category
the support does not list may be one of them: such a feature's support is "incomplete" and it gets no
out-of-support row (the drift result notes it), as the unseen bucket of `ml_batch.monitoring.rows` does.

`out_of_support_text` is the one sentence an alert, the CLI and the report say about an entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ml_batch.monitoring.inputs import MISSING

Direction = Literal["above", "below", "unseen"]
SUPPORT_TEST = "out_of_support"
# Never-seen categories listed by name in a row's detail and an entry (the total is always given).
_MAX_LISTED = 20


@dataclass(frozen=True)
class OutOfSupport:
    """A feature whose share of rows outside the training support reached `drift.out_of_support_share`.

    Attributes:
        feature: The feature.
        share: Share of the day's non-null values outside the support.
        direction: "above" (mostly above the upper bound), "below" or "unseen" (categories never seen).
        bound: The bound crossed, as text: "above the training maximum 62.1", "below the training 0.01
            quantile -3", "outside the training range [-3, 62.1]" (values on both sides), "categories never
            seen in training: 'x', 'y'".
        value: The bound's value on the side of `direction` (None for categories).
        categories: The never-seen categories (at most 20, most frequent first; empty for numeric features).
    """

    feature: str
    share: float
    direction: Direction
    bound: str
    value: float | None = None
    categories: tuple[str, ...] = ()


def support_entry(values: np.ndarray | Sequence[str], quantiles: tuple[float, float],
                  max_categories: int) -> dict[str, Any]:
    """A feature's support, as the profile stores it (JSON).

    Args:
        values: A numeric feature's finite float values (NaN = null) or a categorical feature's category
            strings (`__missing__` = null), over the whole training window.
        quantiles: (low, high) quantiles of a numeric feature's band; (0, 1) = minimum and maximum.
        max_categories: Most categories kept; with more, the support is incomplete.

    Returns:
        {"low", "high", "quantiles"} for numeric values, {"categories", "complete"} for categories; a numeric
        feature with no non-null value gets {"quantiles"} only (no bound to cross).
    """
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        present = values[np.isfinite(values)]
        entry: dict[str, Any] = {"quantiles": [float(quantiles[0]), float(quantiles[1])]}
        if present.size:
            low, high = np.quantile(present, quantiles)
            entry.update(low=float(low), high=float(high))
        return entry
    seen = sorted({str(value) for value in values} - {MISSING})
    if len(seen) > max_categories:
        return {"categories": [], "complete": False}
    return {"categories": seen, "complete": True}


def numeric_support_detail(support: Mapping[str, Any], present: np.ndarray) -> dict[str, Any] | None:
    """The out-of-support facts of a numeric feature's (non-empty, NaN-free) values, or None when the
    support has no bounds."""
    if "low" not in support or "high" not in support:
        return None
    low, high = float(support["low"]), float(support["high"])
    below = float(np.count_nonzero(present < low)) / present.size
    above = float(np.count_nonzero(present > high)) / present.size
    q_low, q_high = (float(q) for q in support["quantiles"])
    return {"share": below + above, "below_share": below, "above_share": above, "low": low, "high": high,
            "quantiles": [q_low, q_high], "values": int(present.size)}


def categorical_support_detail(support: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, Any] | None:
    """The out-of-support facts of a categorical feature's category counts (`__missing__` left out), or None
    when the support is incomplete or the day has no non-null value."""
    if not support.get("complete"):
        return None
    seen = set(support["categories"])
    present = {category: n for category, n in counts.items() if category != MISSING and n > 0}
    total = sum(present.values())
    if total == 0:
        return None
    unseen = {category: n for category, n in present.items() if category not in seen}
    listed = sorted(unseen.items(), key=lambda item: (-item[1], item[0]))[:_MAX_LISTED]
    return {"share": sum(unseen.values()) / total, "unseen": dict(listed), "unseen_categories": len(unseen),
            "values": total}


def entry_from_detail(feature: str, detail: Mapping[str, Any]) -> OutOfSupport:
    """The entry an `out_of_support` row's detail describes (numeric: the side with the larger share)."""
    share = float(detail["share"])
    if "unseen" in detail:
        categories = tuple(detail["unseen"])
        shown = ", ".join(repr(c) for c in categories)
        more = detail["unseen_categories"] - len(categories)
        bound = f"categories never seen in training: {shown}" + (f" and {more} more" if more > 0 else "")
        return OutOfSupport(feature, share, "unseen", bound, None, categories)
    q_low, q_high = detail["quantiles"]
    low, high = float(detail["low"]), float(detail["high"])
    direction: Direction = "above" if detail["above_share"] >= detail["below_share"] else "below"
    value = high if direction == "above" else low
    if detail["above_share"] > 0 and detail["below_share"] > 0:
        bound = f"outside the training range [{low:.4g}, {high:.4g}]"
    elif direction == "above":
        bound = f"above the training {_bound_name(q_high)} {high:.4g}"
    else:
        bound = f"below the training {_bound_name(q_low)} {low:.4g}"
    return OutOfSupport(feature, share, direction, bound, value)


def out_of_support_text(entry: OutOfSupport) -> str:
    """The one sentence about an entry, e.g. "temp: 97% of rows above the training maximum 62.1"."""
    percent = f"{entry.share:.0%}" if entry.share >= 0.01 else f"{entry.share:.2%}"
    rows = "rows" if entry.direction != "unseen" else "rows in"
    return f"{entry.feature}: {percent} of {rows} {entry.bound}"


def _bound_name(quantile: float) -> str:
    if quantile == 1:
        return "maximum"
    if quantile == 0:
        return "minimum"
    return f"{quantile:.4g} quantile"
