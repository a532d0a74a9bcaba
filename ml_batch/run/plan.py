"""The first step of a day's run: pin what the run uses and read the day, once.

A plan first checks the spec against the source (`ml_batch.db.spec_check`: a typo in a feature is one line
naming the file, the field and the column, not PostgreSQL's `UndefinedColumn` halfway through). It then
resolves, once for the whole run, everything the later steps need: the day, the model version (an
explicit one, the champion now, or the champion at the end of the day), the spec (its text travels in the
plan, so later steps never re-read the specs folder, and its sha256 is recorded on the run), the number of
shards, and where the run stages its rows. Before it reads anything, it checks that the source's columns
still have the types that version was trained on (`spec_check.require_source_types`: a categorical column
turned integer would otherwise be scored as unseen categories). It reads the day from the source into the
run's snapshot, split by shard (`ml_batch.run.snapshot`): the run is the day as of plan time. Planning again
replaces the snapshot.
Then it judges the day as a whole (`ml_batch.run.completeness`: volume against history, readiness, null
shares) and records what it read of the source (`ml_batch.run.digest`) for reconcile; a refused day rolls
the whole plan back.

A plan refuses, before anything else, what no run can mean (`check_run_conf`, `check_day`): a run parameter
its DAG does not declare (`dry-run` for `dry_run` would otherwise be ignored and the day published), and a
day outside FIRST_DAY .. today + MAX_DAYS_AHEAD (`9999-12-31` would otherwise overflow on the day's upper bound,
an `OverflowError` retried for minutes). Airflow's Params check each declared key's value at trigger time but
accept any other key (`SerializedParamsDict.deep_merge` adds it with no schema), and a JSON schema cannot
say "before next year" without the DAG changing every day: so these two rules live here, deterministic
(`ConfigError`, not retried), and the CLI's `--date` options apply the same day range.

The plan is a `RunPlan` (`ml_batch.steps.StepResult`): the daily DAG's plan task returns `to_xcom()`, the
shard and publish tasks read it back with `from_xcom()`; the no-op DAG builds its plan with `RunPlan.noop`,
so a new field is a constructor argument both must give.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TypedDict

import sqlalchemy as sa

from ml_batch.db.spec_check import require_source_types, require_spec_db
from ml_batch.errors import ConfigError, DayIncomplete
from ml_batch.model import reference, registry
from ml_batch.model.schema import check_feature_schema
from ml_batch.run import completeness, digest, lifecycle, quarantine, runs, snapshot
from ml_batch.run.names import staging_table
from ml_batch.run.predictions import ensure_predictions_table
from ml_batch.run.staging import create_staging
from ml_batch.spec import PinnedSpec, Spec, parse_spec
from ml_batch.steps import StepResult

logger = logging.getLogger(__name__)

VERSION_POLICIES = ("champion", "champion_on_day")
#: The earliest day a run, a training or a monitoring command may name.
FIRST_DAY = dt.date(1900, 1, 1)
#: How far after today (UTC) a day may be: a year, for sources that publish planned days ahead.
MAX_DAYS_AHEAD = 366


def check_day(day: dt.date, what: str, *, today: dt.date | None = None) -> dt.date:
    """`day` when it lies in FIRST_DAY .. today (UTC) + MAX_DAYS_AHEAD, else a one-line refusal.

    Args:
        day: The day asked for.
        what: How the error names where it came from (e.g. `--date`, `param date`).
        today: Today (default: the UTC date now).

    Raises:
        ConfigError: The day is out of range, naming it and the range.
    """
    last = (today or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=MAX_DAYS_AHEAD)
    if FIRST_DAY <= day <= last:
        return day
    raise ConfigError(f"{what} {day.isoformat()} is out of range: expected a day from {FIRST_DAY.isoformat()} "
                      f"to {last.isoformat()} (today + {MAX_DAYS_AHEAD} days)")


def check_run_conf(conf: Mapping[str, object], known: Collection[str], *, dag_id: str) -> None:
    """Refuse a run conf holding a key its DAG does not declare, naming it, the closest known key and all of
    them (a misspelt `dry-run` must not publish a day meant as a dry run).

    Raises:
        ConfigError: One line naming every unknown key.
    """
    names = sorted(known)
    unknown = sorted(str(key) for key in conf if key not in known)
    if not unknown:
        return
    said = []
    for key in unknown:
        close = difflib.get_close_matches(key.replace("-", "_").lower(), names, n=1, cutoff=0.6)
        said.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    keys = "key" if len(unknown) == 1 else "keys"
    raise ConfigError(f"run conf of {dag_id}: unknown {keys} {', '.join(said)}: expected only "
                      f"{', '.join(names)}; nothing was run")


class RunPlan(StepResult):
    """Everything later steps need, resolved once: the day, the pinned version and spec, where to stage."""

    model: str
    day: dt.date
    run_id: str
    run_type: str
    dry_run: bool
    version: int
    artifact_sha256: str
    shards: int
    staging_table: str
    day_rows: int | None  # the day's rows in the run's snapshot: the basis of the quarantine share
    partial: bool  # the day's completeness checks refused it and the run publishes it anyway (allow_partial)
    spec_text: str  # the spec the run pinned, as it was read (a spec built in code: its canonical JSON)
    spec_sha256: str
    spec_file: str | None  # where it was read from (None: built in code)

    @cached_property
    def spec(self) -> Spec:
        """The pinned spec, parsed from the plan's copy of its text (never from the specs folder)."""
        return parse_spec(self.spec_text, f"{self.spec_file or 'the spec'} (as pinned by run {self.run_id})")

    @property
    def pinned(self) -> PinnedSpec:
        """The pinned spec with its text, as a step that starts runs of its own (reconcile) hands it on."""
        return PinnedSpec(self.spec, self.spec_text, self.spec_sha256,
                          None if self.spec_file is None else Path(self.spec_file))

    def suite_file(self) -> Path | None:
        """The spec's extra GX suite file (`validation.suite`) resolved against the pinned spec's folder, by
        `ml_batch.validation.suite.suite_path`; None for a spec built in code (GX then uses an absolute suite
        itself and names a relative one it cannot resolve)."""
        from ml_batch.validation.suite import suite_of

        return suite_of(self.spec, None if self.spec_file is None else Path(self.spec_file))

    @classmethod
    def noop(cls, model: str, day: dt.date, run_id: str, run_type: str, *, dry_run: bool, shards: int) -> RunPlan:
        """A plan-shaped value with nothing pinned: what the no-op twin of the daily DAG hands its tasks."""
        return cls(model=model, day=day, run_id=run_id, run_type=run_type, dry_run=dry_run, version=0,
                   artifact_sha256="", shards=shards, staging_table="", day_rows=None, partial=False, spec_text="",
                   spec_sha256="", spec_file=None)


class PlanOptions(TypedDict, total=False):
    """What a run may ask of its plan besides the day and the run id (`plan_run`'s keyword arguments)."""

    run_type: str
    version: int | None
    version_policy: str
    dry_run: bool
    shards: int | None
    allow_partial: bool


def plan_run(
    engine: sa.Engine,
    spec: Spec | PinnedSpec,
    day: dt.date,
    *,
    run_id: str,
    run_type: str = "cli",
    version: int | None = None,
    version_policy: str = "champion",
    dry_run: bool = False,
    shards: int | None = None,
    allow_partial: bool = False,
) -> RunPlan:
    """Pin the version and the spec, prepare the tables, read the day into the run's snapshot, check the day
    as a whole (`ml_batch.run.completeness`).

    `shards` None means the spec's `scoring.shards`, else one shard per `scoring.rows_per_shard` rows of
    the day (capped at `scoring.max_shards`). The day's row count is the snapshot's: the quarantine share
    is measured against it.

    Raises:
        ConfigError: `day` is out of range (`check_day`).
        SpecError: the spec does not fit the source (`ml_batch.db.spec_check`: a missing column, a text column
            for a numeric feature, a column whose type changed since the version was trained, ...), every
            problem one line, before anything is touched.
        DayIncomplete: the day's volume, readiness or null shares refuse it (nothing is left behind: the
            plan's transaction rolls back); `allow_partial` waives the volume and readiness.
    """
    check_day(day, "day")
    pinned = PinnedSpec.of(spec)
    model = pinned.spec
    # The source only: a scoring day reads no labels, and a labels mistake must not hold back its predictions
    # (training and `ml-batch specs check --db` report it).
    require_spec_db(engine, model, origin=pinned.path, labels=False)
    lifecycle.cleanup_dead_runs(engine, model, keep=run_id)  # what dead runs of this model left behind
    runs.check_run_type(run_type)
    shards = shards if shards is not None else model.scoring.shards
    if shards is not None and shards < 1:
        raise ValueError(f"shards={shards}: expected at least 1")
    info = _pinned_version(engine, model, day, version, version_policy)
    # Before any COPY: a column that changed type since the version was trained (a categorical turned integer
    # would otherwise be scored as unseen categories, silently).
    require_source_types(engine, model, info.version, info.source_types, origin=pinned.path)
    training = reference.training_null_shares(engine, model.name, info.version)
    started = time.perf_counter()
    with engine.begin() as conn:
        day_rows, shards, state = _prepare(conn, model, day, run_id, shards, training, allow_partial)
        runs.start(conn, model=model.name, run_id=run_id, day=day, run_type=run_type, dry_run=dry_run,
                   version=info.version, sha256=info.artifact_sha256, shards=shards, spec_sha256=pinned.sha256,
                   state=state)
    logger.info("planned %s day %s with version %d (%s): %d rows in %d shard(s), materialised in %.2fs; spec %s "
                "(sha256 %s); volume %s", model.name, day, info.version,
                version_policy if version is None else "explicit", day_rows, shards, time.perf_counter() - started,
                pinned.path or "built in code", pinned.sha256, state.check.volume.basis)
    return RunPlan(model=model.name, day=day, run_id=run_id, run_type=run_type, dry_run=dry_run,
                   version=info.version, artifact_sha256=info.artifact_sha256, shards=shards,
                   staging_table=staging_table(model, run_id), day_rows=day_rows, partial=state.check.partial,
                   spec_text=pinned.text,
                   spec_sha256=pinned.sha256, spec_file=None if pinned.path is None else str(pinned.path))


def shard_count(spec: Spec, day_rows: int) -> int:
    """Shards for a day: one per `scoring.rows_per_shard` source rows, at least 1, at most `max_shards`."""
    return max(1, min(spec.scoring.max_shards, math.ceil(day_rows / spec.scoring.rows_per_shard)))


def _pinned_version(engine: sa.Engine, spec: Spec, day: dt.date, version: int | None,
                    policy: str) -> registry.ModelVersion:
    """The version the run scores with, checked against the spec's features."""
    if policy not in VERSION_POLICIES:
        raise ValueError(f"version_policy {policy!r}: expected one of {VERSION_POLICIES}")
    if version is not None:
        wanted: int | str = version
    elif policy == "champion_on_day":
        wanted = registry.champion_on_day(engine, spec.name, day)
    else:
        wanted = registry.CHAMPION
    info = registry.get_version(engine, spec.name, wanted)
    check_feature_schema(spec, info.feature_schema, f"version {info.version}")
    return info


def _prepare(conn: sa.Connection, spec: Spec, day: dt.date, run_id: str, shards: int | None,
             training: dict[str, float], allow_partial: bool) -> tuple[int, int, runs.PlannedState]:
    """The run's tables, in the plan's transaction: the predictions table (once), a fresh staging table, the
    snapshot of the day, no quarantine of an earlier plan; then the checks of the day as a whole. Returns (the
    day's rows, the shards, what the run records about the day it read)."""
    started = time.perf_counter()
    ready = completeness.check_ready(conn, spec, day)
    if ready is False and not allow_partial:  # refused before the day is read: waiting for it costs no scan
        raise DayIncomplete(str(completeness.ready_refusal(spec, day, ready)))
    updated_at = digest.source_updated_at(conn, spec, day)  # before the snapshot: see ml_batch.run.digest
    checking = time.perf_counter() - started
    ensure_predictions_table(conn, spec)
    create_staging(conn, spec, staging_table(spec, run_id))
    day_rows, shards = snapshot.materialise_day(conn, spec, day, run_id, shards, lambda rows: shard_count(spec, rows))
    quarantine.clear_run(conn, spec.name, run_id)
    started = time.perf_counter()
    _, key_digest = digest.snapshot_digest(conn, spec, run_id, shards)
    check = completeness.assess(conn, spec, day, run_id=run_id, shards=shards, rows=day_rows, ready=ready,
                                training=training)
    check = completeness.raise_if_refused(spec, day, check, allow_partial=allow_partial)
    check = replace(check, seconds=round(checking + time.perf_counter() - started, 3))
    return day_rows, shards, runs.PlannedState(check=check, key_digest=key_digest, source_updated_at=updated_at)
