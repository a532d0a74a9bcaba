"""What a version's reference profile says about its training data, for the layers that do not build it.

The profile is built by `ml_batch.monitoring.profile` and stored with the version (`model_versions.
reference_profile`, `ml_batch.model.registry`). The plan (`ml_batch.run.completeness`) needs one fact from it,
each feature's null share in training, and reads only that: the features' entries without their value
samples, which are most of a profile's bytes (a 20-feature profile holds 100,000 sampled values).

`entry_null_share` is the one rule for a feature entry's null share, which the drift checks use too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ml_batch.categories import MISSING_CATEGORY
from ml_batch.db.tables import model_versions


def entry_null_share(entry: Mapping[str, Any]) -> float:
    """The share of nulls in a profile's feature entry: a numeric feature's `null_share`, a categorical one's
    `__missing__` frequency (0 when the entry lists none)."""
    if entry.get("type") == "categorical":
        return float(entry.get("frequencies", {}).get(MISSING_CATEGORY, 0.0))
    return float(entry["null_share"])


def training_null_shares(engine: sa.Engine, model_name: str, version: int) -> dict[str, float]:
    """Each profiled feature's null share in version `version`'s training data ({} without a profile)."""
    features = sa.func.jsonb_each(model_versions.c.reference_profile["features"]).table_valued(
        sa.column("key", sa.Text), sa.column("value", JSONB)).render_derived(name="feature")
    stmt = (sa.select(features.c.key, features.c.value.op("-")(sa.literal("sample", sa.Text)))
            .select_from(model_versions).join(features, sa.true())
            .where(model_versions.c.model_name == model_name, model_versions.c.version == version))
    with engine.connect() as conn:
        return {name: entry_null_share(entry) for name, entry in conn.execute(stmt)}
