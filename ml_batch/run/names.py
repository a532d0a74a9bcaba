"""The names of a run's database objects, and the one inventory of them.

A run of day D works in objects of its own, next to the model's predictions table (in its schema):

- the **staging table** `<table>__s_<hash>`: the run's scored rows until publish swaps it in as the day;
- the **snapshot of the day** `ml_batch_day_<hash>`: the day's source rows read once at plan time, as one
  piece (`..._0`) or a partitioned parent with one piece per shard (`..._<k>`), and while it is split by
  its row count an unsplit `..._all` (`ml_batch.run.snapshot`);
- one **validation view** per shard `ml_batch_validate_<hash>`: what GX validates, over the shard's piece.

Hashes keep every name a valid, short identifier whatever the model and run id; the snapshot's and the
views' names are lower case (GX names tables unquoted). `run_objects` lists them all, in the order they can
be dropped (views before the snapshot they read): the cleanup of dead runs and retention's sweep use it, so
an object added to a run is found by both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from ml_batch.spec import Spec

SNAPSHOT_PREFIX = "ml_batch_day_"
VIEW_PREFIX = "ml_batch_validate_"
STAGING_INFIX = "__s_"

ObjectKind = Literal["view", "table", "snapshot"]


@dataclass(frozen=True)
class RunObject:
    """One object a run may have: its schema-qualified name and how it is dropped."""

    name: str
    kind: ObjectKind


def _digest(*parts: object, length: int) -> str:
    return hashlib.sha1("/".join(str(part) for part in parts).encode()).hexdigest()[:length]


def staging_table(spec: Spec, run_id: str) -> str:
    """The run's staging table (schema-qualified)."""
    return spec.predictions.qualified(f"{staging_prefix(spec)}{_digest(spec.name, run_id, length=10)}")


def staging_prefix(spec: Spec) -> str:
    """What every staging table of `spec`'s model starts with (unqualified)."""
    return f"{spec.predictions.table_name}{STAGING_INFIX}"


def shard_view(spec: Spec, run_id: str, shard: int) -> str:
    """The view GX validates for one shard of a run (schema-qualified)."""
    return spec.predictions.qualified(f"{VIEW_PREFIX}{_digest(spec.name, run_id, shard, length=16)}")


def snapshot_table(spec: Spec, run_id: str) -> str:
    """The run's snapshot of the day (schema-qualified): the partitioned parent when the day is split."""
    return spec.predictions.qualified(f"{SNAPSHOT_PREFIX}{_digest(spec.name, run_id, length=16)}")


def snapshot_piece(spec: Spec, run_id: str, shard: int) -> str:
    """The table holding exactly shard `shard`'s rows of the run's day."""
    return f"{snapshot_table(spec, run_id)}_{int(shard)}"


def snapshot_whole(spec: Spec, run_id: str, shards: int) -> str:
    """The table to read the run's whole day from: its one piece, or the partitioned parent of its K > 1."""
    return snapshot_piece(spec, run_id, 0) if shards == 1 else snapshot_table(spec, run_id)


def snapshot_unsplit(spec: Spec, run_id: str) -> str:
    """Where the day lands while it is counted, before it is split into shards."""
    return f"{snapshot_table(spec, run_id)}_all"


def snapshot_tables(spec: Spec, run_id: str) -> list[str]:
    """Every table a run's snapshot may consist of, parent first (dropping it drops its pieces)."""
    return [snapshot_table(spec, run_id), snapshot_unsplit(spec, run_id), snapshot_piece(spec, run_id, 0)]


def run_objects(spec: Spec, run_id: str, shards: int) -> list[RunObject]:
    """Every object run `run_id` (of `shards` shards) may have, in the order they can be dropped."""
    views = [RunObject(shard_view(spec, run_id, shard), "view") for shard in range(shards)]
    snapshot = [RunObject(name, "snapshot") for name in snapshot_tables(spec, run_id)]
    return [*views, RunObject(staging_table(spec, run_id), "table"), *snapshot]
