"""The second step of a day's run, once per shard: validate the shard's piece of the day, then score it.

1. **Validate** the piece with GX, inside PostgreSQL, on a view of exactly the rows the extract reads
   (`ml_batch.validation`): batch failures fail the shard before anything is scored; failing rows come back
   keyed by their key's text with every reason.
2. **Score** the same piece, streamed in Arrow chunks: each chunk's failing rows are quarantined
   (`ml_batch.run.quarantine`), the rest scored by the pinned version, and the predictions COPYed into the
   run's staging table. Fetching the next chunk and writing the previous one overlap with scoring
   (`ml_batch.run.pipelining`); chunks are scored on several threads. A multiclass model stages, per row, the
   class of maximal probability, its probability as the score, and every class's probability
   (`class_scores`, in the pinned version's class order). The scorer is the version's compiled library when it
   has one that fits this machine and verifies, else scikit-learn (`ml_batch.model.scorer`): the run records
   which (`runs.scoring_path`), and a compiled run's first chunk is checked against scikit-learn on up to
   `SAMPLE_ROWS` rows (any difference over 1e-12 fails the run). Each scoring thread's compiled predictor gets
   `compiled_threads` threads, so that the two together stay within the shard's cores.
3. **Check and record**: every failing row GX listed was seen by the extract, and the shard's counts go to
   `run_shards` (a retried shard replaces its earlier attempt: its staged and quarantined rows are cleared
   first).

Each step returns its values; nothing is tallied behind the caller's back. Importing this module is light:
scikit-learn, GX, pandas and pyarrow are imported when a shard runs.

**Connections.** A shard holds a bounded number of connections: one of the engine's pool for the run's lease
for its whole life, one more of the pool at a time for its short transactions; while it validates, GX's own
engine (one connection at a time); while it scores, one ADBC connection extracting and one COPYing, plus up to
one of the pool per scoring thread quarantining rows (`MAX_SCORING_THREADS`): at most 3 + 8 at once, within
the pool's 5 + 10. Each connection that the server refuses for want of a free slot is waited for with back-off
(`ml_batch.db.faults.connect_patiently`); a database fault anywhere in the shard (GX's evaluation included) is
transient and retried, never a validation failure.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from ml_batch.db.catalog import drop_views, table_exists
from ml_batch.db.faults import connect_patiently, fault_in
from ml_batch.db.sources import shard_of, source_error
from ml_batch.db.sqlfiles import render
from ml_batch.errors import RegistryError, RunAbandoned, TransientDatabaseError, ValidationFailed, summary
from ml_batch.run import lifecycle, quarantine, runs, snapshot
from ml_batch.run.keys import key_text, key_texts
from ml_batch.run.names import shard_view
from ml_batch.run.pipelining import BackgroundWriter, Prefetch
from ml_batch.run.plan import RunPlan
from ml_batch.spec import Spec
from ml_batch.steps import StepResult

if TYPE_CHECKING:  # imported where they are used: a plan or publish task never loads them
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from ml_batch.model.scorer import Scorer

logger = logging.getLogger(__name__)

# Chunks scored at once by one shard at most: each holds a ~16 MB chunk (and its pandas copy) and may
# quarantine rows through the engine's connection pool (5 + 10 connections).
MAX_SCORING_THREADS = 8
# Rows of a shard's first chunk scored by scikit-learn too when the compiled path scores the run.
SAMPLE_ROWS = 300

RowReasons = dict[str, list[str]]


class ShardResult(StepResult):
    """What one shard did (also its `run_shards` row)."""

    shard: int
    extracted: int
    scored: int
    quarantined: int
    stage_seconds: dict[str, float]


def score_shard(
    engine: sa.Engine,
    plan: RunPlan,
    shard: int = 0,
    *,
    results_dir: Path | None = None,
    batch_bytes: int | None = None,
    threads: int | Literal["auto"] | None = "auto",
) -> ShardResult:
    """Validate and score shard `shard` of the plan's day into the run's staging table (module docstring).

    `results_dir` keeps the GX result as a file too (it is always stored in the database). `batch_bytes` None
    is `ml_batch.db.arrow.DEFAULT_BATCH_BYTES` per chunk. `threads` is how many chunks are scored at once
    (each with one BLAS/OpenMP thread); "auto" assumes the plan's shards run in parallel on this machine (as
    mapped Airflow tasks do) and shares the cores between them, None means one per core (shards scored one
    after another). Any failure is recorded on the run (`runs.error`) and re-raised.
    """
    limit = threads_per_shard(plan.shards) if threads == "auto" else threads
    # The run is alive while a shard works on it; a failure of the day's data drops the run's objects at once.
    with lifecycle.RunLease(engine, plan.model, plan.run_id, spec=plan.spec):
        try:
            return _score_shard(engine, plan, shard, results_dir, batch_bytes, limit)
        except Exception as exc:
            runs.fail(engine, model=plan.model, run_id=plan.run_id, error=f"shard {shard}: {summary(exc)}")
            raise


def _score_shard(engine: sa.Engine, plan: RunPlan, shard: int, results_dir: Path | None,
                 batch_bytes: int | None, threads: int | None) -> ShardResult:
    from ml_batch.model import registry
    from ml_batch.model.scorer import scoring_path

    spec = plan.spec
    if not 0 <= shard < plan.shards:
        raise ValueError(f"shard {shard} is outside 0..{plan.shards - 1}")
    loaded = registry.load(engine, spec, plan.version)
    if loaded.info.artifact_sha256 != plan.artifact_sha256:
        raise RegistryError(f"model {spec.name!r} version {plan.version} changed since the run was planned")
    _require_snapshot(engine, spec, plan, shard)  # before resetting its staging, which went with the snapshot
    _reset_shard(engine, spec, plan, shard)
    started = time.perf_counter()
    reasons = _validate_piece(engine, spec, plan, shard, results_dir)
    validated = time.perf_counter() - started
    classes = _pinned_classes(spec, plan, loaded)
    workers = threads or min(available_cores(), MAX_SCORING_THREADS)
    with scoring_path(engine, loaded, nthread=compiled_threads(plan.shards, workers)) as chosen:
        logger.info("%s day %s shard %d scores with %s: %s", spec.name, plan.day, shard, chosen.path, chosen.reason)
        with engine.begin() as conn:
            runs.record_scoring_path(conn, model=spec.name, run_id=plan.run_id, path=chosen.path)
        totals = _score_piece(engine, spec, plan, shard, chosen.scorer, classes, reasons, batch_bytes, workers)
    _check_failing_rows_seen(spec, plan, shard, reasons, totals)
    seconds = {"validate": round(validated, 3), **totals.seconds()}
    with engine.begin() as conn:
        runs.record_shard(conn, model=spec.name, run_id=plan.run_id, shard=shard, extracted=totals.extracted,
                          scored=totals.scored, quarantined=totals.quarantined, score_sum=totals.score_sum,
                          stage_seconds=seconds)
    logger.info("%s day %s shard %d: %d extracted, %d scored, %d quarantined, %s", spec.name, plan.day, shard,
                totals.extracted, totals.scored, totals.quarantined, seconds)
    return ShardResult(shard=shard, extracted=totals.extracted, scored=totals.scored,
                       quarantined=totals.quarantined, stage_seconds=seconds)


def _pinned_classes(spec: Spec, plan: RunPlan, loaded: Any) -> list[str] | None:
    """A multiclass version's class names in the order of its probabilities (None for the other tasks); the
    artifact's must be those its version records, which the publish audits the day's rows against."""
    if spec.model.task != "multiclass":
        return None
    from ml_batch.model.training import class_names

    classes = class_names(loaded.pipeline)
    if loaded.info.classes is not None and list(loaded.info.classes) != classes:
        raise RegistryError(f"model {spec.name!r} version {plan.version}: its artifact predicts the classes "
                            f"{classes}, its record lists {list(loaded.info.classes)}")
    return classes


def threads_per_shard(shards: int) -> int | None:
    """Scoring threads for one of `shards` shards scored in parallel on this machine (None: one per core).

    Without a limit each parallel worker would start one thread per core and they would oversubscribe it.
    """
    if shards <= 1:
        return None
    cores = available_cores()
    return max(1, cores // min(shards, cores))


def compiled_threads(shards: int, workers: int) -> int:
    """Threads of each scoring thread's compiled predictor: the shard's share of the cores over its scoring
    threads (at least 1), so that both together never ask for more threads than the share has cores."""
    return max(1, (threads_per_shard(shards) or available_cores()) // workers)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- 1. validate ----------------------------------------------------------------------------------------------
def _validate_piece(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int, results_dir: Path | None) -> RowReasons:
    """GX on a view of the shard's piece of the run's snapshot (exactly the day's columns of exactly the rows
    the extract reads), in PostgreSQL; the failing keys (as text, `ml_batch.run.keys`) with their reasons.

    The view lives only while GX runs. The result is stored in the database (the UI reads it there, never a
    worker's files) and, with `results_dir`, saved as a file. Batch failures raise ValidationFailed.
    """
    from ml_batch.validation.reasons import without_examples
    from ml_batch.validation.results import save_result, store_result

    view = _create_view(engine, spec, plan, shard)
    try:
        outcome = _run_gx(engine, spec, plan, view)
    except TransientDatabaseError:
        _check_database(engine)  # GX kept only the text of a lost connection: raise the connection's own error
        raise
    finally:
        drop_views(engine, [view])
    if results_dir is not None:
        save_result(outcome, results_dir, spec.name, plan.day, f"{plan.run_id}-s{shard}")
    store_result(engine, outcome, spec.name, plan.day, plan.run_id, shard)
    if not outcome.passed_batch:
        said = f"model {spec.name!r} day {plan.day}: batch failed validation: "
        raise ValidationFailed(said + "; ".join(outcome.batch_failures),
                               without_values=said + "; ".join(map(without_examples, outcome.batch_failures)))
    return {key_text(key): reasons for key, reasons in outcome.row_reasons.items()}


def _require_snapshot(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int) -> None:
    """Raise RunAbandoned when the shard's piece of the run's snapshot is gone (and its staging with it)."""
    piece = snapshot.snapshot_piece(spec, plan.run_id, shard)
    with engine.connect() as conn:
        if not table_exists(conn, piece):
            raise RunAbandoned(
                f"run {plan.run_id!r} of model {spec.name!r} day {plan.day}: its snapshot of the day ({piece}) "
                "is gone (the run was published, failed on its data or was cleaned up, or it was planned by an "
                "older ml-batch): plan the run again"
            )


def _create_view(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int) -> str:
    view = shard_view(spec, plan.run_id, shard)
    with engine.begin() as conn:
        conn.execute(render("drop_view", view=view))
        create = render("create_view", view=view).text + "\n" + snapshot.piece_sql(spec, plan.run_id, shard)
        conn.exec_driver_sql(create)
    return view


def _run_gx(engine: sa.Engine, spec: Spec, plan: RunPlan, view: str) -> Any:
    from ml_batch.validation.passes import validate_relation
    from ml_batch.validation.relation import key_is_unique, relation_column_types
    from ml_batch.validation.suite import build_suite

    url = engine.url.render_as_string(hide_password=False)
    column_types = relation_column_types(engine, view)
    unique = key_is_unique(engine, spec)
    suite = build_suite(spec, plan.suite_file(), check_row_count=False, check_key_unique=not unique,
                        column_types=column_types)
    outcome = validate_relation(spec, url, view, suite, columns=column_types, share_of=plan.day_rows)
    outcome.result_json["meta"]["ml_batch"]["key_uniqueness"] = (
        f"guaranteed by a unique index on {spec.source.table}({spec.source.key}), not checked" if unique
        else "checked by GX")
    return outcome


def _check_database(engine: sa.Engine) -> None:
    """Raise the connection error if the database cannot be reached any more (else return)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


# -- 2. score -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Chunk:
    """What scoring one chunk produced."""

    rows: int
    waited: float  # seconds the extract took to deliver it
    scored: int
    quarantined: int
    score_sum: float
    seconds: float
    bad_keys: Sequence[str]


@dataclass(frozen=True)
class _Totals:
    """The shard's chunks, summed once they are all scored."""

    chunks: Sequence[_Chunk]
    write_seconds: float
    key_type: str

    @property
    def seen_bad(self) -> set[str]:
        """The keys of the rows the chunks quarantined."""
        return {key for chunk in self.chunks for key in chunk.bad_keys}

    @property
    def extracted(self) -> int:
        return sum(chunk.rows for chunk in self.chunks)

    @property
    def scored(self) -> int:
        return sum(chunk.scored for chunk in self.chunks)

    @property
    def quarantined(self) -> int:
        return sum(chunk.quarantined for chunk in self.chunks)

    @property
    def score_sum(self) -> float:
        return float(sum(chunk.score_sum for chunk in self.chunks))

    def seconds(self) -> dict[str, float]:
        return {"extract": round(sum(c.waited for c in self.chunks), 3),
                "score": round(sum(c.seconds for c in self.chunks), 3), "write": round(self.write_seconds, 3)}


def _score_piece(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int, scorer: Scorer,
                 classes: list[str] | None, reasons: RowReasons, batch_bytes: int | None, workers: int) -> _Totals:
    """Stream the shard's piece in chunks, score them on `workers` threads, write them behind; the totals.

    The first chunk's scores of the compiled path are checked against scikit-learn's on up to `SAMPLE_ROWS` of
    its rows (`_sample_check`)."""
    from ml_batch.db import arrow

    url = engine.url.render_as_string(hide_password=False)
    chunks: list[_Chunk] = []
    key_type = "?"
    with _chunks_of(url, spec, plan, shard, batch_bytes or arrow.DEFAULT_BATCH_BYTES) as batches, \
            _staging_writer(url, plan.staging_table) as sink, _scoring_pool(workers) as pool:
        pending: deque[tuple[Future[tuple[_Chunk, pa.Table | None]], float]] = deque()
        for index, (batch, waited) in enumerate(batches):
            key_type = str(batch.schema.field(spec.source.key).type)
            pending.append((pool.submit(_score_chunk, engine, spec, plan, shard, batch, scorer, classes, reasons,
                                        SAMPLE_ROWS if index == 0 else 0), waited))
            if len(pending) >= workers:
                chunks.append(_collect(pending.popleft(), sink))
        while pending:
            chunks.append(_collect(pending.popleft(), sink))
    return _Totals(chunks, sink.seconds, key_type)


def _collect(pending: tuple[Future[tuple[_Chunk, pa.Table | None]], float], sink: BackgroundWriter[Any]) -> _Chunk:
    """A scored chunk's predictions handed to the writer (in chunk order); its tally, with the extract wait."""
    done, waited = pending
    chunk, table = done.result()
    if table is not None:
        sink.submit(table)
    return replace(chunk, waited=waited)


@contextmanager
def _chunks_of(url: str, spec: Spec, plan: RunPlan, shard: int, batch_bytes: int
               ) -> Iterator[Iterator[tuple[pa.RecordBatch, float]]]:
    """The shard's piece in Arrow batches, each with the seconds spent waiting for it, fetched one ahead."""
    with _adbc(url, f"extracting shard {shard} of {plan.run_id}") as reader, \
            Prefetch(_timed(_stream(reader, spec, plan, shard, batch_bytes))) as batches:
        yield batches


@contextmanager
def _staging_writer(url: str, staging: str) -> Iterator[BackgroundWriter[pa.Table]]:
    """A background writer COPYing tables into the run's staging table, each committed."""
    from ml_batch.db import arrow

    with _adbc(url, f"staging into {staging}") as writer:
        def write(table: pa.Table) -> None:
            arrow.append(writer, staging, table)
            writer.commit()

        with BackgroundWriter(write) as sink:
            yield sink


@contextmanager
def _adbc(url: str, what: str) -> Iterator[Any]:
    """An ADBC connection (`ml_batch.db.arrow.connect`), waited for while the server has no free slot."""
    from ml_batch.db import arrow

    with ExitStack() as stack:
        yield connect_patiently(lambda: stack.enter_context(arrow.connect(url)), what=what)


@contextmanager
def _scoring_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """`workers` scoring threads with one BLAS/OpenMP thread each.

    The model's native code releases the GIL, and single-threaded calls side by side keep the cores busy while
    PostgreSQL takes its share of them, where one call on all cores stalls at every parallel barrier
    (measured: 5.6 s instead of 6.5 s for 1,000,000 rows on 2 cores, and ~20% less CPU).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), \
            ThreadPoolExecutor(workers, thread_name_prefix="ml-batch-score", initializer=_one_openmp_thread) as pool:
        yield pool


def _one_openmp_thread() -> None:
    """Initializer of a scoring thread: OpenMP's thread count is per calling thread, so set it in each."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")


def _score_chunk(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int, batch: pa.RecordBatch, scorer: Scorer,
                 classes: list[str] | None, reasons: RowReasons, sample: int) -> tuple[_Chunk, pa.Table | None]:
    """Quarantine the chunk's rows GX failed, score the rest (runs in a scoring thread), checking the compiled
    path's scores of the first `sample` of them against scikit-learn's."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    started = time.perf_counter()
    frame = _to_pandas(batch, spec)
    keys = batch.column(spec.source.key)
    good, bad_keys = frame, []
    if reasons:
        texts = key_texts(keys)
        bad = np.fromiter((text in reasons for text in texts), dtype=bool, count=len(texts))
        if bad.any():
            bad_keys = [text for text, failed in zip(texts, bad.tolist(), strict=True) if failed and text is not None]
            _quarantine(engine, spec, plan, shard, frame.loc[bad], bad_keys, reasons)
            good = frame.loc[~bad]
            keys = keys.filter(pa.array(~bad))
    scores = scorer.scores(good, spec)
    if sample and scorer.path == "compiled" and len(good):
        _sample_check(spec, plan, shard, scorer, good.iloc[:sample], scores[:sample])
    table = _predictions(spec, keys, scores, classes) if len(good) else None
    score_sum = float(scores.sum()) if table is None or scores.ndim == 1 else pc.sum(table["score"]).as_py()
    chunk = _Chunk(len(frame), 0.0, len(good), len(frame) - len(good), score_sum,
                   time.perf_counter() - started, bad_keys)
    return chunk, table


def _sample_check(spec: Spec, plan: RunPlan, shard: int, scorer: Scorer, rows: pd.DataFrame,
                  scores: np.ndarray) -> None:
    """The compiled path's `scores` of `rows` against scikit-learn's (`compiled.sample_check`: a difference over
    its tolerance fails the run, naming it)."""
    from ml_batch.model.compiled import sample_check
    from ml_batch.model.training import predict_scores

    what = f"model {spec.name!r} version {plan.version} day {plan.day} shard {shard}"
    diff = sample_check(scores, predict_scores(scorer.pipeline, rows, spec), what)
    logger.info("%s: compiled scores of %d sample rows match scikit-learn's (max abs diff %.3g)", what, len(rows),
                diff)


def _quarantine(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int, rows: pd.DataFrame, keys: list[str],
                reasons: RowReasons) -> None:
    from ml_batch.validation.reasons import nan_columns

    quarantine.store(engine, spec, day=plan.day, run_id=plan.run_id, shard=shard, rows=rows, keys=keys,
                     reasons=reasons, nan_columns=[nan_columns(reasons.get(key, [])) for key in keys])


def _stream(conn: Any, spec: Spec, plan: RunPlan, shard: int, batch_bytes: int) -> Iterator[pa.RecordBatch]:
    """The shard's piece of the run's snapshot, in Arrow batches (the rows GX validated, no others)."""
    from ml_batch.db import arrow

    sql = snapshot.piece_sql(spec, plan.run_id, shard)
    try:
        yield from arrow.stream(conn, sql, batch_bytes)
    except Exception as exc:
        # ADBC raises driver-specific errors (undefined table/column...): name the source and re-raise ours.
        # A database fault (a lost connection, a timeout) is not the source's: it is raised as it is.
        if type(exc).__module__.startswith(("adbc_driver", "pyarrow")) and fault_in(exc) is None:
            raise source_error(spec, str(exc)) from exc
        raise


def _timed(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, float]]:
    """Each batch with the seconds spent waiting for it (the extract time)."""
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        yield batch, time.perf_counter() - started


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


def _predictions(spec: Spec, keys: pa.Array, scores: np.ndarray, classes: list[str] | None) -> pa.Table:
    """What a shard stages per row; the run's shared columns are stamped once at publish."""
    import numpy as np
    import pyarrow as pa

    if classes is not None:
        return _class_predictions(spec, keys, scores, classes)
    if spec.model.task == "binary":
        labels = pa.array((scores >= spec.predictions.threshold).astype(np.int16))
    else:
        labels = pa.nulls(len(scores), pa.int16())
    return pa.table({spec.source.key: keys, "score": pa.array(scores, pa.float64()), "predicted_label": labels})


def _class_predictions(spec: Spec, keys: pa.Array, scores: np.ndarray, classes: list[str]) -> pa.Table:
    """A multiclass chunk's rows: the class of maximal probability (the first of equals), its probability, and
    every class's probability as a JSON object, built column-wise by Arrow (no Python object per row)."""
    import numpy as np
    import pyarrow as pa

    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise RegistryError(f"model {spec.name!r}: the model scored {scores.shape[1:]} probabilities per row, "
                            f"its version has {len(classes)} classes {classes}")
    top = scores.argmax(axis=1)
    return pa.table({
        spec.source.key: keys,
        "score": pa.array(scores[np.arange(len(scores)), top], pa.float64()),
        "predicted_label": pa.array(classes, pa.string()).take(pa.array(top)),
        "class_scores": class_scores_jsonb(scores, classes),
    })


def class_scores_jsonb(scores: np.ndarray, classes: Sequence[str]) -> pa.Array:
    """Each row of `scores` (n x k, columns in `classes` order) as a jsonb object `{class: probability}`, in
    PostgreSQL's binary COPY format for jsonb (a version byte, 1, then the JSON text).

    A float prints as the shortest text that reads back as the same float64, so the published probability is
    exactly the scored one; NaN and +-Infinity, which JSON numbers cannot hold, are written as the strings
    "NaN", "Infinity", "-Infinity", for the staging audit to refuse.
    """
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    pieces: list[Any] = ["\x01{"]
    for j, name in enumerate(classes):
        column = np.ascontiguousarray(scores[:, j], dtype=np.float64)
        text = pc.cast(pa.array(column), pa.string())
        finite = np.isfinite(column)
        if not finite.all():
            odd = np.where(np.isnan(column), '"NaN"', np.where(column > 0, '"Infinity"', '"-Infinity"'))
            text = pc.if_else(pa.array(finite), text, pa.array(odd.astype(object), pa.string()))
        pieces += [("" if j == 0 else ", ") + json.dumps(str(name)) + ": ", text]
    pieces.append("}")
    return pc.binary_join_element_wise(*pieces, "").cast(pa.binary())


# -- 3. check and record --------------------------------------------------------------------------------------
def _check_failing_rows_seen(spec: Spec, plan: RunPlan, shard: int, reasons: RowReasons, totals: _Totals) -> None:
    """Every row GX listed as failing was seen (and quarantined) by the extract: both read the same snapshot
    piece, so only the keys' text forms can differ."""
    if len(totals.seen_bad) == len(reasons):
        return
    missing = [key for key in reasons if key not in totals.seen_bad]
    raise ValidationFailed(
        f"model {spec.name!r} day {plan.day} shard {shard}: GX found failing rows with keys "
        f"{missing[:5]}{' ...' if len(missing) > 5 else ''} (as text) that the extract did not return "
        f"(its key column {spec.source.key!r} is {totals.key_type}): this key type does not print the same "
        "way in both drivers (use an integer, text or uuid key)"
    )


def _reset_shard(engine: sa.Engine, spec: Spec, plan: RunPlan, shard: int) -> None:
    """Forget what an earlier attempt of this shard staged or quarantined (a retried task starts clean)."""
    with engine.begin() as conn:
        quarantine.clear_shard(conn, spec.name, plan.run_id, shard)
        staging = sa.table(plan.staging_table.rpartition(".")[2], sa.column(spec.source.key),
                           schema=plan.staging_table.rpartition(".")[0] or None)
        stmt = staging.delete()
        if plan.shards > 1:
            stmt = stmt.where(shard_of(staging.c[spec.source.key], plan.shards) == shard)
        conn.execute(stmt)
