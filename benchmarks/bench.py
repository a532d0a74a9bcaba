"""Throughput and memory of ml-batch's scoring path against the naive pandas pattern and the COPY floor.

One run (`make bench`, or `.venv/bin/python benchmarks/bench.py --help`):

1. starts a private embedded PostgreSQL 16 in a temporary folder with durable defaults (fsync on), or uses
   ML_BATCH_DATABASE_URL when set; schema `bench` (dropped and re-created), migrations applied;
2. loads day D (`--rows`, default 1,000,000 rows x 20 double features; 10,000,000 works on a 24 GB machine),
   day D2 (`--small-rows`) and a labelled training day with COPY, generated 1,000,000 rows at a time;
   trains HistGradientBoostingClassifier(max_iter=100) on the training day, registers it with its drift
   profile and promotes it, so scoring goes through the registry's sha256 and feature-schema checks;
3. times, each in a fresh process (so peak RSS is that run's own), in `--repeats` interleaved rounds (each
   round runs its variants one right after the other, so a ratio of two of them compares runs under the
   same machine load; the report gives each ratio's median over the rounds and its min..max, and the
   targets are judged on the median):
   (b) floor, scikit-learn: COPY out -> parse -> `predict_proba` -> COPY in of (key, score), nothing else;
       the first round runs two transports (CSV via psycopg2 + pyarrow.csv, and binary COPY via ADBC) and the
       faster one is the floors' from then on (`--floor-transport` fixes it);
   (b') floor, compiled: the same with the version's compiled library (issue 26) instead of `predict_proba`;
   (c) ml-batch on the scikit-learn path and (c') on the compiled path: `score_day` (plan, extract, GX
       validation, score, stage, audit, publish) on D; each run must record the path it was asked for;
   (a) naive: `pd.read_sql` -> `predict_proba` -> `DataFrame.to_sql`, in the first `--naive-repeats` rounds
       only (default 1: it takes about a minute per 1M rows), and never above `--naive-max-rows`;
   then, once each: (d) and (d') ml-batch on D2 with each path (peak RSS against (c): memory flat);
   sharding: plan once, score the shards in 1 and in 2 parallel worker processes, publish;
   source reads: the rows each run of D2 with K = 1, 2, 4 shards reads from the source table (sequential
   plus index scans, from pg_stat_user_tables), as a ratio to the day's rows;
   drift: `check_day_drift` on the published day; day checks: what the plan's checks of the day as a whole
   (volume, readiness, null shares, key digest) cost (c), as its run recorded them; reconcile: comparing
   every published day with the source when nothing changed.
   When the compiled path cannot run here, the report says "compiled path unavailable: <reason>" and its
   variants and targets have no number;
4. backfill (`benchmarks/backfill.py`; `--skip-backfill` skips it, about 10 minutes): a real-scheduler
   backfill through the REST API of `--backfill-days` days of `--backfill-rows` rows, on Airflow's components
   as separate processes with two Celery workers, next to a no-op DAG of the same shape and the CLI doing the
   same days; results under `backfill`;
5. checks the results (row counts, ml-batch's scores equal to the floor's), prints a table and writes
   `benchmarks/results/latest.json`.

Timings exclude interpreter start-up and module imports (a worker imports once); they include loading the
model (ml-batch reads and verifies it from the registry). There are no timing assertions anywhere: the
targets are reported as met or not.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import io
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling module, also when imported by path
# The backfill bench starts its cluster with the test support of the checkout (tests/support, never shipped).
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
import backfill

logger = logging.getLogger("ml_batch.bench")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODEL = "bench_model"
N_FEATURES = 20
FEATURES = [f"f{i:02d}" for i in range(N_FEATURES)]
DAY = dt.date(2026, 3, 2)
SMALL_DAY = dt.date(2026, 3, 3)
TRAIN_DAY = dt.date(2026, 3, 1)
HOLDOUT_SHARE = 0.2
SEED = 20260302
# Feature i is N(MEANS[i], SCALES[i]); the spec's min/max are 12 standard deviations out, so GX checks real
# bounds that clean data never crosses.
MEANS = np.arange(N_FEATURES, dtype=np.float64) - 10.0
SCALES = 1.0 + np.arange(N_FEATURES, dtype=np.float64) / 10.0
BOUND_SIGMAS = 12.0
CHILD_TIMEOUT_S = 3600
# Days are generated and COPY-loaded this many rows at a time (memory flat in --rows).
LOAD_CHUNK_ROWS = 1_000_000
# The naive pattern holds the day in pandas frames (about 2 GB of peak RSS per 1M rows): above this it is skipped.
NAIVE_MAX_ROWS = 2_000_000

# Targets of the issues: (key in results, comparison, bound, description). Ratios are judged on their median
# over the interleaved rounds (`paired_ratios`); the compiled targets are issue 26's.
TARGETS: list[tuple[str, str, float, str]] = [
    ("naive_over_ours", ">=", 6.0, "ml-batch (scikit-learn) at least 6x faster than the naive pattern"),
    ("ours_over_floor", "<=", 1.3, "ml-batch (scikit-learn) at most 1.3x the scikit-learn floor"),
    ("compiled_over_floor", "<=", 0.6, "ml-batch (compiled) at most 0.6x the scikit-learn floor"),
    ("naive_over_compiled", ">=", 10.0, "ml-batch (compiled) at least 10x faster than the naive pattern"),
    ("rss_ratio", "<=", 1.5, "peak RSS at --rows at most 1.5x the peak at --small-rows"),
    ("rss_ratio_compiled", "<=", 1.5, "the same, compiled path"),
    ("checks_share", "<", 0.25, "validation + drift under 25% of ml-batch's time"),
    ("drift_share", "<=", 0.25, "the daily drift check (with estimates) at most 25% of ml-batch's time"),
    ("sharded_speedup", ">", 1.05, "2 shards on 2 workers measurably faster than 1 shard"),
    ("source_read_ratio_max", "<=", 1.1, "source rows read per day at most 1.1x its rows, K = 1, 2, 4"),
    ("day_check_share", "<", 0.05, "the day's completeness checks under 5% of ml-batch's time"),
]
# The variants of one interleaved round, in the order they run: the floors, ml-batch on each path, naive.
ROUND_VARIANTS = ("floor", "floor_compiled", "ours", "ours_compiled", "naive")
COMPILED_VARIANTS = frozenset({"floor_compiled", "ours_compiled"})
# Ratios of variants measured in the same round: key -> (numerator, denominator). The first four are targets.
PAIRED_RATIOS: dict[str, tuple[str, str]] = {
    "naive_over_ours": ("naive", "ours"),
    "ours_over_floor": ("ours", "floor"),
    "compiled_over_floor": ("ours_compiled", "floor"),
    "naive_over_compiled": ("naive", "ours_compiled"),
    "compiled_floor_over_floor": ("floor_compiled", "floor"),
    "compiled_over_compiled_floor": ("ours_compiled", "floor_compiled"),
}
SOURCE_READ_SHARDS = (1, 2, 4)


class BenchError(RuntimeError):
    """A benchmark step failed (a worker process died, or a correctness check failed)."""


# -- pure helpers (unit-tested) ----------------------------------------------------------------------------
def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator rounded to 3 decimals, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 3)


def rows_per_s(rows: int, seconds: float | None) -> float | None:
    """Throughput, None when there is no time."""
    if not seconds:
        return None
    return round(rows / seconds, 1)


def round_plan(repeats: int, naive_repeats: int, *, naive: bool = True, compiled: bool = True) -> list[list[str]]:
    """The variants of each interleaved round, in the order they run (`ROUND_VARIANTS`).

    Naive runs in the first `naive_repeats` rounds only (it takes minutes); each round's variants run one
    right after the other, so a ratio of two of them compares runs under the same machine load.
    """
    plan = []
    for index in range(repeats):
        plan.append([name for name in ROUND_VARIANTS
                     if (name != "naive" or (naive and index < naive_repeats))
                     and (name not in COMPILED_VARIANTS or compiled)])
    return plan


def paired_ratios(rounds: list[dict[str, float]], numerator: str, denominator: str) -> list[float]:
    """numerator / denominator within each round that measured both, in round order."""
    values = [ratio(r.get(numerator), r.get(denominator)) for r in rounds]
    return [v for v in values if v is not None]


def median(values: list[float]) -> float | None:
    """The median, None for no values."""
    return round(statistics.median(values), 3) if values else None


def spread(values: list[float]) -> dict[str, Any] | None:
    """The median and the range (min..max) of repeated measurements, None for no values."""
    if not values:
        return None
    return {"median": median(values), "min": round(min(values), 3), "max": round(max(values), 3), "n": len(values),
            "values": [round(v, 3) for v in values]}


def evaluate_targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its measured value (a ratio's median) and whether it is met (None: not measured)."""
    compare: dict[str, Callable[[float, float], bool]] = {
        ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b,
    }
    verdicts = {}
    for key, op, bound, description in TARGETS:
        value = results.get(key)
        met = None if value is None else compare[op](float(value), bound)
        verdicts[key] = {"value": value, "target": f"{op} {bound:g}", "met": met, "what": description,
                         "spread": (results.get("ratio_spread") or {}).get(key)}
    return verdicts


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Add the derived ratios and target verdicts to the measured seconds and memory (returns a new dict).

    With `rounds` (one dict of variant -> seconds per interleaved round), each variant's `<name>_s` is its
    median over the rounds and each ratio of `PAIRED_RATIOS` is the median of the ratios within a round,
    with its spread under `ratio_spread`. Without `rounds`, the `<name>_s` values are single runs.
    """
    out = dict(results)
    rounds: list[dict[str, float]] = out.get("rounds") or []
    if rounds:
        for name in ROUND_VARIANTS:
            out[f"{name}_s"] = median([r[name] for r in rounds if r.get(name) is not None])
    else:
        rounds = [{name: out[f"{name}_s"] for name in ROUND_VARIANTS if out.get(f"{name}_s") is not None}]
    out["ratio_spread"] = {key: spread(paired_ratios(rounds, num, den)) for key, (num, den) in PAIRED_RATIOS.items()}
    for key, stats in out["ratio_spread"].items():
        out[key] = None if stats is None else stats["median"]
    out["rss_ratio"] = ratio(out.get("peak_rss_mb_large"), out.get("peak_rss_mb_small"))
    out["rss_ratio_compiled"] = ratio(out.get("peak_rss_mb_large_compiled"), out.get("peak_rss_mb_small_compiled"))
    checks = None
    if out.get("validate_s") is not None and out.get("drift_s") is not None:
        checks = out["validate_s"] + out["drift_s"]
    out["checks_share"] = ratio(checks, out.get("ours_s"))
    out["drift_share"] = ratio(out.get("drift_s"), out.get("ours_s"))
    out["sharded_speedup"] = ratio(out.get("sharded_1_s"), out.get("sharded_2_s"))
    out["day_check_share"] = ratio(out.get("day_check_s"), out.get("ours_s"))
    reads = (out.get("source_reads") or {}).get("by_shards") or {}
    ratios = [ratio(r.get("rows_read"), r.get("day_rows")) for r in reads.values()]
    out["source_read_ratio_max"] = max((r for r in ratios if r is not None), default=None)
    for name in (*ROUND_VARIANTS, "ours_small", "ours_compiled_small"):
        rows = out.get("small_rows") if name.endswith("_small") else out.get("rows")
        if rows is not None and out.get(f"{name}_s") is not None:
            out[f"{name}_rows_per_s"] = rows_per_s(rows, out[f"{name}_s"])
    out["targets"] = evaluate_targets(out)
    return out


def format_report(results: dict[str, Any]) -> str:
    """A plain-text table of the main numbers, the paired ratios with their spread, and the targets."""
    rows = results["rows"]
    lines = [f"ml-batch benchmark: {rows:,} rows x {N_FEATURES} features, {results['machine']['summary']}"]
    model = results.get("model") or {}
    if model.get("estimator"):
        compiled = f"; compiled at registration in {model['compile_s']:.1f} s" if model.get("compile_s") else ""
        lines.append(f"model: {model['estimator']}{compiled}")
    rounds = results.get("rounds") or []
    naive_rounds = sum(1 for r in rounds if "naive" in r)
    if rounds:
        lines.append(f"{len(rounds)} interleaved round(s) ({', '.join(results.get('round_order') or ROUND_VARIANTS)}); "
                     f"seconds are medians over the rounds; naive ran in {naive_rounds} of them")
    for note in results.get("notes") or []:
        lines.append(note)
    if results.get("floor_method"):
        lines.append(f"floors: {results['floor_method']}")
    lines += ["", f"{'run':<40}{'seconds':>9}{'min..max':>16}{'rows/s':>12}{'peak RSS MB':>13}"]
    table = [
        ("(a) naive read_sql/to_sql", "naive", rows, results.get("naive", {}).get("peak_rss_mb")),
        ("(b) floor, scikit-learn", "floor", rows, results.get("floor", {}).get("peak_rss_mb")),
        ("(b') floor, compiled", "floor_compiled", rows, results.get("floor_compiled", {}).get("peak_rss_mb")),
        ("(c) ml-batch score_day, scikit-learn", "ours", rows, results.get("peak_rss_mb_large")),
        ("(c') ml-batch score_day, compiled", "ours_compiled", rows, results.get("peak_rss_mb_large_compiled")),
        (f"(d) ml-batch at {results['small_rows']:,} rows, scikit-learn", "ours_small", results["small_rows"],
         results.get("peak_rss_mb_small")),
        (f"(d') ml-batch at {results['small_rows']:,} rows, compiled", "ours_compiled_small", results["small_rows"],
         results.get("peak_rss_mb_small_compiled")),
        ("    1 shard, 1 worker", "sharded_1", rows, None),
        ("    2 shards, 2 workers", "sharded_2", rows, None),
        ("GX validation within (c)", "validate", rows, None),
        ("day checks within (c)", "day_check", rows, None),
        ("reconcile, nothing changed", "reconcile", (results.get("reconcile") or {}).get("rows") or 0, None),
        ("drift check (sampled)", "drift", results.get("drift", {}).get("rows_checked") or 0, None),
    ]
    for label, name, n, rss in table:
        seconds = results.get(f"{name}_s")
        if seconds is None and name in {"floor_compiled", "ours_compiled", "ours_compiled_small"}:
            continue  # the "compiled path unavailable" line says why
        measured = [r[name] for r in rounds if r.get(name) is not None]
        range_text = f"{min(measured):.2f}..{max(measured):.2f}" if len(measured) > 1 else ""
        rate = rows_per_s(n, seconds) if seconds else None
        lines.append(f"{label:<40}{_fmt(seconds, '.2f'):>9}{range_text:>16}{_fmt(rate, ',.0f'):>12}"
                     f"{_fmt(rss, '.0f'):>13}")
    reads = results.get("source_reads") or {}
    if reads.get("by_shards"):
        lines += ["", f"source rows read for day {reads['day']} ({reads['day_rows']:,} rows): " + ", ".join(
            f"K={k} {r['rows_read']:,} ({ratio(r['rows_read'], r['day_rows'])}x, plan {r['plan_s']:.2f}s)"
            for k, r in reads["by_shards"].items())]
    stages = results.get("ours", {}).get("stage_seconds", {})
    if stages:
        lines += ["", "(c) stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in stages.items())]
    for name in ("naive", "floor", "floor_compiled"):
        parts = results.get(name, {}).get("parts", {})
        if parts:
            lines.append(f"({name}) parts: " + ", ".join(f"{k} {v:.2f}s" for k, v in parts.items()))
    lines += ["", "ratios within a round (median, min..max over n rounds):"]
    for key, (num, den) in PAIRED_RATIOS.items():
        stats = (results.get("ratio_spread") or {}).get(key)
        text = ("-" if stats is None
                else f"{stats['median']:.3f}  {stats['min']:.3f}..{stats['max']:.3f}  n={stats['n']}")
        lines.append(f"  {num + ' / ' + den:<38}{text}")
    lines += ["", f"{'target (ratios judged on the median)':<70}{'value':>9}  {'wanted':<9}met"]
    for verdict in results["targets"].values():
        met = {True: "yes", False: "NO", None: "n/a"}[verdict["met"]]
        lines.append(f"{verdict['what']:<70}{_fmt(verdict['value'], '.3f'):>9}  {verdict['target']:<9}{met}")
    failed = [name for name, ok in results.get("checks", {}).items() if not ok["ok"]]
    lines += ["", "correctness checks: " + ("all passed" if not failed else "FAILED: " + ", ".join(failed))]
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# -- spec, data and model ----------------------------------------------------------------------------------
def bench_spec(schema: str) -> Any:
    """The benchmark model's spec: 20 numeric features with real bounds, HistGradientBoosting(100 iterations)."""
    from ml_batch.spec import Spec

    features = [
        {"name": name, "type": "numeric", "min": float(mean - BOUND_SIGMAS * scale),
         "max": float(mean + BOUND_SIGMAS * scale)}
        for name, mean, scale in zip(FEATURES, MEANS, SCALES, strict=True)
    ]
    return Spec.model_validate({
        "name": MODEL,
        "source": {"table": f"{schema}.rows", "key": "id", "date_column": "event_time"},
        "features": features,
        "labels": {"table": f"{schema}.labels", "key": "id", "column": "y", "delay_days": 0},
        "model": {"task": "binary", "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                  # early stopping off: always the 100 iterations the issue measured
                  "params": {"max_iter": 100, "early_stopping": False, "random_state": 0}},
        "training": {"window_days": 2, "holdout_days": 1, "metric": "roc_auc"},
        "scoring": {"shards": 1},
        "predictions": {"table": f"{schema}.predictions"},
    })


def load_chunks(n: int, seed: int, chunk_rows: int = LOAD_CHUNK_ROWS) -> list[tuple[int, int, int | list[int]]]:
    """(offset, rows, seed) of the chunks a day of `n` rows is generated and loaded in.

    The first chunk keeps `seed`, so a day of up to `chunk_rows` rows is the same data as before chunking;
    chunk k > 0 draws from the seed sequence [seed, k].
    """
    return [(offset, min(chunk_rows, n - offset), seed if offset == 0 else [seed, offset // chunk_rows])
            for offset in range(0, n, chunk_rows)]


def make_rows(n: int, day: dt.date, first_id: int, seed: int | list[int]) -> tuple[Any, np.ndarray]:
    """`n` rows of `day` as an Arrow table (id, event_time, f00..f19) and their 0/1 labels."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, N_FEATURES))
    weights = np.linspace(-1.0, 1.0, N_FEATURES)
    logit = z @ weights * 0.6 + np.sin(2 * z[:, 0]) * z[:, 1] - 0.3 * z[:, 2] ** 2
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int16)
    values = z * SCALES + MEANS
    start = np.datetime64(dt.datetime.combine(day, dt.time()), "us")
    offsets = rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]")
    columns = {
        "id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        "event_time": pa.array(start + offsets, pa.timestamp("us", tz="UTC")),
        **{name: pa.array(values[:, i]) for i, name in enumerate(FEATURES)},
    }
    return pa.table(columns), labels


def load_data(engine: sa.Engine, url: str, schema: str, rows: int, small_rows: int, train_rows: int) -> Any:
    """Create and COPY-load the source and labels tables; returns the training rows (Arrow) and labels."""
    import pyarrow as pa

    from ml_batch.db import arrow
    from ml_batch.db.sqlfiles import quote_ident

    source, labels_table = quote_ident(f"{schema}.rows"), quote_ident(f"{schema}.labels")
    feature_columns = ", ".join(f"{name} double precision" for name in FEATURES)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {source} (id bigint NOT NULL, event_time timestamptz NOT NULL, "
                             f"{feature_columns})"))
        conn.execute(sa.text(f"CREATE TABLE {labels_table} (id bigint PRIMARY KEY, y smallint NOT NULL)"))
    train = None
    with arrow.connect(url) as conn:
        parts = [(rows, DAY, 1, SEED), (small_rows, SMALL_DAY, rows + 1, SEED + 1),
                 (train_rows, TRAIN_DAY, rows + small_rows + 1, SEED + 2)]
        for n, day, first_id, seed in parts:
            # In chunks, so a 10M-row day needs no more memory here than a 1M-row one.
            for offset, size, chunk_seed in load_chunks(n, seed):
                table, y = make_rows(size, day, first_id + offset, chunk_seed)
                arrow.append(conn, f"{schema}.rows", table)
                if day == TRAIN_DAY:
                    train = (table, y)
                    arrow.append(conn, f"{schema}.labels", pa.table({"id": table.column("id"), "y": pa.array(y)}))
                conn.commit()
                del table
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {source} ADD PRIMARY KEY (id)"))
        conn.execute(sa.text(f"CREATE INDEX rows_event_time_idx ON {source} (event_time)"))
    # VACUUM sets hint bits and the visibility map now, so the first timed reader does not pay for them.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM (ANALYZE) {source}"))
        conn.execute(sa.text(f"VACUUM (ANALYZE) {labels_table}"))
    assert train is not None
    return train


def train_and_promote(engine: sa.Engine, spec: Any, train: tuple[Any, np.ndarray]) -> dict[str, Any]:
    """Fit the spec's pipeline on the training day, register it (with its drift profile) and promote it."""
    from ml_batch.features import build_pipeline
    from ml_batch.model import registry
    from ml_batch.model.metrics import evaluate
    from ml_batch.monitoring.estimate import fit_estimators
    from ml_batch.monitoring.profile import build_profile

    table, y = train
    frame = table.select(FEATURES).to_pandas()
    cut = int(len(frame) * (1 - HOLDOUT_SHARE))
    pipeline = build_pipeline(spec)
    started = time.perf_counter()
    pipeline.fit(frame.iloc[:cut], y[:cut])
    fit_s = time.perf_counter() - started
    holdout_scores = pipeline.predict_proba(frame.iloc[cut:])[:, 1]
    metrics = evaluate("binary", y[cut:], holdout_scores)
    profile = build_profile(spec, frame.iloc[:cut], holdout_scores)
    # what the label-free estimate and its reliability need, so the drift check's time includes them
    profile.update(fit_estimators(spec, frame.iloc[cut:], holdout_scores, y[cut:]))
    version = registry.register(
        engine, spec, pipeline,
        # "registered": fitted outside ml-batch's training job, as an imported artifact would be
        registry.NewVersion(metrics=metrics, source="registered", tags={"benchmark": True}, n_train=cut,
                            n_holdout=len(frame) - cut, profile=profile,
                            **_compiled_registration(pipeline, spec, frame.iloc[cut:], holdout_scores)),
        actor="bench",
    )
    registry.promote(engine, MODEL, version.version, actor="bench", reason="benchmark champion")
    params = spec.model.params
    return {"version": version.version, "fit_s": round(fit_s, 2), "roc_auc": round(metrics["roc_auc"], 4),
            "n_train": cut, "artifact_bytes": version.artifact_size,
            "estimator": f"{spec.model.estimator.rsplit('.', 1)[-1]}(max_iter={params['max_iter']}), "
                         f"{N_FEATURES} float64 features"}


# -- the compiled scoring path (issue 26) -------------------------------------------------------------------
# The only place that knows the compiled path's API (`ml_batch.model.compiled`, `ml_batch.model.scorer`):
# registration compiles with `compiled_fields` as training and `models register` do, `scorer.scoring_path`
# chooses a loaded version's scorer (and says why), `COMPILE_ENV=0` makes a scoring process use scikit-learn,
# and each run records the path that scored it (`runs.scoring_path`). Anything missing is reported as
# "compiled path unavailable: <reason>", never measured with a stand-in.
COMPILE_ENV_FALLBACK = "ML_BATCH_COMPILE"  # `compiled.COMPILE_ENV`, for a tree without the compiled path


class CompiledUnavailable(RuntimeError):
    """The compiled path cannot be measured here; the message says why."""


def _compiled_registration(pipeline: Any, spec: Any, holdout: Any, scores: np.ndarray) -> dict[str, Any]:
    """The `registry.NewVersion` fields of the compiled library, as training registers them ({} without the
    compiled path in this tree: the version then records nothing and the report says so)."""
    try:
        from ml_batch.model.compiled import compiled_fields
        from ml_batch.run.shard import available_cores
    except ImportError as exc:
        logger.warning("not compiling the bench model: %s", exc)
        return {}
    return compiled_fields(pipeline, spec, holdout, scores, nthread=available_cores())


def compiled_unavailable(engine: sa.Engine, spec: Any) -> str | None:
    """Why the bench cannot measure the compiled path of the champion, or None when it can."""
    try:
        with compiled_scorer(engine, spec, nthread=1):
            return None
    except CompiledUnavailable as exc:
        return str(exc)


@contextlib.contextmanager
def compiled_scorer(engine: sa.Engine, spec: Any, *, nthread: int) -> Iterator[Callable[[Any], np.ndarray]]:
    """The champion's compiled scorer (frame -> scores) inside the block, or CompiledUnavailable saying why."""
    from ml_batch.model import registry

    try:
        from ml_batch.model.scorer import scoring_path
    except ImportError as exc:
        raise CompiledUnavailable(f"ml_batch.model.scorer is not importable ({exc})") from exc
    loaded = registry.load(engine, spec)
    with scoring_path(engine, loaded, nthread=nthread) as chosen:
        if chosen.path != "compiled":
            raise CompiledUnavailable(f"version {loaded.info.version} scores through {chosen.path}: {chosen.reason}")
        scorer = chosen.scorer
        yield lambda frame: scorer.scores(frame, spec)


def _force_sklearn() -> None:
    """Make this scoring process use scikit-learn although the version has a compiled library."""
    try:
        from ml_batch.model.compiled import COMPILE_ENV as name
    except ImportError:
        name = COMPILE_ENV_FALLBACK
    os.environ[name] = "0"


def _compile_seconds(engine: sa.Engine, version: int) -> float | None:
    """What compiling the version took at registration, as it recorded it."""
    from ml_batch.db.tables import model_versions

    with engine.connect() as conn:
        recorded = conn.execute(sa.select(model_versions.c.compiled).where(
            model_versions.c.model_name == MODEL, model_versions.c.version == version)).scalar()
    return None if not recorded else recorded.get("compile_seconds")


def _recorded_scoring_path(engine: sa.Engine, run_id: str) -> str | None:
    """The path that scored run `run_id`, as the run recorded it (`runs.scoring_path`)."""
    from ml_batch.db.tables import runs

    with engine.connect() as conn:
        return conn.execute(sa.select(runs.c.scoring_path).where(runs.c.model_name == MODEL,
                                                                 runs.c.run_id == run_id)).scalar()


# -- worker processes --------------------------------------------------------------------------------------
# Every timed run is a fresh process: it imports and connects, prints READY, waits for "go" on stdin (so
# parallel workers start together and imports are not timed), runs, and prints RESULT <json>.
def _child_engine() -> sa.Engine:
    from ml_batch.config import Settings
    from ml_batch.db.engine import make_engine

    return make_engine(Settings.from_env())


def _day_select(schema: str, day: dt.date, columns: list[str]) -> str:
    """SELECT `columns` of the rows of `day` as literal SQL (for COPY and ADBC)."""
    from sqlalchemy.dialects import postgresql

    from ml_batch.db.sources import day_bounds

    start, end = day_bounds(day)
    src = sa.table("rows", *[sa.column(c) for c in dict.fromkeys([*columns, "event_time"])], schema=schema)
    # Typed literals built from our own datetimes, as ml_batch.db.sources does: the text goes to COPY and ADBC.
    stmt = sa.select(*[src.c[c] for c in columns]).where(
        src.c.event_time >= sa.literal_column(f"'{start.isoformat()}'::timestamptz"),
        src.c.event_time < sa.literal_column(f"'{end.isoformat()}'::timestamptz"),
    )
    return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def _load_pipeline(engine: sa.Engine, spec: Any) -> Any:
    from ml_batch.model import registry

    return registry.load(engine, spec).pipeline


def _setup_naive(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import pandas as pd

    from ml_batch.db.sources import day_sql

    schema, day = params["schema"], dt.date.fromisoformat(params["day"])
    spec = bench_spec(schema)
    pipeline = _load_pipeline(_child_engine(), spec)
    # What users' articles do: a plain engine, read_sql, predict_proba, to_sql with pandas' defaults.
    plain = sa.create_engine(os.environ["ML_BATCH_DATABASE_URL"], connect_args={"options": "-c timezone=UTC"})
    query = sa.text(day_sql(spec, day))

    def run() -> dict[str, Any]:
        parts = {}
        started = time.perf_counter()
        frame = pd.read_sql(query, plain)
        parts["read"] = time.perf_counter() - started
        started = time.perf_counter()
        scores = pipeline.predict_proba(frame[FEATURES])[:, 1]
        parts["predict"] = time.perf_counter() - started
        started = time.perf_counter()
        out = pd.DataFrame({"id": frame["id"], "score": scores})
        out.to_sql("naive_predictions", plain, schema=schema, if_exists="replace", index=False)
        parts["write"] = time.perf_counter() - started
        return {"rows": len(frame), "parts": parts}

    return run


def _floor_setup(params: dict[str, Any], table: str) -> tuple[str, dt.date, sa.Engine, Callable[[Any], Any], str]:
    """What the floor variants share: the day, an engine, the scores of a frame (scikit-learn's
    `predict_proba`, or the compiled library's when params["path"] is "compiled") and a fresh output table."""
    from ml_batch.db.sqlfiles import quote_ident

    schema, day = params["schema"], dt.date.fromisoformat(params["day"])
    engine = _child_engine()
    spec = bench_spec(schema)
    if params.get("path") == "compiled":
        from ml_batch.run.shard import available_cores

        # one predictor on all cores, as the scikit-learn floor's predict_proba uses them; kept for the process
        stack = contextlib.ExitStack()
        atexit.register(stack.close)
        predict = stack.enter_context(compiled_scorer(engine, spec, nthread=available_cores()))
    else:
        pipeline = _load_pipeline(engine, spec)

        def predict(frame: Any) -> Any:
            return pipeline.predict_proba(frame)[:, 1]
    target = quote_ident(f"{schema}.{table}")
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {target}"))
        conn.execute(sa.text(f"CREATE TABLE {target} (id bigint, score double precision)"))
    return schema, day, engine, predict, target


def _setup_floor_csv(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    schema, day, engine, predict, target = _floor_setup(params, params.get("table", "floor_csv"))
    columns = ["id", *FEATURES]
    copy_out = f"COPY ({_day_select(schema, day, columns)}) TO STDOUT WITH (FORMAT csv)"
    read_options = pacsv.ReadOptions(column_names=columns, block_size=16 << 20)
    convert = pacsv.ConvertOptions(column_types={"id": pa.int64(), **{name: pa.float64() for name in FEATURES}})
    raw = engine.raw_connection()

    def run() -> dict[str, Any]:
        parts = {}
        cursor = raw.cursor()
        started = time.perf_counter()
        buffer = io.BytesIO()
        cursor.copy_expert(copy_out, buffer)
        parts["copy_out"] = time.perf_counter() - started
        started = time.perf_counter()
        buffer.seek(0)
        table = pacsv.read_csv(buffer, read_options=read_options, convert_options=convert)
        frame = table.select(FEATURES).to_pandas()
        parts["parse"] = time.perf_counter() - started
        started = time.perf_counter()
        scores = predict(frame)
        parts["predict"] = time.perf_counter() - started
        started = time.perf_counter()
        sink = io.BytesIO()
        pacsv.write_csv(pa.table({"id": table.column("id"), "score": scores}), sink,
                        pacsv.WriteOptions(include_header=False))
        sink.seek(0)
        cursor.copy_expert(f"COPY {target} (id, score) FROM STDIN WITH (FORMAT csv)", sink)
        raw.commit()
        parts["copy_in"] = time.perf_counter() - started
        return {"rows": table.num_rows, "parts": parts}

    return run


def _setup_floor_adbc(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import pyarrow as pa

    from ml_batch.db import arrow

    table_name = params.get("table", "floor_adbc")
    schema, day, engine, predict, _ = _floor_setup(params, table_name)
    select = _day_select(schema, day, ["id", *FEATURES])
    url = engine.url.render_as_string(hide_password=False)

    def run() -> dict[str, Any]:
        parts = {}
        with arrow.connect(url) as conn:
            started = time.perf_counter()
            cursor = conn.cursor()
            cursor.execute(select)
            table = cursor.fetch_arrow_table()
            cursor.close()
            parts["copy_out"] = time.perf_counter() - started
            started = time.perf_counter()
            frame = table.select(FEATURES).to_pandas()
            parts["parse"] = time.perf_counter() - started
            started = time.perf_counter()
            scores = predict(frame)
            parts["predict"] = time.perf_counter() - started
            started = time.perf_counter()
            arrow.append(conn, f"{schema}.{table_name}", pa.table({"id": table.column("id"), "score": scores}))
            conn.commit()
            parts["copy_in"] = time.perf_counter() - started
        return {"rows": table.num_rows, "parts": parts}

    return run


def _warm_imports() -> None:
    """What a scoring worker imports once (GX alone takes seconds): not part of any timed run.

    The floor imports the ADBC driver (~0.25 s: it pulls in pyarrow.dataset) before its clock starts;
    ml-batch's runs and the drift check do too, so all of them are timed without imports.
    """
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import ml_batch.run.shard  # noqa: F401
    from ml_batch.validation.session import import_gx

    import_gx()
    # the SQL side of GX (ml-batch validates in PostgreSQL): its execution engine and datasource
    import great_expectations.datasource.fluent.postgres_datasource
    import great_expectations.execution_engine.sqlalchemy_execution_engine  # noqa: F401


def _setup_ours(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from ml_batch.run.day import score_day

    schema, day = params["schema"], dt.date.fromisoformat(params["day"])
    engine, spec = _child_engine(), bench_spec(schema)
    results_dir = Path(params["results_dir"])
    if params.get("path") == "sklearn":  # the version may have a library: score through scikit-learn anyway
        _force_sklearn()
    _warm_imports()

    def run() -> dict[str, Any]:
        summary = score_day(engine, spec, day, run_id=params["run_id"], run_type="manual", shards=1,
                            results_dir=results_dir)
        return summary.to_xcom()

    return run


def _setup_shard(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from ml_batch.run.plan import RunPlan
    from ml_batch.run.shard import score_shard

    engine = _child_engine()
    plan = RunPlan.from_xcom(params["plan"])
    results_dir = Path(params["results_dir"])
    _warm_imports()

    def run() -> dict[str, Any]:
        return score_shard(engine, plan, params["shard"], results_dir=results_dir,
                           threads=params.get("threads") or "auto").to_xcom()

    return run


def _setup_drift(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from ml_batch.monitoring.daily import check_day_drift

    day = dt.date.fromisoformat(params["day"])
    engine, spec = _child_engine(), bench_spec(params["schema"])
    import ml_batch.monitoring.drift  # noqa: F401

    _warm_imports()

    def run() -> dict[str, Any]:
        return check_day_drift(engine, spec, day, run_id=params["run_id"]).to_xcom()

    return run


_SETUPS: dict[str, Callable[[dict[str, Any]], Callable[[], dict[str, Any]]]] = {
    "naive": _setup_naive, "floor_csv": _setup_floor_csv, "floor_adbc": _setup_floor_adbc,
    "ours": _setup_ours, "shard": _setup_shard, "drift": _setup_drift,
}


def child_main(task: str, params: dict[str, Any]) -> None:
    """Entry point of a worker process (`bench.py _child TASK PARAMS_JSON`)."""
    logging.basicConfig(level=logging.INFO if params.get("verbose") else logging.WARNING, stream=sys.stderr)
    if params.get("free_predict"):
        _free_compiled_predict()
    run = _SETUPS[task](params)
    rss_ready = _current_rss_mb()
    print("READY", flush=True)
    sys.stdin.readline()
    wall_start = time.time()
    started = time.perf_counter()
    if params.get("profile_out"):
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(run)
        profiler.dump_stats(params["profile_out"])
    else:
        result = run()
    seconds = time.perf_counter() - started
    result = {**result, "seconds": seconds, "wall_start": wall_start, "wall_end": time.time(),
              "rss_ready_mb": rss_ready, "peak_rss_mb": peak_rss_mb()}
    print("RESULT " + json.dumps(result, default=str), flush=True)


def _free_compiled_predict() -> None:
    """What-if (`--what-if-free-predict`), in a worker process only: the compiled library's predict costs nothing.

    The compiled scorer returns 0.5 for every row (after the preprocessing and float checks are skipped too) and
    the per-run sample check finds no difference, so the compiled variants measure everything ml-batch and the
    floor do around the predict. Registration (in the parent) is untouched; the scores published are not the
    model's, so the correctness checks of the compiled scores are skipped and the report says so.
    """
    import ml_batch.model.compiled as compiled

    def free(self: Any, frame: Any, spec: Any) -> np.ndarray:
        return np.full(len(frame), 0.5)

    def no_difference(scores: np.ndarray, recorded: np.ndarray) -> float:
        return 0.0

    compiled.CompiledScorer.scores = free  # type: ignore[method-assign]
    compiled.max_abs_diff = no_difference  # the sample check


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    From VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec, so a worker started by
    a big parent would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: no exec carry-over to fear


def _current_rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss / 2**20)


def run_workers(jobs: list[tuple[str, dict[str, Any]]], env: dict[str, str]) -> list[dict[str, Any]]:
    """Start one process per job, wait until all are READY, start them together, return their results."""
    procs = []
    for task, params in jobs:
        stderr = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "_child", task, json.dumps(params)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True,
        )
        procs.append((task, proc, stderr))
    try:
        for task, proc, stderr in procs:
            assert proc.stdout is not None
            while (line := proc.stdout.readline()) and line.strip() != "READY":
                logger.debug("%s: %s", task, line.rstrip())
            if not line:
                raise BenchError(f"worker {task!r} exited before it was ready:\n{_tail(proc, stderr)}")
        for _, proc, _ in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for task, proc, stderr in procs:
            out, _ = proc.communicate(timeout=CHILD_TIMEOUT_S)
            found = [line[len("RESULT "):] for line in out.splitlines() if line.startswith("RESULT ")]
            if proc.returncode != 0 or not found:
                raise BenchError(f"worker {task!r} failed (exit code {proc.returncode}):\n{_tail(proc, stderr)}")
            results.append(json.loads(found[-1]))
        return results
    finally:
        for _, proc, stderr in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stderr.close()


def _tail(proc: subprocess.Popen[str], stderr: Any) -> str:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    stderr.seek(0)
    return str(stderr.read())[-3000:]


def run_one(task: str, params: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One worker process running `task`, and its result."""
    return run_workers([(task, params)], env)[0]


# -- the benchmark -----------------------------------------------------------------------------------------
def _settle(engine: sa.Engine, *, superuser: bool) -> None:
    """Flush dirty buffers between runs so one run's checkpoint does not land in the next one's time."""
    if superuser:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("CHECKPOINT"))
    time.sleep(1)


def _run_variant(name: str, index: int, transport: str, base: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One run of variant `name` (`ROUND_VARIANTS`) in round `index`, the floors through `transport`."""
    if name == "naive":
        return run_one("naive", base, env)
    if name == "floor":
        return run_one(f"floor_{transport}", {**base, "path": "sklearn"}, env)
    if name == "floor_compiled":
        return run_one(f"floor_{transport}", {**base, "path": "compiled", "table": f"floor_compiled_{transport}"},
                       env)
    path = "compiled" if name == "ours_compiled" else "sklearn"
    run_id = f"bench-{name.replace('_', '-')}-r{index}"
    return {**run_one("ours", {**base, "run_id": run_id, "path": path}, env), "run_id": run_id}


def _check_variant(check: Callable[[str, bool, Any], None], engine: sa.Engine, args: argparse.Namespace, name: str,
                   result: dict[str, Any], transport: str) -> None:
    """The correctness checks of one run of variant `name`, right after it (the next run republishes the day)."""
    if name not in {"ours", "ours_compiled"}:
        check(f"{name}_rows", result["rows"] == args.rows, result["rows"])
        return
    path = "compiled" if name == "ours_compiled" else "sklearn"
    check(f"{name}_status", result["status"] == "success", result["status"])
    check(f"{name}_scored_all", result["scored"] == args.rows and result["quarantined"] == 0,
          {"scored": result["scored"], "quarantined": result["quarantined"]})
    recorded = _recorded_scoring_path(engine, result["run_id"])
    check(f"{name}_scoring_path", _path_as_asked(path, recorded), {"asked": path, "recorded": recorded})
    from ml_batch.monitoring.published import published_rows

    published = published_rows(engine, bench_spec(args.schema), DAY)
    check(f"{name}_published_rows", published == args.rows, published)
    # scikit-learn's own scores agree to float noise; the compiled library must match them within 1e-12
    tolerance = 1e-12 if path == "compiled" else 1e-9
    if path == "compiled" and args.what_if_free_predict:
        return  # its scores are the what-if's constants
    diff = _score_diff(engine, args.schema, f"floor_{transport}")
    check(f"{name}_scores_equal_floor", diff["joined"] == args.rows and (diff["max_abs_diff"] or 0) < tolerance,
          diff)


def _path_as_asked(asked: str, recorded: str | None) -> bool:
    """Whether a run scored through the path it was asked for (a tree before migration 0016's recording
    records nothing, and has only scikit-learn)."""
    return recorded == asked or (recorded is None and asked == "sklearn")


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose seconds are the (lower) median of `results`: its parts and stages are the ones reported."""
    ordered = sorted(results, key=lambda r: r["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def _sharded(engine: sa.Engine, spec: Any, shards: int, base: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Plan once, score `shards` shards in as many parallel worker processes, publish; seconds end to end."""
    from ml_batch.run.plan import plan_run
    from ml_batch.run.publish import publish_run

    run_id = f"bench-sharded-{shards}"
    started = time.perf_counter()
    plan = plan_run(engine, spec, DAY, run_id=run_id, run_type="manual", shards=shards)
    plan_s = time.perf_counter() - started
    workers = run_workers([("shard", {**base, "plan": plan.to_xcom(), "shard": i}) for i in range(shards)], env)
    started = time.perf_counter()
    summary = publish_run(engine, plan)
    publish_s = time.perf_counter() - started
    scoring_s = max(w["wall_end"] for w in workers) - min(w["wall_start"] for w in workers)
    return {"seconds": plan_s + scoring_s + publish_s, "plan_s": plan_s, "scoring_s": scoring_s,
            "publish_s": publish_s, "scored": summary.scored,
            "shards": [{k: w[k] for k in ("shard", "extracted", "seconds", "stage_seconds", "peak_rss_mb")}
                       for w in workers]}


def _source_reads(engine: sa.Engine, spec: Any, day: dt.date) -> dict[str, Any]:
    """Score `day` with K = 1, 2, 4 shards (one process, shards in turn): source rows read by each run."""
    from ml_batch.db.sources import day_sql
    from ml_batch.run.plan import plan_run
    from ml_batch.run.publish import publish_run
    from ml_batch.run.shard import score_shard
    from tests.support.usage import rows_read

    by_shards = {}
    for shards in SOURCE_READ_SHARDS:
        before = rows_read(engine, spec.source.table)
        started = time.perf_counter()
        plan = plan_run(engine, spec, day, run_id=f"bench-reads-{shards}", run_type="manual", shards=shards)
        plan_s = time.perf_counter() - started
        for shard in range(plan.shards):
            score_shard(engine, plan, shard, threads=None)
        summary = publish_run(engine, plan)
        read = rows_read(engine, spec.source.table) - before
        by_shards[str(shards)] = {"rows_read": read, "day_rows": summary.extracted, "plan_s": round(plan_s, 3)}
    with engine.connect() as conn:  # how PostgreSQL reads the day (a seq scan reads the other days too)
        plan_text = conn.execute(sa.text(f"EXPLAIN (COSTS OFF) {day_sql(spec, day)}")).scalars().all()
    return {"day": day.isoformat(), "day_rows": by_shards["1"]["day_rows"], "by_shards": by_shards,
            "access_path": " / ".join(line.strip() for line in plan_text)}


def _reconcile_unchanged(engine: sa.Engine, spec: Any) -> dict[str, Any]:
    """Reconcile every published day (nothing changed since): what comparing them with the source costs."""
    from ml_batch.run.reconcile import reconcile

    report = reconcile(engine, spec, days=7)
    rows = sum(entry.source_rows for entry in report.days)
    return {"days": len(report.days), "rows": rows, "check_seconds": report.check_seconds,
            "rescored": sum(1 for entry in report.days if entry.status != "unchanged")}


def _day_check_seconds(engine: sa.Engine, run_id: str) -> float | None:
    """What the plan's checks of the day as a whole (volume, readiness, null shares, key digest) cost run
    `run_id`, as it recorded them."""
    from ml_batch.db.tables import runs

    with engine.connect() as conn:
        check = conn.execute(sa.select(runs.c.day_check).where(runs.c.model_name == MODEL,
                                                               runs.c.run_id == run_id)).scalar()
    return None if not check else check.get("seconds")


def _machine(engine: sa.Engine) -> dict[str, Any]:
    import adbc_driver_postgresql
    import great_expectations
    import pandas as pd
    import psutil
    import pyarrow as pa
    import sklearn

    with engine.connect() as conn:
        pg = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
        fsync = str(conn.execute(sa.text("SHOW fsync")).scalar_one())
        sync_commit = str(conn.execute(sa.text("SHOW synchronous_commit")).scalar_one())
    cpus = os.cpu_count() or 0
    memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    return {
        "summary": f"{cpus} CPUs, {memory_gb} GB, PostgreSQL {pg.split()[0]} (fsync={fsync}), "
                   f"Python {platform.python_version()}",
        "cpu_count": cpus, "memory_gb": memory_gb, "python": platform.python_version(),
        "platform": platform.platform(), "postgresql": pg, "fsync": fsync, "synchronous_commit": sync_commit,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "load_average_start": os.getloadavg(),
        "versions": {"pandas": pd.__version__, "pyarrow": pa.__version__, "scikit-learn": sklearn.__version__,
                     "great_expectations": great_expectations.__version__,
                     "adbc_driver_postgresql": adbc_driver_postgresql.__version__},
    }


def _score_diff(engine: sa.Engine, schema: str, table: str) -> dict[str, Any]:
    """Rows of the published day joined with a reference table of (id, score), and the largest difference."""
    preds = sa.table("predictions", sa.column("id"), sa.column("score"), sa.column("partition_date"), schema=schema)
    ref = sa.table(table, sa.column("id"), sa.column("score"), schema=schema)
    stmt = sa.select(sa.func.count(), sa.func.max(sa.func.abs(preds.c.score - ref.c.score))).select_from(
        preds.join(ref, preds.c.id == ref.c.id)).where(preds.c.partition_date == DAY)
    with engine.connect() as conn:
        joined, max_diff = conn.execute(stmt).one()
    return {"joined": int(joined), "max_abs_diff": float(max_diff) if max_diff is not None else None}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Everything in the module docstring; returns the results dict (also written to `args.out`)."""
    from ml_batch.config import Settings
    from ml_batch.db.embedded import EmbeddedPostgres
    from ml_batch.db.engine import make_engine
    from ml_batch.db.migrate import upgrade
    from ml_batch.db.sqlfiles import quote_ident

    tmp = Path(tempfile.mkdtemp(prefix="ml_batch_bench_"))
    server = None
    url = os.environ.get("ML_BATCH_DATABASE_URL")
    try:
        if not url:
            # Durable defaults (fsync, synchronous_commit, full_page_writes on), like the issue's server.
            server = EmbeddedPostgres(tmp / "postgres")
            url = server.ensure_running().url
        settings = Settings(home=tmp, specs_dir=tmp, schema=args.schema, database_url=url, user="bench")
        engine = make_engine(settings)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote_ident(args.schema)} CASCADE"))
            superuser = bool(conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
                             .scalar_one())
        upgrade(engine, args.schema)
        spec = bench_spec(args.schema)
        env = {**os.environ, "ML_BATCH_DATABASE_URL": url, "ML_BATCH_SCHEMA": args.schema,
               "ML_BATCH_HOME": str(tmp)}
        base = {"schema": args.schema, "day": DAY.isoformat(), "verbose": args.verbose,
                "results_dir": str(tmp / "validation"), "free_predict": args.what_if_free_predict}
        results: dict[str, Any] = {"rows": args.rows, "small_rows": args.small_rows, "features": N_FEATURES,
                                   "repeats": args.repeats, "naive_repeats": args.naive_repeats,
                                   "shard_threads": args.shard_threads,
                                   "machine": _machine(engine)}
        checks: dict[str, dict[str, Any]] = {}

        def check(name: str, ok: bool, detail: Any) -> None:
            if name in checks and not checks[name]["ok"]:
                return  # checked once per round: the first failure stays
            checks[name] = {"ok": bool(ok), "detail": detail}
            if not ok:
                logger.error("check %s failed: %s", name, detail)

        _log("loading %s + %s + %s rows", args.rows, args.small_rows, args.train_rows)
        started = time.perf_counter()
        train = load_data(engine, url, args.schema, args.rows, args.small_rows, args.train_rows)
        results["load_s"] = round(time.perf_counter() - started, 2)
        _log("training and registering the model")
        results["model"] = train_and_promote(engine, spec, train)
        del train

        results["model"]["compile_s"] = _compile_seconds(engine, results["model"]["version"])
        unavailable = compiled_unavailable(engine, spec)
        results["compiled_path"] = {"available": unavailable is None, "reason": unavailable}
        notes = results["notes"] = []
        if args.what_if_free_predict:
            notes.append("WHAT-IF --what-if-free-predict: the compiled library's predict returns 0.5 at no cost, so "
                         "(b') and (c') time everything around the predict; their scores are not checked")
        if unavailable:
            notes.append(f"compiled path unavailable: {unavailable}")
            _log("compiled path unavailable: %s", unavailable)
        run_naive = not args.skip_naive and args.rows <= args.naive_max_rows
        if not args.skip_naive and not run_naive:
            notes.append(f"naive skipped: --rows {args.rows:,} > --naive-max-rows {args.naive_max_rows:,} "
                         "(its pandas frames need about 2 GB of peak RSS per 1M rows)")
        plan = round_plan(args.repeats, args.naive_repeats, naive=run_naive, compiled=unavailable is None)
        results["round_order"] = plan[0]
        transport = None if args.floor_transport == "auto" else args.floor_transport
        rounds: list[dict[str, float]] = []
        runs: dict[str, list[dict[str, Any]]] = {}
        for index, variants in enumerate(plan):
            measured: dict[str, float] = {}
            for name in variants:
                _settle(engine, superuser=superuser)
                _log("round %d/%d: %s", index + 1, len(plan), name)
                if name == "floor" and transport is None:
                    # the faster transport of the first round is the floor's, for both paths, from then on
                    candidates = {}
                    for method in ("csv", "adbc"):
                        _settle(engine, superuser=superuser)
                        candidates[method] = run_one(f"floor_{method}", {**base, "path": "sklearn"}, env)
                    transport = min(candidates, key=lambda m: candidates[m]["seconds"])
                    results["floor_candidates"] = {f"floor_{m}": _brief(c) for m, c in candidates.items()}
                    result = candidates[transport]
                else:
                    result = _run_variant(name, index, transport or "adbc", base, env)
                runs.setdefault(name, []).append(result)
                measured[name] = round(result["seconds"], 3)
                _check_variant(check, engine, args, name, result, transport or "adbc")
            rounds.append(measured)
        results["rounds"] = rounds
        results["floor_method"] = {"csv": "CSV COPY + pyarrow.csv", "adbc": "binary COPY via ADBC"}[transport or "adbc"]
        for name, measured_runs in runs.items():
            typical = _median_run(measured_runs)
            results[name] = _brief(typical)
            results[name]["all_seconds"] = [round(r["seconds"], 3) for r in measured_runs]
        if "ours" in runs:
            ours = _median_run(runs["ours"])
            # plan (registry lookups, DDL, run row), model load, suite build: what the stages do not cover
            results["ours"]["outside_stages_s"] = round(ours["seconds"] - sum(ours["stage_seconds"].values()), 3)
            results["peak_rss_mb_large"] = round(max(r["peak_rss_mb"] for r in runs["ours"]), 1)
            results["validate_s"] = ours["stage_seconds"].get("validate")
            results["day_check_s"] = _day_check_seconds(engine, ours["run_id"])
        if "ours_compiled" in runs:
            results["peak_rss_mb_large_compiled"] = round(max(r["peak_rss_mb"] for r in runs["ours_compiled"]), 1)

        for name, path in (("ours_small", "sklearn"), ("ours_compiled_small", "compiled")):
            if path == "compiled" and unavailable:
                continue
            _settle(engine, superuser=superuser)
            _log("(d) ml-batch score_day at %s rows, %s", args.small_rows, path)
            small = run_one("ours", {**base, "day": SMALL_DAY.isoformat(), "run_id": f"bench-{name}", "path": path},
                            env)
            results[name] = _brief(small)
            results[f"{name}_s"] = round(small["seconds"], 3)
            suffix = "_compiled" if path == "compiled" else ""
            results[f"peak_rss_mb_small{suffix}"] = round(small["peak_rss_mb"], 1)
            check(f"{name}_scored_all", small["scored"] == args.small_rows, small["scored"])
            recorded = _recorded_scoring_path(engine, f"bench-{name}")
            check(f"{name}_scoring_path", _path_as_asked(path, recorded), recorded)

        for shards in (1, 2):
            _settle(engine, superuser=superuser)
            _log("sharded: %d shard(s) on %d worker process(es)", shards, shards)
            sharded = _sharded(engine, spec, shards, {**base, "threads": args.shard_threads}, env)
            results[f"sharded_{shards}"] = sharded
            results[f"sharded_{shards}_s"] = round(sharded["seconds"], 3)
            check(f"sharded_{shards}_scored_all", sharded["scored"] == args.rows, sharded["scored"])
        if not (args.what_if_free_predict and unavailable is None):  # sharded runs score on the version's path
            diff = _score_diff(engine, args.schema, f"floor_{transport or 'adbc'}")
            check("sharded_scores_equal_floor", diff["joined"] == args.rows and (diff["max_abs_diff"] or 0) < 1e-9,
                  diff)

        _settle(engine, superuser=superuser)
        _log("source rows read on day %s with K = %s", SMALL_DAY, SOURCE_READ_SHARDS)
        reads = _source_reads(engine, spec, SMALL_DAY)
        results["source_reads"] = reads
        check("source_reads_scored_all", all(r["day_rows"] == args.small_rows for r in reads["by_shards"].values()),
              reads["by_shards"])

        _settle(engine, superuser=superuser)
        _log("reconcile of the published days, nothing changed")
        results["reconcile"] = _reconcile_unchanged(engine, spec)
        results["reconcile_s"] = results["reconcile"]["check_seconds"]
        check("reconcile_started_nothing", results["reconcile"]["rescored"] == 0, results["reconcile"])

        _settle(engine, superuser=superuser)
        _log("drift check of the published day")
        drift = run_one("drift", {**base, "run_id": "bench-drift"}, env)
        results["drift"] = _brief(drift)
        results["drift_s"] = round(drift["seconds"], 3)
        check("drift_checked", drift.get("status") == "checked", drift.get("status"))

        if args.profile:
            _settle(engine, superuser=superuser)
            _log("profiling (c) with cProfile")
            profile_out = tmp / "ours.prof"
            run_one("ours", {**base, "run_id": "bench-profile", "profile_out": str(profile_out)}, env)
            results["profile"] = profile_text(profile_out, args.profile_top)

        results["machine"]["load_average_end"] = os.getloadavg()
        results["checks"] = checks
        return summarise(results)
    finally:
        if server is not None:
            server.stop()
        elif url:
            with make_engine(Settings(home=tmp, specs_dir=tmp, schema=args.schema, database_url=url)).begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote_ident(args.schema)} CASCADE"))
        shutil.rmtree(tmp, ignore_errors=True)


def profile_text(path: Path, top: int) -> str:
    """The top functions of a cProfile dump, by cumulative and by own time."""
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    """A worker's result without its clock stamps, floats rounded."""
    skip = {"wall_start", "wall_end"}
    return {k: (round(v, 3) if isinstance(v, float) else _round_parts(v)) for k, v in result.items() if k not in skip}


def _round_parts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in value.items()}
    return value


def _log(message: str, *args: object) -> None:
    logger.info(message, *args)
    print(f"[{time.strftime('%H:%M:%S')}] " + (message % args if args else message), flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large day (default 1,000,000)")
    parser.add_argument("--small-rows", type=int, default=100_000, help="rows of the small day (default 100,000)")
    parser.add_argument("--train-rows", type=int, default=50_000, help="labelled rows to train on (default 50,000)")
    parser.add_argument("--skip-naive", action="store_true", help="skip (a), the slow naive pattern")
    parser.add_argument("--profile", action="store_true", help="also run (c) once under cProfile and print the top")
    parser.add_argument("--profile-top", type=int, default=30, help="functions listed by --profile (default 30)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds of the floors and ml-batch on each path; ratios are the medians "
                             "of ratios within a round (default 3)")
    parser.add_argument("--naive-repeats", type=int, default=1,
                        help="rounds that also run the slow naive pattern, the first ones (default 1)")
    parser.add_argument("--naive-max-rows", type=int, default=NAIVE_MAX_ROWS,
                        help=f"skip the naive pattern above this many rows: its memory grows with the day "
                             f"(default {NAIVE_MAX_ROWS:,})")
    parser.add_argument("--floor-transport", choices=("auto", "adbc", "csv"), default="auto",
                        help="the floors' COPY: auto runs both in the first round and keeps the faster")
    parser.add_argument("--shard-threads", type=int, default=None,
                        help="what-if: scoring threads per sharded worker, e.g. 1 for one core per worker "
                             "(default: as the DAG runs them, the machine's cores shared between the shards)")
    parser.add_argument("--what-if-free-predict", action="store_true",
                        help="what-if: the compiled path's predict costs nothing (constant scores), so (b') and (c') "
                             "measure what the floor and ml-batch spend around the predict")
    parser.add_argument("--schema", default="bench", help="schema to (re)create for the run (default bench)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="log ml-batch's INFO lines")
    parser.add_argument("--skip-backfill", action="store_true", help="skip the real-scheduler backfill section")
    backfill.add_arguments(parser, prefix="backfill-")
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.small_rows < 1000 or args.train_rows < 1000:
        parser.error("--rows, --small-rows and --train-rows must each be at least 1000")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: expected at least 1")
    if not 0 <= args.naive_repeats <= args.repeats:
        parser.error(f"--naive-repeats {args.naive_repeats}: expected 0 to --repeats ({args.repeats})")
    if args.train_rows > LOAD_CHUNK_ROWS:
        parser.error(f"--train-rows {args.train_rows:,}: expected at most {LOAD_CHUNK_ROWS:,} (one load chunk)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        child_main(argv[1], json.loads(argv[2]))
        return 0
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    results = run_benchmark(args)
    if not args.skip_backfill:
        results["backfill"] = backfill.run_backfill_bench(args)
        for name, target in results["backfill"]["targets"].items():
            results["checks"][f"backfill_{name}"] = {"ok": bool(target["met"]),
                                                     "detail": f"{target['value']} (target {target['target']})"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(format_report(results))
    if "backfill" in results:
        print("\n" + backfill.format_report(results["backfill"]))
    if args.profile:
        print("\n(c) under cProfile (timings inflated by the profiler):\n" + results["profile"])
    print(f"\nwrote {args.out}")
    return 0 if all(c["ok"] for c in results["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
