"""Is the day whole? The plan's checks of a day as a whole, before any row of it is scored.

Row checks (GX, quarantine) judge each row; these judge the day. Three checks, in the plan's transaction, on
the day's snapshot (so they cost no extra read of the source):

- **Volume against history.** The day's rows are compared with the volume its recent history leads to
  expect: the median of the same weekday's published row counts over the last `validation.volume_history_weeks`
  weeks (at least `MIN_SAME_WEEKDAY` of them), else the median of every published day in that window (at
  least `MIN_ANY_DAYS`), else nothing is checked and the plan says why. A day below `min_volume_ratio` or
  above `max_volume_ratio` times the expected volume is refused (`DayIncomplete`, waitable: the day may
  still fill). The history is what earlier runs read (`runs.rows_extracted` of each day's latest finished,
  non-partial run), so it costs one query of the `runs` table, never a scan of the source. A holiday at 75%
  of its weekday's usual volume passes the defaults (0.5 to 3.0).
- **Readiness.** A spec's `source.ready_query` returns one boolean for `:day`; anything but true refuses the
  day (waitable).
- **Null shares against training.** A feature null in more than `validation.max_null_share` of the day's
  rows, while the scoring version's training data had it null in fewer than `validation.reference_null_share`
  (its reference profile, read by `ml_batch.model.reference`), fails the day at once (`DayIncomplete`, not
  waitable: an upstream join that broke does not heal by waiting). `null_share_check: false` on a feature
  exempts it. The smaller changes are reported with the drift results (`ml_batch.monitoring`).

With `allow_partial` (the CLI's `--allow-partial`, the DAG's `allow_partial` param) a refused volume or
readiness is published anyway and the run is marked partial; the null-share rule is not waived by it.
What the checks found is recorded on the run (`runs.day_check`) either way.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from ml_batch.db.tables import runs
from ml_batch.errors import DayIncomplete, SourceError, first_line
from ml_batch.run.names import snapshot_whole
from ml_batch.spec import Spec, duration_seconds

logger = logging.getLogger(__name__)

#: Same-weekday days needed to judge by the weekday; else any published days, at least this many.
MIN_SAME_WEEKDAY = 2
MIN_ANY_DAYS = 3

Verdict = Literal["ok", "low", "high", "unchecked"]


@dataclass(frozen=True)
class Volume:
    """The day's rows against the volume its history leads to expect."""

    rows: int
    expected: float | None
    basis: str  # how `expected` was computed, or why nothing was checked
    verdict: Verdict

    @property
    def ratio(self) -> float | None:
        return None if not self.expected else self.rows / self.expected


@dataclass(frozen=True)
class DayCheck:
    """Everything the plan found about the day as a whole (recorded on the run as `runs.day_check`)."""

    volume: Volume
    ready: bool | None = None  # the ready_query's answer (None: the spec has none)
    null_shares: dict[str, dict[str, float | None]] = field(default_factory=dict)  # {feature: {day, training}}
    incomplete: list[str] = field(default_factory=list)  # why the day may not be whole yet (waitable)
    broken: list[str] = field(default_factory=list)  # why the day cannot be published as it is (not waitable)
    partial: bool = False  # incomplete, and published anyway (allow_partial)
    seconds: float = 0.0  # what the checks and the key digest cost the plan

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "volume": {**asdict(self.volume), "ratio": self.volume.ratio}}


def expected_volume(conn: sa.Connection, spec: Spec, day: dt.date) -> tuple[float | None, str]:
    """The volume day `day` is expected to have and how it was computed (or, with None, why it cannot be)."""
    weeks = spec.validation.volume_history_weeks
    first = day - dt.timedelta(days=7 * weeks)
    history = _published_rows(conn, spec.name, first, day - dt.timedelta(days=1))
    same = {d: n for d, n in history.items() if d.weekday() == day.weekday()}
    if len(same) >= MIN_SAME_WEEKDAY:
        return float(statistics.median(same.values())), (
            f"median of the {len(same)} {day:%A}s published in the {weeks} weeks before ({_listed(same)})")
    if len(history) >= MIN_ANY_DAYS:
        return float(statistics.median(history.values())), (
            f"median of the {len(history)} days published in the {weeks} weeks before (fewer than "
            f"{MIN_SAME_WEEKDAY} {day:%A}s among them)")
    return None, (f"not checked: {len(history)} day(s) published in the {weeks} weeks before {day}, "
                  f"need {MIN_SAME_WEEKDAY} {day:%A}s or {MIN_ANY_DAYS} days")


def judge_volume(spec: Spec, rows: int, expected: float | None, basis: str) -> Volume:
    """The verdict of the volume rule on `rows` against `expected` (`validation.min/max_volume_ratio`)."""
    rules = spec.validation
    if expected is None:
        return Volume(rows, None, basis, "unchecked")
    if expected == 0:
        return Volume(rows, expected, f"{basis}; not checked: the expected volume is 0", "unchecked")
    ratio = rows / expected
    if ratio < rules.min_volume_ratio:
        return Volume(rows, expected, basis, "low")
    if rules.max_volume_ratio is not None and ratio > rules.max_volume_ratio:
        return Volume(rows, expected, basis, "high")
    return Volume(rows, expected, basis, "ok")


def volume_refusal(spec: Spec, day: dt.date, volume: Volume) -> str | None:
    """The sentence that refuses the day on its volume, naming both numbers and what changes the rule; None
    when the volume passes (or was not checked)."""
    if volume.verdict not in ("low", "high") or volume.expected is None:
        return None
    rules = spec.validation
    bound = (f"below validation.min_volume_ratio {rules.min_volume_ratio:g}" if volume.verdict == "low"
             else f"above validation.max_volume_ratio {rules.max_volume_ratio:g}")
    return (f"model {spec.name!r} day {day}: {volume.rows} rows, expected about {volume.expected:.0f} "
            f"({volume.basis}): {volume.ratio:.2f} of it, {bound}; the day looks incomplete and was not "
            f"published (change validation.min_volume_ratio, max_volume_ratio or volume_history_weeks, or "
            f"publish it anyway with --allow-partial / the allow_partial param)")


def check_ready(conn: sa.Connection, spec: Spec, day: dt.date) -> bool | None:
    """The answer of the spec's `source.ready_query` for `day` (None when it has none).

    Raises:
        SourceError: the query fails, or returns something other than one boolean (or no row: not ready).
    """
    query = spec.source.ready_query
    if query is None:
        return None
    try:
        rows = conn.execute(sa.text(query), {"day": day}).all()
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"model {spec.name!r}: source.ready_query failed for day {day}: {first_line(exc)}") from exc
    if not rows:
        return False
    if len(rows) > 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], bool | None):
        raise SourceError(f"model {spec.name!r}: source.ready_query returned {[tuple(r) for r in rows[:3]]!r} "
                          f"for day {day}: expected one row with one boolean")
    return bool(rows[0][0])


def day_null_shares(conn: sa.Connection, spec: Spec, run_id: str, shards: int) -> dict[str, float]:
    """Each feature's null share in the run's snapshot of the day (one pass; 0.0 for an empty day)."""
    name = snapshot_whole(spec, run_id, shards)
    schema, _, table_name = name.rpartition(".")
    table = sa.table(table_name, *[sa.column(f) for f in spec.feature_names], schema=schema or None)
    counts = conn.execute(sa.select(sa.func.count(), *[sa.func.count(table.c[f]) for f in spec.feature_names])).one()
    total = int(counts[0])
    return {f: (0.0 if total == 0 else 1 - int(n) / total) for f, n in zip(spec.feature_names, counts[1:], strict=True)}


def null_share_refusals(spec: Spec, day: dt.date, day_shares: dict[str, float],
                        reference: dict[str, float | None]) -> list[str]:
    """One sentence per feature whose null share on the day breaks the rule (see the module doc)."""
    rules, refused = spec.validation, []
    for feature in spec.features:
        share, before = day_shares.get(feature.name), reference.get(feature.name)
        if not feature.null_share_check or share is None or before is None:
            continue
        if share > rules.max_null_share and before < rules.reference_null_share:
            refused.append(
                f"model {spec.name!r} day {day}: feature {feature.name!r} is null in {share:.1%} of the day's rows "
                f"but in {before:.1%} of the training data (validation.max_null_share {rules.max_null_share:g}, "
                f"reference_null_share {rules.reference_null_share:g}); an upstream column that turned NULL is "
                f"not scored (set null_share_check: false on the feature if this is expected)")
    return refused


def _published_rows(conn: sa.Connection, model: str, first: dt.date, last: dt.date) -> dict[dt.date, int]:
    """Row counts of each day in [first, last] as its latest finished, non-partial run read them."""
    rows = conn.execute(
        sa.select(runs.c.partition_date, runs.c.rows_extracted)
        .where(runs.c.model_name == model, runs.c.partition_date.between(first, last),
               runs.c.status.in_(("success", "dry_run")), runs.c.partial.is_(False),
               runs.c.rows_extracted.is_not(None))
        .order_by(runs.c.partition_date, runs.c.started_at.desc())
        .ext(distinct_on(runs.c.partition_date))
    ).all()
    return {day: int(count) for day, count in rows}


def _listed(days: dict[dt.date, int]) -> str:
    return ", ".join(f"{day}: {count}" for day, count in sorted(days.items()))


def raise_if_refused(spec: Spec, day: dt.date, check: DayCheck, *, allow_partial: bool) -> DayCheck:
    """The check as the run records it: raise `DayIncomplete` when it refused the day (naming every reason),
    unless `allow_partial` waives the waitable reasons (the run is then marked partial)."""
    if check.broken:
        raise DayIncomplete("; ".join(check.broken), waitable=False)
    if check.incomplete and not allow_partial:
        raise DayIncomplete("; ".join(check.incomplete))
    if check.incomplete:
        logger.warning("publishing an incomplete day as partial (allow_partial): %s", "; ".join(check.incomplete))
        return replace(check, partial=True)
    return check


def ready_refusal(spec: Spec, day: dt.date, ready: bool | None) -> str | None:
    """The sentence that refuses the day because the source's ready_query said no; None otherwise."""
    if ready is not False:
        return None
    return (f"model {spec.name!r} day {day}: source.ready_query says the day is not complete yet; it was not "
            "published (publish it anyway with --allow-partial / the allow_partial param)")


def assess(conn: sa.Connection, spec: Spec, day: dt.date, *, run_id: str, shards: int, rows: int,
           ready: bool | None, training: dict[str, float]) -> DayCheck:
    """Every check of the day as a whole, on the run's snapshot (`rows` rows in `shards` shards); `training` is
    each feature's null share in the scoring version's training data (`ml_batch.model.reference`)."""
    expected, basis = expected_volume(conn, spec, day)
    volume = judge_volume(spec, rows, expected, basis)
    day_shares = day_null_shares(conn, spec, run_id, shards)
    reference: dict[str, float | None] = {name: training.get(name) for name in spec.feature_names}
    incomplete = [reason for reason in (volume_refusal(spec, day, volume), ready_refusal(spec, day, ready))
                  if reason is not None]
    shares = {name: {"day": day_shares[name], "training": reference[name]} for name in spec.feature_names}
    return DayCheck(volume, ready, shares, incomplete, null_share_refusals(spec, day, day_shares, reference))


def next_check(spec: Spec, *, first_check: dt.datetime, now: dt.datetime, run_type: str) -> dt.datetime | None:
    """When a plan refused as incomplete should look at the day again; None when it should stop waiting.

    A run waits up to `validation.wait_for_volume` from its first check, re-checking every
    `validation.recheck_every` (never past the deadline, so the last check comes at it). A backfill does not
    wait: its day is in the past and will not fill by itself.
    """
    if run_type == "backfill":
        return None
    deadline = first_check + dt.timedelta(seconds=duration_seconds(spec.validation.wait_for_volume))
    if now >= deadline:
        return None
    return min(now + dt.timedelta(seconds=duration_seconds(spec.validation.recheck_every)), deadline)


def after_waiting(spec: Spec, refusal: DayIncomplete, *, waited: bool) -> DayIncomplete:
    """The failure that ends a wait for the day (or a refusal that cannot be waited for): the refusal, saying how
    long the run waited, no longer waitable."""
    waited_for = f"; waited {spec.validation.wait_for_volume} (validation.wait_for_volume) for it" if waited else ""
    return DayIncomplete(f"{refusal}{waited_for}", waitable=False)
