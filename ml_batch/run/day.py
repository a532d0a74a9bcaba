"""A whole day in one process: plan, every shard, publish (what `ml-batch score` runs, and the benchmarks).

The same steps the daily DAG runs as separate tasks, without Airflow. The run's lease is held from before the
plan to the end and the run is marked `single_process`: once nobody holds its lock its process is gone, and
the next run of the model cleans up what it left (`ml_batch.run.lifecycle`). A failure of the day's data at
any step (plan, GX, extract, score, publish) drops the run's staging table and snapshot as the lease ends; a
transient one keeps them for the retry.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Unpack

import sqlalchemy as sa

from ml_batch.run import lifecycle
from ml_batch.run.plan import PlanOptions, plan_run
from ml_batch.run.publish import RunSummary, publish_run
from ml_batch.run.shard import score_shard
from ml_batch.spec import PinnedSpec, Spec


def score_day(engine: sa.Engine, spec: Spec | PinnedSpec, day: dt.date, *, run_id: str,
              results_dir: Path | None = None, **options: Unpack[PlanOptions]) -> RunSummary:
    """Plan day `day` (with `plan_run`'s options), score its shards one after another, publish it; the run's
    summary. `results_dir` keeps the shards' GX results as files too."""
    model = spec.spec if isinstance(spec, PinnedSpec) else spec
    # With the spec, a failure of the day's data at any step drops the run's objects when the lease ends.
    with lifecycle.RunLease(engine, model.name, run_id, spec=model) as lease:
        plan = plan_run(engine, spec, day, run_id=run_id, **options)
        lease.touch(single_process=True)
        for shard in range(plan.shards):  # one after another here: no thread cap
            score_shard(engine, plan, shard, results_dir=results_dir, threads=None)
        return publish_run(engine, plan)
