"""Backfill throughput through the real scheduler, against Airflow's own floor and the CLI.

One run (`.venv/bin/python benchmarks/backfill.py --days 14 --rows 2000`, or the `backfill` section of
`make bench`):

1. starts a private embedded PostgreSQL (durable defaults), or uses ML_BATCH_DATABASE_URL when set; seeds
   the demo source (`--rows` a day) and trains and promotes a champion of the demo spec `credit_default`;
2. starts the deployment's components (`tests/support/cluster.py`: api-server, scheduler, dag-processor,
   triggerer, two Celery workers, Redis) on the DAG folder `benchmarks/backfill_dags/`, which holds the daily
   DAG and its no-op twin of the same task shape;
3. backfills `--days` days of the daily DAG through `POST /api/v2/backfills`, waits for it, then the same
   days of the no-op DAG; reads every run's start/end and every task instance's duration from the REST API;
4. runs the same days in this process the way the CLI does (`score_day`, then the monitoring steps the DAG
   runs: drift, shadow, performance), after warming the imports;
5. prints a table with the targets and writes the JSON (`--out`); with `--write-baseline` it also records
   the result as the baseline the later runs compare against (`benchmarks/results/backfill_baseline.json`).

Days per minute is the wall time from the backfill's creation to the end of its last run. Task-seconds per
day is the sum of every task instance's duration divided by the days. No timing is asserted anywhere; the
targets are reported as met or not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger("ml_batch.bench.backfill")

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASELINE_FILE = RESULTS_DIR / "backfill_baseline.json"
DAGS_FOLDER = "benchmarks/backfill_dags"  # relative to --code-root
MODEL = "credit_default"
DAG_ID = f"batch_predict_{MODEL}"
NOOP_DAG_ID = f"noop_batch_predict_{MODEL}"
HISTORY_DAYS = 100  # labelled history before the backfilled days: training window + holdout + label delay
TERMINAL = {"success", "failed"}


class BackfillBenchError(RuntimeError):
    """The benchmark could not measure (a backfill did not finish, a run failed)."""


# -- pure helpers (unit-tested) ----------------------------------------------------------------------------
def parse_ts(value: str) -> dt.datetime:
    """An ISO-8601 timestamp of the REST API ('Z' or an offset) as an aware datetime."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def days_per_min(days: int, created_at: str, run_ends: Iterable[str | None]) -> float | None:
    """Days per minute of wall time from the backfill's creation to the last run's end (None: no end)."""
    ends = [parse_ts(e) for e in run_ends if e]
    if not ends or days <= 0:
        return None
    seconds = (max(ends) - parse_ts(created_at)).total_seconds()
    return round(days / (seconds / 60), 3) if seconds > 0 else None


def per_task_seconds(task_instances: Iterable[Mapping[str, Any]], days: int) -> dict[str, float]:
    """Task id -> its task-seconds per day: every instance's duration (mapped ones summed), over `days`."""
    if days <= 0:
        raise ValueError(f"days={days}: expected at least 1")
    totals: dict[str, float] = {}
    for ti in task_instances:
        totals[str(ti["task_id"])] = totals.get(str(ti["task_id"]), 0.0) + float(ti.get("duration") or 0.0)
    return {task: round(total / days, 3) for task, total in sorted(totals.items())}


def overhead_ratio(ours: float | None, noop: float | None, cli: float | None) -> float | None:
    """(ours - no-op) / CLI, per day: how many CLI days the orchestration costs beyond Airflow's floor."""
    if ours is None or noop is None or not cli:
        return None
    return round((ours - noop) / cli, 3)


def evaluate_targets(result: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The issue's two targets with the measured values and whether each is met (None: not measured)."""
    ours, noop, cli = result.get("task_s_per_day"), result.get("noop_task_s_per_day"), result.get("cli_s_per_day")
    bound = None if noop is None or cli is None else round(2 * noop + cli, 3)
    base_dpm = (baseline or {}).get("days_per_min")
    dpm = result.get("days_per_min")
    speedup = None if dpm is None or not base_dpm else round(dpm / base_dpm, 3)
    return {
        "task_s_per_day": {"value": ours, "target": f"<= {bound} (2 x no-op + CLI)" if bound is not None else None,
                           "met": None if bound is None or ours is None else ours <= bound,
                           "what": "task-seconds per day at most 2x the no-op DAG's plus the CLI's"},
        "days_per_min_vs_baseline": {"value": speedup, "target": ">= 3",
                                     "met": None if speedup is None else speedup >= 3,
                                     "what": f"backfill days per minute at least 3x the baseline's ({base_dpm})"},
    }


def summarise(measured: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    """The measured figures plus the overhead ratio, the baseline's figures and the target verdicts."""
    out = dict(measured)
    out["task_s_per_day"] = _sum(out.get("per_task"))
    out["noop_task_s_per_day"] = _sum(out.get("noop_per_task"))
    out["overhead_ratio"] = overhead_ratio(out["task_s_per_day"], out["noop_task_s_per_day"],
                                           out.get("cli_s_per_day"))
    if baseline:
        out["baseline"] = {k: baseline.get(k) for k in ("commit", "date", "machine", "days", "rows", "days_per_min",
                                                        "task_s_per_day", "cli_s_per_day", "per_task")}
    out["targets"] = evaluate_targets(out, baseline)
    return out


def _sum(per_task: Mapping[str, float] | None) -> float | None:
    return None if not per_task else round(sum(per_task.values()), 3)


def format_report(result: Mapping[str, Any]) -> str:
    """A readable table: per task for ours, the no-op and the baseline; totals; targets."""
    base = result.get("baseline") or {}
    ours, noop, before = result.get("per_task") or {}, result.get("noop_per_task") or {}, base.get("per_task") or {}
    lines = [f"backfill: {result.get('days')} days x {result.get('rows')} rows, max_active_runs "
             f"{result.get('max_active_runs')}, {result.get('machine', {}).get('summary', '')}",
             f"{'task-seconds per day':<24}{'ours':>10}{'no-op':>10}{'baseline':>10}"]
    for task in sorted(set(ours) | set(noop) | set(before)):
        lines.append(f"  {task:<22}{_fmt(ours.get(task)):>10}{_fmt(noop.get(task)):>10}{_fmt(before.get(task)):>10}")
    lines.append(f"  {'sum':<22}{_fmt(result.get('task_s_per_day')):>10}"
                 f"{_fmt(result.get('noop_task_s_per_day')):>10}{_fmt(base.get('task_s_per_day')):>10}")
    lines.append(f"{'days per minute':<24}{_fmt(result.get('days_per_min')):>10}"
                 f"{_fmt(result.get('noop_days_per_min')):>10}{_fmt(base.get('days_per_min')):>10}")
    lines.append(f"CLI seconds per day (score + drift + shadow + performance, one process): "
                 f"{_fmt(result.get('cli_s_per_day'))} (baseline {_fmt(base.get('cli_s_per_day'))})")
    lines.append(f"overhead ratio (ours - no-op) / CLI: {_fmt(result.get('overhead_ratio'))}")
    for name, verdict in (result.get("targets") or {}).items():
        met = {True: "MET", False: "NOT MET", None: "not measured"}[verdict["met"]]
        lines.append(f"target {name}: {_fmt(verdict['value'])} {verdict['target'] or ''} -> {met} ({verdict['what']})")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


# -- measuring ---------------------------------------------------------------------------------------------
def _at_six(day: dt.date) -> str:
    """The logical date of day D's run (the demo spec's schedule starts its interval at D 06:00 UTC)."""
    return dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC).isoformat()


def _json(response: Any, expected: int = 200) -> Any:
    if response.status_code != expected:
        raise BackfillBenchError(f"{response.request.method} {response.request.url} -> {response.status_code}: "
                                 f"{response.text[:2000]}")
    return response.json()


def _wait(what: str, done: Any, timeout: float, tails: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(2)
    raise BackfillBenchError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails()}")


def _unpause_and_settle(cluster: Any, dag_id: str, timeout: float) -> None:
    """Unpause `dag_id` and wait until its non-backfill runs (the catch-up run of the latest interval) end."""
    with cluster.client() as client:
        _json(client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}))
    time.sleep(5)  # one scheduler loop: the latest interval's run is created now if it is due

    def idle() -> bool:
        with cluster.client() as client:
            runs = _json(client.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}))["dag_runs"]
        return all(run["state"] in TERMINAL for run in runs)

    _wait(f"{dag_id}'s scheduled run to end", idle, timeout, cluster.tails)


def _backfill(cluster: Any, dag_id: str, days: list[dt.date], max_active_runs: int,
              timeout: float) -> dict[str, Any]:
    """Backfill `days` of `dag_id` through the REST API; the runs' times and every task instance."""
    _unpause_and_settle(cluster, dag_id, timeout)
    with cluster.client() as client:
        backfill = _json(client.post("/api/v2/backfills", json={
            "dag_id": dag_id, "from_date": _at_six(days[0]), "to_date": _at_six(days[-1]),
            "reprocess_behavior": "completed", "max_active_runs": max_active_runs}))

    def completed() -> bool:
        with cluster.client() as client:
            return _json(client.get(f"/api/v2/backfills/{backfill['id']}"))["completed_at"] is not None

    _log("backfill %s of %s: %d days", backfill["id"], dag_id, len(days))
    _wait(f"backfill {backfill['id']} of {dag_id} to complete", completed, timeout, cluster.tails)
    with cluster.client() as client:
        runs = [r for r in _json(client.get(f"/api/v2/dags/{dag_id}/dagRuns",
                                            params={"run_type": "backfill", "limit": 100}))["dag_runs"]
                if r.get("backfill_id") in (None, backfill["id"])]
        tis = [ti for run in runs for ti in _json(client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances", params={"limit": 1000}))[
            "task_instances"]]
    failed = sorted(r["dag_run_id"] for r in runs if r["state"] != "success")
    if len(runs) != len(days) or failed:
        bad = [(ti["task_id"], ti["map_index"], ti["state"]) for ti in tis if ti["state"] != "success"]
        raise BackfillBenchError(f"{dag_id}: {len(runs)} backfill runs for {len(days)} days, not successful: "
                                 f"{failed} {bad[:20]}\n{cluster.tails(15)}")
    return {"days_per_min": days_per_min(len(days), backfill["created_at"], [r["end_date"] for r in runs]),
            "per_task": per_task_seconds(tis, len(days)),
            "task_instances": len(tis)}


def _cli_seconds_per_day(engine: Any, spec: Any, settings: Any, days: list[dt.date]) -> dict[str, Any]:
    """The same days in this process: `score_day` plus the monitoring steps of the DAG (imports warmed)."""
    import great_expectations  # noqa: F401  (warm: validation imports it on first use)

    from ml_batch.monitoring.daily import check_day_drift
    from ml_batch.monitoring.performance import realized_performance
    from ml_batch.monitoring.shadow import shadow_score
    from ml_batch.run.day import score_day
    from ml_batch.spec_folder import read_spec

    seconds = []
    for day in days:
        run_id = f"bench_cli__{day.isoformat()}"
        started = time.perf_counter()
        score_day(engine, read_spec(settings.specs_dir, spec.name), day, run_id=run_id, run_type="cli",
                  results_dir=settings.home / "validation")
        check_day_drift(engine, spec, day, run_id=run_id, report_dir=settings.home / "drift")
        shadow_score(engine, spec, day, run_id=run_id)
        realized_performance(engine, spec, day, run_id=run_id)
        seconds.append(time.perf_counter() - started)
    return {"cli_s_per_day": round(sum(seconds) / len(seconds), 3), "cli_first_day_s": round(seconds[0], 3)}


def _machine() -> dict[str, Any]:
    import psutil

    cpus = os.cpu_count() or 0
    memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    return {"summary": f"{cpus} CPUs, {memory_gb} GB, Python {platform.python_version()}",
            "cpu_count": cpus, "memory_gb": memory_gb, "platform": platform.platform(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def _commit(code_root: Path) -> str:
    done = subprocess.run(["git", "-C", str(code_root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def load_baseline(path: Path) -> dict[str, Any] | None:
    """The recorded baseline's figures, None when there is no baseline file."""
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    return {**recorded["backfill"], "commit": recorded["commit"], "date": recorded["date"]}


def run_backfill_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Everything in the module docstring; returns the `backfill` results dict.

    `args` carries the options of `add_arguments` (`args.backfill_days`, `args.backfill_rows`, ...).
    """
    from ml_batch.config import ARTIFACT_KEY_ENV, Settings
    from ml_batch.db.embedded import EmbeddedPostgres
    from ml_batch.spec import load_spec
    from tests.support import cluster

    os.environ.setdefault(ARTIFACT_KEY_ENV, secrets.token_hex(32))  # throwaway; the components inherit it
    code_root = Path(args.backfill_code_root).resolve()
    n_days, rows = int(args.backfill_days), int(args.backfill_rows)
    last_day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    # Two days before the latest interval: the run that unpausing starts (catchup=False) is never one of them.
    days = [last_day - dt.timedelta(days=2 + n) for n in reversed(range(n_days))]
    tmp = Path(tempfile.mkdtemp(prefix="ml_batch_backfill_bench_"))
    server = None
    try:
        url = os.environ.get("ML_BATCH_DATABASE_URL")
        if not url:
            server = EmbeddedPostgres(tmp / "postgres")  # durable defaults, like benchmarks/bench.py
            url = server.ensure_running().url
        specs_dir = tmp / "specs"
        specs_dir.mkdir()
        shutil.copyfile(code_root / "include" / "models" / f"{MODEL}.yaml", specs_dir / f"{MODEL}.yaml")
        spec = load_spec(specs_dir / f"{MODEL}.yaml")
        with cluster.databases(url, "bench") as urls:
            settings = Settings(home=tmp / "ml_batch_home", specs_dir=specs_dir, schema="ml_batch",
                                database_url=urls["ml_batch"], user="bench")
            settings.home.mkdir()
            _log("seeding %d days x %d rows and training the champion", HISTORY_DAYS + n_days, rows)
            engine, champion = cluster.seed_demo_champion(settings, spec, last_day, days=HISTORY_DAYS + n_days,
                                                          rows_per_day=rows)
            measured: dict[str, Any] = {
                "days": n_days, "rows": rows, "max_active_runs": args.backfill_max_active_runs,
                "first_day": days[0].isoformat(), "last_day": days[-1].isoformat(), "champion": champion,
                "commit": args.backfill_commit or _commit(code_root), "code_root": str(code_root),
                "machine": _machine(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
            config = cluster.ClusterConfig(
                root=tmp / "cluster", urls=urls, dags_folder=code_root / DAGS_FOLDER, code_root=code_root,
                ml_batch_env={"ML_BATCH_HOME": str(settings.home), "ML_BATCH_SPECS_DIR": str(specs_dir),
                              "ML_BATCH_SCHEMA": settings.schema})
            _log("starting the Airflow components (code from %s)", code_root)
            with cluster.running(config) as running:
                measured.update(_both_backfills(running, days, args.backfill_max_active_runs,
                                                args.backfill_timeout))
            _log("the same days through the CLI path in one process")
            measured.update(_cli_seconds_per_day(engine, spec, settings, days))
            measured["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
            engine.dispose()
        baseline = None if args.backfill_write_baseline else load_baseline(args.backfill_baseline)
        return summarise(measured, baseline)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _both_backfills(running: Any, days: list[dt.date], max_active_runs: int, timeout: float) -> dict[str, Any]:
    """Our DAG's backfill, then the no-op twin's over the same days (when the DAG factory offers it)."""
    running.wait_for_dag(DAG_ID)
    ours = _backfill(running, DAG_ID, days, max_active_runs, timeout)
    out: dict[str, Any] = {"days_per_min": ours["days_per_min"], "per_task": ours["per_task"],
                           "noop_days_per_min": None, "noop_per_task": None}
    if _dag_exists(running, NOOP_DAG_ID):
        noop = _backfill(running, NOOP_DAG_ID, days, max_active_runs, timeout)
        out.update(noop_days_per_min=noop["days_per_min"], noop_per_task=noop["per_task"])
    else:
        logger.warning("%s is not in the DAG folder: the no-op figures are not measured", NOOP_DAG_ID)
    return out


def _dag_exists(running: Any, dag_id: str) -> bool:
    time.sleep(5)  # the dag-processor parses the whole file at once: both DAGs appear together
    with running.client() as client:
        return bool(client.get(f"/api/v2/dags/{dag_id}").status_code == 200)


def _log(message: str, *args: object) -> None:
    logger.info(message, *args)
    print(f"[{time.strftime('%H:%M:%S')}] " + (message % args if args else message), flush=True)


def add_arguments(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """The backfill benchmark's options. Their destinations are always `backfill_<name>`, so
    `benchmarks/bench.py` can add them as `--backfill-days` etc. (`prefix="backfill-"`) next to its own
    `--rows`, and this file's `main` as `--days`, `--rows`."""

    def add(name: str, **kwargs: Any) -> None:
        parser.add_argument(f"--{prefix}{name}", dest="backfill_" + name.replace("-", "_"), **kwargs)

    add("days", type=int, default=14, help="days to backfill (default 14)")
    add("rows", type=int, default=2000, help="rows per day (default 2,000)")
    add("max-active-runs", type=int, default=4, help="backfill max_active_runs (default 4)")
    add("timeout", type=float, default=3600, help="seconds to wait for each backfill (default 3600)")
    add("code-root", type=Path, default=REPO,
        help="checkout whose ml_batch and DAGs the Airflow components run (default this one)")
    add("baseline", type=Path, default=BASELINE_FILE, help="baseline to compare against")
    add("write-baseline", action="store_true", help="record this run as the baseline")
    add("commit", default=None, help="commit id recorded (default: git rev-parse HEAD of the code root)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "backfill_latest.json", help="JSON output")
    parser.add_argument("-v", "--verbose", action="store_true", help="log ml-batch's INFO lines")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.backfill_days < 1 or args.backfill_rows < 100:
        parser.error(f"--days {args.backfill_days} --rows {args.backfill_rows}: expected at least 1 day and 100 rows")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    # SIGTERM (a timeout, a process manager) unwinds like Ctrl-C: the components' process groups are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    result = run_backfill_bench(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"backfill": result}, indent=2, default=str) + "\n")
    if args.backfill_write_baseline:
        args.backfill_baseline.write_text(json.dumps({"commit": result["commit"], "date": result["date"],
                                             "machine": result["machine"], "backfill": result}, indent=2) + "\n")
        print(f"wrote the baseline {args.backfill_baseline}")
    print()
    print(format_report(result))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
