"""A day's batch prediction: plan → score shards (validate, extract, score, stage) → publish.

The same functions run from the daily DAG (one task per step, shards as mapped tasks) and from
`ml-batch score` (all steps in one process, `score_day`). Each step is idempotent: a retried plan resets the
run, a retried shard replaces its own staged and quarantined rows, a re-run day replaces the day.

Partition rule: a run for day D reads the source rows with D <= date_column < D+1 (UTC), once, when it is
planned: the plan materialises them into the run's snapshot, split by shard (`ml_batch.snapshot`), and the
shards validate and score their pieces of it. The run is the day as of plan time.

Importing this module is light (no scikit-learn, GX, pandas or pyarrow): the plan and publish steps need
none of them, and a task imports only what it uses; the shard step imports them when it runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from ml_batch.db.disconnects import is_disconnect
from ml_batch.db.sources import source_error
from ml_batch.db.sqlfiles import render
from ml_batch.db.tables import quarantine
from ml_batch.errors import (
    MlBatchError,
    PublishBlocked,
    PublishError,
    RegistryError,
    RunAbandoned,
    ValidationFailed,
)
from ml_batch.run import lifecycle, runs, snapshot
from ml_batch.run.pipelining import BackgroundWriter, Prefetch
from ml_batch.run.staging import (
    DEFAULT_LOCKING,
    SwapLocking,
    audit_staging,
    create_staging,
    discard_staging,
    drop_staging,
    ensure_predictions_table,
    index_and_analyze_staging,
    qualified,
    record_publication,
    staging_table,
    stamp_staging,
    swap_in,
    table_exists,
)
from ml_batch.spec import Spec

if TYPE_CHECKING:  # imported where they are used: a plan or publish task never loads them
    import numpy as np
    import pandas as pd
    import pyarrow as pa

logger = logging.getLogger(__name__)

VERSION_POLICIES = ("champion", "champion_on_day")
# Chunks scored at once by one shard at most: each holds a ~16 MB chunk (and its pandas copy) and may
# quarantine rows through the engine's connection pool (5 + 10 connections).
MAX_SCORING_THREADS = 8
RUN_TYPES = ("scheduled", "manual", "backfill", "cli", "test")


@dataclass(frozen=True)
class RunPlan:
    """Everything later steps need, resolved once: the day, the pinned version, where to stage."""

    model: str
    day: dt.date
    run_id: str
    run_type: str
    dry_run: bool
    version: int
    artifact_sha256: str
    shards: int
    staging_table: str
    day_rows: int | None = None  # the day's rows in the run's snapshot (caps how many failing rows a shard lists)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        return cls(**{**data, "day": dt.date.fromisoformat(str(data["day"]))})


@dataclass(frozen=True)
class ShardResult:
    shard: int
    extracted: int
    scored: int
    quarantined: int
    stage_seconds: dict[str, float]


@dataclass(frozen=True)
class RunSummary:
    """What a finished run did (also in the `runs` table)."""

    model: str
    day: dt.date
    run_id: str
    version: int
    status: str
    extracted: int
    scored: int
    quarantined: int
    score_mean: float | None
    stage_seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat()}


def plan_run(
    engine: sa.Engine,
    spec: Spec,
    day: dt.date,
    *,
    run_id: str,
    run_type: str = "cli",
    version: int | None = None,
    version_policy: str = "champion",
    dry_run: bool = False,
    shards: int | None = None,
) -> RunPlan:
    """Pin the version (an explicit one, the champion now, or the champion on `day`), prepare tables, and
    read the day from the source, once, into the run's snapshot split by shard (`ml_batch.snapshot`).

    `shards` None means the spec's `scoring.shards`, else one shard per `scoring.rows_per_shard` rows of
    the day (capped at `scoring.max_shards`). The day's row count is the snapshot's: each shard measures
    `validation.max_quarantine_share` against it. Planning again replaces the snapshot (the day as of now).
    """
    from ml_batch.model import registry

    lifecycle.cleanup_dead_runs(engine, spec, keep=run_id)  # what dead runs of this model left behind
    if version_policy not in VERSION_POLICIES:
        raise ValueError(f"version_policy {version_policy!r}: expected one of {VERSION_POLICIES}")
    if run_type not in RUN_TYPES:
        raise ValueError(f"run_type {run_type!r}: expected one of {RUN_TYPES}")
    shards = shards if shards is not None else spec.scoring.shards
    if shards is not None and shards < 1:
        raise ValueError(f"shards={shards}: expected at least 1")
    if version is None:
        pinned: int | str = registry.champion_on_day(engine, spec.name, day) if version_policy == "champion_on_day" \
            else registry.CHAMPION
    else:
        pinned = version
    info = registry.get_version(engine, spec.name, pinned)
    registry.check_feature_schema(spec, info.feature_schema, f"version {info.version}")
    staging = staging_table(spec, run_id)
    started = time.perf_counter()
    with engine.begin() as conn:
        ensure_predictions_table(conn, spec)
        create_staging(conn, spec, staging)
        day_rows, shards = snapshot.materialise_day(conn, spec, day, run_id, shards,
                                                    lambda rows: shard_count(spec, rows))
        conn.execute(quarantine.delete().where(quarantine.c.model_name == spec.name, quarantine.c.run_id == run_id))
        runs.start(conn, model=spec.name, run_id=run_id, day=day, run_type=run_type, dry_run=dry_run,
                   version=info.version, sha256=info.artifact_sha256, shards=shards)
    plan = RunPlan(spec.name, day, run_id, run_type, dry_run, info.version, info.artifact_sha256, shards, staging,
                   day_rows)
    logger.info("planned %s day %s with version %d (%s): %d rows in %d shard(s), materialised in %.2fs",
                spec.name, day, info.version, version_policy if version is None else "explicit", day_rows, shards,
                time.perf_counter() - started)
    return plan


def shard_count(spec: Spec, day_rows: int) -> int:
    """Shards for a day: one per `scoring.rows_per_shard` source rows, at least 1, at most `max_shards`."""
    return max(1, min(spec.scoring.max_shards, math.ceil(day_rows / spec.scoring.rows_per_shard)))


def score_shard(
    engine: sa.Engine,
    spec: Spec,
    plan: RunPlan,
    shard: int = 0,
    *,
    suite_file: Path | None = None,
    results_dir: Path | None = None,
    batch_bytes: int | None = None,
    threads: int | Literal["auto"] | None = "auto",
) -> ShardResult:
    """Validate the shard's piece of the run's snapshot with GX (in PostgreSQL), then stream the same piece in
    chunks: quarantine the rows GX failed, score the rest with the pinned version and COPY the predictions
    into the run's staging table. `batch_bytes` None is `ml_batch.db.arrow.DEFAULT_BATCH_BYTES` per chunk.

    Fetching the next chunk and writing the previous one overlap with scoring. `threads` is how many
    chunks are scored at once (each with one BLAS/OpenMP thread); "auto" assumes the plan's shards run in
    parallel on this machine (as mapped Airflow tasks do) and shares the cores between them, None means one
    per core (shards scored one after another).
    """
    limit = threads_per_shard(plan.shards) if threads == "auto" else threads
    with lifecycle.RunLease(engine, plan.model, plan.run_id):  # the run is alive while a shard works on it
        try:
            return _score_shard(engine, spec, plan, shard, suite_file, results_dir, batch_bytes, limit)
        except Exception as exc:  # any failure: record it on the run for `ml-batch runs`, then re-raise it
            runs.fail(engine, model=plan.model, run_id=plan.run_id, error=f"shard {shard}: {_one_line(exc)}")
            raise


def _score_shard(
    engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int, suite_file: Path | None,
    results_dir: Path | None, batch_bytes: int | None, threads: int | None,
) -> ShardResult:
    from threadpoolctl import threadpool_limits

    from ml_batch.db import arrow
    from ml_batch.model import registry

    if not 0 <= shard < plan.shards:
        raise ValueError(f"shard {shard} is outside 0..{plan.shards - 1}")
    loaded = registry.load(engine, spec, plan.version)
    if loaded.info.artifact_sha256 != plan.artifact_sha256:
        raise RegistryError(f"model {spec.name!r} version {plan.version} changed since the run was planned")
    _reset_shard(engine, spec, plan, shard)
    url = engine.url.render_as_string(hide_password=False)
    tally = _Tally()
    row_reasons = _validate_shard(engine, url, spec, plan, shard, suite_file, results_dir, tally)
    seen_bad: set[str] = set()
    workers = threads or min(available_cores(), MAX_SCORING_THREADS)

    def write(table: pa.Table) -> None:
        started = time.perf_counter()
        arrow.append(writer, plan.staging_table, table)
        writer.commit()
        tally.seconds["write"] += time.perf_counter() - started

    def collect(done: Future[_Chunk]) -> None:
        chunk = done.result()
        tally.add(chunk)
        seen_bad.update(chunk.bad_keys)
        if chunk.table is not None:
            sink.submit(chunk.table)

    # Chunks are scored by `workers` threads with one BLAS/OpenMP thread each: the model's native code
    # releases the GIL, and single-threaded calls side by side keep the cores busy while PostgreSQL takes
    # its share of them, where one call on all cores stalls at every parallel barrier (measured: 5.6 s
    # instead of 6.5 s for 1,000,000 rows on 2 cores, and ~20% less CPU).
    with arrow.connect(url) as reader, arrow.connect(url) as writer, threadpool_limits(limits=1, user_api="blas"), \
            BackgroundWriter(write) as sink, \
            ThreadPoolExecutor(workers, thread_name_prefix="ml-batch-score", initializer=_one_openmp_thread) as pool, \
            Prefetch(_timed(_stream(reader, spec, plan, shard, batch_bytes or arrow.DEFAULT_BATCH_BYTES))) as batches:
        pending: deque[Future[_Chunk]] = deque()
        for batch, waited in batches:
            tally.key_type = str(batch.schema.field(spec.source.key).type)
            tally.extracted += batch.num_rows
            tally.seconds["extract"] += waited
            pending.append(pool.submit(_score_chunk, engine, spec, plan, shard, batch, loaded.pipeline, row_reasons))
            if len(pending) >= workers:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    if len(seen_bad) != len(row_reasons):
        missing = [key for key in row_reasons if key not in seen_bad]
        raise ValidationFailed(  # both read the same snapshot piece: only the keys' text forms can differ
            f"model {spec.name!r} day {plan.day} shard {shard}: GX found failing rows with keys "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''} (as text) that the extract did not return "
            f"(its key column {spec.source.key!r} is {tally.key_type}): this key type does not print the same "
            "way in both drivers (use an integer, text or uuid key)"
        )
    seconds = {k: round(v, 3) for k, v in tally.seconds.items()}
    with engine.begin() as conn:
        runs.record_shard(conn, model=spec.name, run_id=plan.run_id, shard=shard, extracted=tally.extracted,
                          scored=tally.scored, quarantined=tally.quarantined, score_sum=tally.score_sum,
                          stage_seconds=seconds)
    logger.info("%s day %s shard %d: %d extracted, %d scored, %d quarantined, %s", spec.name, plan.day, shard,
                tally.extracted, tally.scored, tally.quarantined, seconds)
    return ShardResult(shard, tally.extracted, tally.scored, tally.quarantined, seconds)


def _validate_shard(
    engine: sa.Engine, url: str, spec: Spec, plan: RunPlan, shard: int, suite_file: Path | None,
    results_dir: Path | None, tally: _Tally,
) -> dict[str, list[str]]:
    """GX on a view of the shard's piece of the run's snapshot (exactly the day's columns of exactly the rows
    the extract reads), in PostgreSQL; the failing keys (as text) with their reasons.

    The view lives only while GX runs. Batch failures raise ValidationFailed before anything is scored.
    """
    from ml_batch.validation.gx import (
        build_suite,
        key_is_unique,
        relation_column_types,
        save_result,
        store_result,
        validate_relation,
    )

    started = time.perf_counter()
    piece = snapshot.snapshot_piece(spec, plan.run_id, shard)
    view = shard_view(spec, plan.run_id, shard)
    with engine.begin() as conn:
        if not table_exists(conn, piece):
            raise RunAbandoned(
                f"run {plan.run_id!r} of model {spec.name!r} day {plan.day}: its snapshot of the day ({piece}) "
                "is gone (the run was published, failed on its data or was cleaned up, or it was planned by an "
                "older ml-batch): plan the run again"
            )
        conn.execute(render("drop_view", view=view))
        create = render("create_view", view=view).text + "\n" + snapshot.piece_sql(spec, plan.run_id, shard)
        conn.exec_driver_sql(create)
    try:
        column_types = relation_column_types(engine, view)
        unique = key_is_unique(engine, spec)
        suite = build_suite(spec, suite_file, check_row_count=False, check_key_unique=not unique,
                            column_types=column_types)
        outcome = validate_relation(spec, url, view, suite, columns=column_types, share_of=plan.day_rows)
        outcome.result_json["meta"]["ml_batch"]["key_uniqueness"] = (
            f"guaranteed by a unique index on {spec.source.table}({spec.source.key}), not checked" if unique
            else "checked by GX")
    finally:
        _drop_views(engine, [view])
    if results_dir is not None:
        save_result(outcome, results_dir, spec.name, plan.day, f"{plan.run_id}-s{shard}")
    tally.seconds["validate"] += time.perf_counter() - started
    if not outcome.passed_batch:
        _check_database(engine)  # GX reports a lost connection as a failed expectation: name the real cause
    # In the database too (failed results included): the UI plugin serves them, never a worker's files.
    store_result(engine, outcome, spec.name, plan.day, plan.run_id, shard)
    if not outcome.passed_batch:
        raise ValidationFailed(
            f"model {spec.name!r} day {plan.day}: batch failed validation: " + "; ".join(outcome.batch_failures)
        )
    # Keys as text, the way PostgreSQL prints them: GX's keys come through psycopg2, the extract's through
    # ADBC, and only their text forms agree for every key type (numeric, uuid, ...).
    return {key_text(key): reasons for key, reasons in outcome.row_reasons.items()}


def _drop_views(engine: sa.Engine, views: list[str]) -> None:
    """Drop validation views; a failure is logged, never raised (it must not hide the error being raised,
    nor fail a run that succeeded: a leftover view is dropped by the run's publish, or by the cleanup of
    dead runs). With the database gone, the error being raised already says so: log quietly."""
    try:
        with engine.begin() as conn:
            for view in views:
                conn.execute(render("drop_view", view=view))
    except sa.exc.SQLAlchemyError as exc:
        log = logger.debug if is_disconnect(exc) else logger.warning
        log("could not drop validation view(s) %s: %s", ", ".join(views), exc)


def _check_database(engine: sa.Engine) -> None:
    """Raise the connection error if the database cannot be reached any more (else return)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def shard_view(spec: Spec, run_id: str, shard: int) -> str:
    """The view GX validates for one shard of a run, next to the predictions table.

    Lower case and short whatever the table, model and run id: GX names tables unquoted.
    """
    digest = hashlib.sha1(f"{spec.name}/{run_id}/{shard}".encode()).hexdigest()[:16]
    return qualified(spec, f"ml_batch_validate_{digest}")


@dataclass(frozen=True)
class _Chunk:
    """What scoring one chunk produced (tallied by the shard's thread, in chunk order)."""

    table: pa.Table | None
    scored: int
    quarantined: int
    score_sum: float
    seconds: float
    bad_keys: list[Any]


@dataclass
class _Tally:
    key_type: str = "?"
    extracted: int = 0
    scored: int = 0
    quarantined: int = 0
    score_sum: float = 0.0
    seconds: dict[str, float] = field(
        default_factory=lambda: {"validate": 0.0, "extract": 0.0, "score": 0.0, "write": 0.0}
    )

    def add(self, chunk: _Chunk) -> None:
        self.scored += chunk.scored
        self.quarantined += chunk.quarantined
        self.score_sum += chunk.score_sum
        self.seconds["score"] += chunk.seconds


def _one_openmp_thread() -> None:
    """Initializer of a scoring thread: OpenMP's thread count is per calling thread, so set it in each."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")


def _score_chunk(
    engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int, batch: pa.RecordBatch, pipeline: Any,
    row_reasons: dict[str, list[str]],
) -> _Chunk:
    """Quarantine the chunk's rows GX failed, score the rest (runs in a scoring thread)."""
    import numpy as np
    import pyarrow as pa

    from ml_batch.model.training import predict_scores

    started = time.perf_counter()
    frame = _to_pandas(batch, spec)
    keys = batch.column(spec.source.key)
    good, bad_keys = frame, []
    if row_reasons:
        texts = key_texts(keys)
        bad = np.fromiter((text in row_reasons for text in texts), dtype=bool, count=len(texts))
        if bad.any():
            bad_keys = [text for text, failed in zip(texts, bad.tolist(), strict=True) if failed and text is not None]
            _quarantine(engine, spec, plan, shard, frame.loc[bad], bad_keys, row_reasons)
            good = frame.loc[~bad]
            keys = keys.filter(pa.array(~bad))
    scores = predict_scores(pipeline, good, spec)
    table = _predictions(spec, keys, scores) if len(good) else None
    return _Chunk(table, len(good), len(frame) - len(good), float(scores.sum()), time.perf_counter() - started,
                  bad_keys)


def threads_per_shard(shards: int) -> int | None:
    """Scoring threads for one of `shards` shards scored in parallel on this machine (None: one per core).

    Without a limit each parallel worker would start one thread per core and they would oversubscribe it.
    """
    if shards <= 1:
        return None
    cores = available_cores()
    return max(1, cores // min(shards, cores))


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def publish_run(engine: sa.Engine, spec: Spec, plan: RunPlan, *,
                locking: SwapLocking = DEFAULT_LOCKING) -> RunSummary:
    """Check the whole day (row count bounds, quarantine share, staging audit), then publish atomically.

    A dry run performs every check and then drops what it staged: nothing reaches the predictions or
    quarantine tables. Any failure marks the run failed (its first error kept) and publishes nothing. A
    failure of the day's data (row bounds, quarantine share, audit) drops the staging table; any other
    (a lock not granted, a lost connection) keeps it, so publishing the same plan again is the retry. A
    retry of a day this run already published returns the recorded summary and changes nothing.
    """
    with lifecycle.RunLease(engine, plan.model, plan.run_id):  # the run is alive while it publishes
        try:
            return _publish_run(engine, spec, plan, locking)
        except Exception as exc:  # record it on the run (never hiding it), then re-raise
            runs.fail(engine, model=plan.model, run_id=plan.run_id, error=_one_line(exc))
            raise
        finally:  # a shard killed while GX ran (SIGKILL, OOM) cannot drop its view itself
            _drop_views(engine, [shard_view(spec, plan.run_id, shard) for shard in range(plan.shards)])


def _publish_run(engine: sa.Engine, spec: Spec, plan: RunPlan, locking: SwapLocking) -> RunSummary:
    started = time.perf_counter()
    with engine.begin() as conn:
        staged = table_exists(conn, plan.staging_table)
        recorded = None if staged else runs.get(conn, plan.model, plan.run_id)
        totals = runs.shard_totals(conn, plan.model, plan.run_id)
    if not staged:
        _discard_snapshot(engine, spec, plan)  # nothing of this plan can publish any more
        if recorded is not None and recorded["status"] in runs.FINISHED:
            logger.info("%s day %s: run %s already finished (%s); nothing to do", spec.name, plan.day,
                        plan.run_id, recorded["status"])
            return RunSummary(spec.name, plan.day, plan.run_id, recorded["model_version"], recorded["status"],
                              recorded["rows_extracted"], recorded["rows_scored"], recorded["rows_quarantined"],
                              recorded["score_mean"], recorded["stage_seconds"])
        raise PublishError(
            f"model {spec.name!r} day {plan.day}: the staging table {plan.staging_table} of run {plan.run_id!r} "
            "is gone (dropped after a failure no retry can fix, or by a clean-up); nothing was published: "
            "plan the run again"
        )
    if totals["shards_done"] != plan.shards:
        raise ValidationFailed(
            f"model {spec.name!r} day {plan.day}: {totals['shards_done']} of {plan.shards} shards finished; "
            "refusing to publish a partial day"
        )
    extracted, scored, quarantined = totals["extracted"], totals["scored"], totals["quarantined"]
    try:
        _check_batch(spec, plan.day, extracted, quarantined)
        with engine.begin() as conn:
            stamp_staging(conn, plan.staging_table, day=plan.day, model=spec.name, version=plan.version,
                          artifact_sha256=plan.artifact_sha256, run_id=plan.run_id)
            audit = audit_staging(conn, spec, plan.staging_table, day=plan.day, version=plan.version,
                                  expected_rows=scored)
            status = "dry_run" if plan.dry_run else "success"
            snapshot.drop_snapshot(conn, spec, plan.run_id)  # with the day's fate, in the same transaction
            if plan.dry_run:
                drop_staging(conn, plan.staging_table)
                conn.execute(quarantine.delete().where(quarantine.c.model_name == spec.name,
                                                       quarantine.c.run_id == plan.run_id))
            else:
                # Indexes and statistics first, then the swap (it alone locks the predictions table), then the
                # bookkeeping: all in this transaction, so nothing is left to fail once the day is published.
                index_and_analyze_staging(conn, spec, plan.staging_table)
                swap_in(conn, spec, plan.staging_table, plan.day, locking)
                record_publication(conn, spec, day=plan.day, run_id=plan.run_id, version=plan.version)
            stage_seconds = {**totals["stage_seconds"], "publish": round(time.perf_counter() - started, 3)}
            runs.finish(conn, model=plan.model, run_id=plan.run_id, status=status, extracted=extracted,
                        scored=scored, quarantined=quarantined, score_mean=audit.score_mean,
                        stage_seconds=stage_seconds)
    except (ValidationFailed, PublishError) as exc:
        if not isinstance(exc, PublishBlocked):  # the day's data broke a rule: no retry of this plan can publish
            discard_staging(engine, plan.staging_table)
            _discard_snapshot(engine, spec, plan)
        raise
    logger.info("%s day %s %s: %d rows, %d scored, %d quarantined, version %d", spec.name, plan.day,
                "checked (dry run, nothing published)" if plan.dry_run else "published", extracted, scored,
                quarantined, plan.version)
    return RunSummary(spec.name, plan.day, plan.run_id, plan.version, status, extracted, scored, quarantined,
                      audit.score_mean, stage_seconds)


def score_day(
    engine: sa.Engine,
    spec: Spec,
    day: dt.date,
    *,
    run_id: str,
    run_type: str = "cli",
    version: int | None = None,
    version_policy: str = "champion",
    dry_run: bool = False,
    shards: int | None = None,
    suite_file: Path | None = None,
    results_dir: Path | None = None,
) -> RunSummary:
    """The whole day in this process: the code path of the DAG, without Airflow.

    The run's lease is held from before the plan to the end, and the run is marked `single_process`: once
    nobody holds its lock, its process is gone, and the next run of the model cleans up what it left.
    """
    with lifecycle.RunLease(engine, spec.name, run_id) as lease:
        plan = plan_run(engine, spec, day, run_id=run_id, run_type=run_type, version=version,
                        version_policy=version_policy, dry_run=dry_run, shards=shards)
        lease.touch(single_process=True)
        for shard in range(plan.shards):  # one after another here: no thread cap
            score_shard(engine, spec, plan, shard, suite_file=suite_file, results_dir=results_dir, threads=None)
        return publish_run(engine, spec, plan)


# -- internals ---------------------------------------------------------------------------------------------
def _discard_snapshot(engine: sa.Engine, spec: Spec, plan: RunPlan) -> None:
    """Drop the run's snapshot after a failure no retry of the plan can fix; a failure to drop it is logged,
    never raised (it must not hide the error being reported; the cleanup of dead runs drops it later)."""
    try:
        with engine.begin() as conn:
            snapshot.drop_snapshot(conn, spec, plan.run_id)
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("could not drop the day snapshot of run %s: %s", plan.run_id,
                       str(exc).strip().splitlines()[0])


def _stream(conn: Any, spec: Spec, plan: RunPlan, shard: int, batch_bytes: int) -> Iterator[pa.RecordBatch]:
    """The shard's piece of the run's snapshot, in Arrow batches (the rows GX validated, no others)."""
    from ml_batch.db import arrow

    sql = snapshot.piece_sql(spec, plan.run_id, shard)
    try:
        yield from arrow.stream(conn, sql, batch_bytes)
    except Exception as exc:
        # ADBC raises driver-specific errors (undefined table/column...): name the source and re-raise ours.
        if type(exc).__module__.startswith(("adbc_driver", "pyarrow")):
            raise source_error(spec, str(exc)) from exc
        raise


def _to_pandas(batch: pa.RecordBatch, spec: Spec) -> pd.DataFrame:
    """The batch as pandas; NUMERIC (decimal) features become float64 so the model sees numbers."""
    import pyarrow as pa

    if not any(pa.types.is_decimal(t) for t in batch.schema.types):
        return batch.to_pandas()
    numeric = {f.name for f in spec.features if f.type == "numeric"}
    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if name in numeric and pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pandas()


def _one_line(exc: BaseException) -> str:
    """Our own errors as they are; anything else with its type, e.g. `OperationalError: server closed ...`."""
    text = str(exc).strip()
    return text if isinstance(exc, MlBatchError) else f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _timed(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, float]]:
    """Each batch with the seconds spent waiting for it (the extract time)."""
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        yield batch, time.perf_counter() - started


def _check_batch(spec: Spec, day: dt.date, extracted: int, quarantined: int) -> None:
    rules = spec.validation
    if extracted < rules.min_rows or (rules.max_rows is not None and extracted > rules.max_rows):
        raise ValidationFailed(
            f"model {spec.name!r} day {day}: {extracted} rows extracted, expected between {rules.min_rows} and "
            f"{rules.max_rows if rules.max_rows is not None else 'no upper bound'} (validation.min_rows/max_rows); "
            "nothing was published"
        )
    share = quarantined / extracted if extracted else 0.0
    if share > rules.max_quarantine_share:
        raise ValidationFailed(
            f"model {spec.name!r} day {day}: {quarantined} of {extracted} rows quarantined ({share:.1%}), above "
            f"validation.max_quarantine_share {rules.max_quarantine_share:.1%}; nothing was published "
            f"(see {spec.name!r} rows in the quarantine table)"
        )


def _reset_shard(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int) -> None:
    """Forget what an earlier attempt of this shard staged or quarantined (a retried task starts clean)."""
    from ml_batch.db.sources import shard_of

    with engine.begin() as conn:
        conn.execute(quarantine.delete().where(
            quarantine.c.model_name == spec.name, quarantine.c.run_id == plan.run_id, quarantine.c.shard == shard,
        ))
        staging = sa.table(plan.staging_table.rpartition(".")[2], sa.column(spec.source.key),
                           schema=plan.staging_table.rpartition(".")[0] or None)
        stmt = staging.delete()
        if plan.shards > 1:
            stmt = stmt.where(shard_of(staging.c[spec.source.key], plan.shards) == shard)
        conn.execute(stmt)


def key_text(value: Any) -> str:
    """A key from psycopg2 (int, str, Decimal, uuid as str, date) as PostgreSQL prints it."""
    import numpy as np

    return str(value.item() if isinstance(value, np.generic) else value)


def key_texts(keys: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """Keys from ADBC as PostgreSQL prints them (`key_text` of the same keys from psycopg2); null stays None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = keys.type.storage_type if isinstance(keys.type, pa.ExtensionType) else keys.type
    if pa.types.is_fixed_size_binary(kind) and kind.byte_width == 16:  # uuid
        values = (keys.storage if isinstance(keys, pa.ExtensionArray) else keys).to_pylist()
        return [None if value is None else str(uuid.UUID(bytes=value)) for value in values]
    try:
        return [None if text is None else str(text) for text in pc.cast(keys, pa.string()).to_pylist()]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [None if value is None else key_text(value) for value in keys.to_pylist()]


def _predictions(spec: Spec, keys: pa.Array, scores: np.ndarray) -> pa.Table:
    """What a shard stages per row; the run's shared columns are stamped once at publish."""
    import numpy as np
    import pyarrow as pa

    if spec.model.task == "binary":
        labels = pa.array((scores >= spec.predictions.threshold).astype(np.int16))
    else:
        labels = pa.nulls(len(scores), pa.int16())
    return pa.table({spec.source.key: keys, "score": pa.array(scores, pa.float64()), "predicted_label": labels})


def _quarantine(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int, rows: pd.DataFrame,
                keys: list[str], reasons: dict[str, list[str]]) -> None:
    """Store the rows GX failed with their reasons; `row_data` keeps NaN and +-inf as "NaN", "inf", "-inf"."""
    from ml_batch.run.row_data import row_records
    from ml_batch.validation.gx import nan_columns

    records = row_records(rows, [nan_columns(reasons.get(key, [])) for key in keys])
    payload = [
        {"model_name": spec.name, "partition_date": plan.day, "run_id": plan.run_id, "shard": shard,
         "entity_key": key, "reasons": reasons.get(key, []), "row_data": record}
        for key, record in zip(keys, records, strict=True)
    ]
    with engine.begin() as conn:
        conn.execute(quarantine.insert(), payload)



