"""Training validated like scoring: the training window's rows that a scoring day would quarantine are left out.

A model learns from what it is trained on, and its drift reference describes what it is trained on: rows that
scoring refuses (a value out of the spec's bounds, a null where none is allowed, an unknown category, NaN)
would make the model learn from them and make every drift report compare today's valid rows with a polluted
reference. So the window's source rows go through **the scoring day's rules, run the scoring day's way**: the
same suite (`ml_batch.validation.suite.build_suite`, with the spec's suite file), run by GX inside PostgreSQL
on a view of exactly the window's rows (`ml_batch.validation.passes.validate_relation`). No rule is repeated
here: this module only decides what GX's findings mean for training.

- The suite runs without the row-count check (it bounds a day, not a window) and without the key-unique
  check (a recurring entity's key is on many days; training's label join already refuses repeated rows).
- A failing row is identified by a **row identity** computed in SQL (`row_identity`: the key's text and the
  event time's epoch), a column of the view that GX keys the failing rows by and that the labelled frame
  carries too, so exclusion is an exact join on the same SQL value: a recurring entity loses only the rows
  of the days it failed, never its other days.
- A batch failure (a missing column, a column of the wrong type, a check failing on more rows than
  `validation.max_quarantine_share`) fails training, naming it; so do failing rows above that share of the
  window's rows, counted whatever their reasons (`ValidationSpec.quarantine_exceeded`, the one rule).
- What was left out is counted per reason (a reason's text before `ml_batch.validation.reasons.GOT`, what the
  UI's quarantine page counts rows by) and per part, and stored with the version (`Exclusions`).

The view lives only while GX runs: its name is unique per call (two trainings at once never share one) and
lower case (GX names tables unquoted), and it is dropped in a `finally`. A training killed meanwhile (SIGKILL,
OOM, a task timeout) cannot drop it, and a leftover view blocks changes to the source's columns ("cannot alter
type of a column used by a view"): the view is held under a shared advisory lock of its own while it lives
(`view_lock`), and `sweep_leftover_views` drops the views whose lock is free. Every training sweeps before it
validates, and so does `ml-batch prune`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ml_batch.db import locks
from ml_batch.db.catalog import drop_views
from ml_batch.db.disconnects import is_disconnect
from ml_batch.db.sources import compiled, source_error
from ml_batch.db.sqlfiles import render
from ml_batch.errors import TrainingError, first_line
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

ROW_ID = "_row_id"
VIEW_PREFIX = "ml_batch_train_"
_TOP_REASONS = 3


def row_identity(key: sa.ColumnElement[Any], event_time: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """The one identity of a window's source row, as SQL: `<key as text>@<event time's epoch>`.

    The key alone is not enough for recurring entities (one key, many days). The epoch of the event time is
    the same in every session, whatever its time zone, for a timestamptz, a timestamp or a date column.
    """
    epoch = sa.cast(sa.extract("epoch", event_time), sa.Text)
    return sa.cast(key, sa.Text).concat("@").concat(epoch)


@dataclass(frozen=True)
class WindowFindings:
    """What GX found in a window's source rows.

    Attributes:
        checked_rows: the window's source rows that were validated (labelled or not).
        row_reasons: row identity (`ROW_ID`) -> every reason that row failed; only failing rows.
        seconds: how long validation took, view and GX included.
    """

    checked_rows: int
    row_reasons: dict[str, list[str]]
    seconds: float

    @property
    def failing_rows(self) -> int:
        """The window's rows that scoring would quarantine."""
        return len(self.row_reasons)

    def reason_counts(self, row_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Rows per reason (a reason's text before ", got "), of `row_ids` (None: every failing row),
        most frequent first."""
        from ml_batch.validation.reasons import failure_of

        ids = self.row_reasons if row_ids is None else row_ids
        counted = Counter(failure_of(reason) for row in ids for reason in set(self.row_reasons.get(row, [])))
        return dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class Exclusions:
    """The labelled rows left out of training because scoring would quarantine them (stored on the version).

    Attributes:
        train: rows left out of the training days.
        holdout: rows left out of the holdout days.
        reasons: rows left out per reason (a row failing two ways counts under both).
        checked_rows: the window's source rows validated (labelled or not).
        failing_rows: of those, the rows scoring would quarantine (what the quarantine share is applied to).
    """

    train: int
    holdout: int
    reasons: dict[str, int]
    checked_rows: int
    failing_rows: int

    @property
    def total(self) -> int:
        """Every labelled row left out (`model_versions.n_excluded`)."""
        return self.train + self.holdout

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, as `model_versions.exclusions` holds it."""
        return {"reasons": dict(self.reasons), "train": self.train, "holdout": self.holdout,
                "checked_rows": self.checked_rows, "failing_rows": self.failing_rows}


def validate_window_rows(
    engine: sa.Engine, spec: Spec, rows: sa.Subquery, *, event_time: str, what: str, suite_file: Path | None = None,
) -> WindowFindings:
    """Validate a window's source rows as a scoring day's, with GX in PostgreSQL, and key the failing ones.

    Args:
        engine: the database holding the source.
        spec: the model spec.
        rows: the window's source rows: the key, `event_time`, every feature and `ROW_ID`.
        event_time: the column of `rows` holding the source's `date_column` (the view restores its name).
        what: the rows, for messages ("training window 2026-05-08..2026-05-17").
        suite_file: the spec's extra GX suite file, resolved (`ml_batch.validation.suite.suite_path`); None:
            an absolute `validation.suite`, or none.

    Returns:
        The rows checked and the failing rows' reasons by row identity.

    Raises:
        SourceError: the source cannot be read (a missing table or column).
        TrainingError: the rows fail as a batch (a column of the wrong type, a check failing on more than the
            quarantine share), or too many of them fail (`ValidationSpec.quarantine_exceeded`).
    """
    started = time.perf_counter()
    sweep_leftover_views(engine)
    view = _view_name(engine)
    with locks.held_shared(engine, view_lock(view)):
        _create_view(engine, spec, rows, event_time, view)
        try:
            checked, outcome = _run_gx(engine, spec, view, suite_file)
        finally:
            drop_views(engine, [view])
    if outcome is None:  # no rows: nothing to validate (training names the empty set itself)
        return WindowFindings(0, {}, time.perf_counter() - started)
    if not outcome.passed_batch:
        raise TrainingError(f"model {spec.name!r}: {what} failed validation: " + "; ".join(outcome.batch_failures))
    found = WindowFindings(checked, {str(row): reasons for row, reasons in outcome.row_reasons.items()},
                           time.perf_counter() - started)
    if spec.validation.quarantine_exceeded(found.failing_rows, checked):
        raise TrainingError(
            f"model {spec.name!r}: {what}: {found.failing_rows} of {checked} rows ({found.failing_rows / checked:.1%}) "
            f"fail validation, above validation.max_quarantine_share {spec.validation.max_quarantine_share:.1%}: "
            f"{_top(found.reason_counts())}; fix the source rows or the spec's bounds"
        )
    logger.info("validated %s of %s in %.2fs: %d of %d rows fail validation%s", what, spec.name, found.seconds,
                found.failing_rows, checked, f" ({_top(found.reason_counts())})" if found.failing_rows else "")
    return found


def exclude_failing(
    found: WindowFindings, train: pd.DataFrame, holdout: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, Exclusions]:
    """The training and holdout rows without those GX failed (matched on `ROW_ID`), and what was left out."""
    failing = set(found.row_reasons)
    out_train, out_holdout = train[ROW_ID].isin(failing), holdout[ROW_ID].isin(failing)
    left_out = [*train.loc[out_train, ROW_ID], *holdout.loc[out_holdout, ROW_ID]]
    exclusions = Exclusions(train=int(out_train.sum()), holdout=int(out_holdout.sum()),
                            reasons=found.reason_counts(left_out), checked_rows=found.checked_rows,
                            failing_rows=found.failing_rows)
    return train.loc[~out_train], holdout.loc[~out_holdout], exclusions


def _top(reasons: dict[str, int]) -> str:
    shown = ", ".join(f"{reason} ({n} rows)" for reason, n in list(reasons.items())[:_TOP_REASONS])
    more = len(reasons) - _TOP_REASONS
    return f"{shown}, and {more} more reasons" if more > 0 else shown


def _view_name(engine: sa.Engine) -> str:
    """A new view name for one validation: unique per call, short and lower case, in ml-batch's own schema
    (which exists once migrated; the predictions schema may not yet, before a model's first day is published)."""
    return f"{locks.schema_of(engine)}.{VIEW_PREFIX}{uuid.uuid4().hex[:16]}"


def view_lock(view: str) -> sa.ColumnElement[int]:
    """The advisory lock a training's validation view is held under while it lives (its name is schema-qualified:
    the key names no other schema)."""
    return locks.key("training_view", view)


def sweep_leftover_views(engine: sa.Engine, *, dry_run: bool = False) -> list[str]:
    """Drop the validation views of trainings that were killed (their view's lock is free); the views dropped
    (with `dry_run`, the views that would be). A view whose training is alive is never touched, nor one in use
    by a reader for longer than `locks.CLEANUP_LOCK_TIMEOUT` (left for the next sweep), nor one another sweep
    dropped meanwhile. A view that cannot be dropped (another view depends on it, another role owns it) is
    logged and left: the sweep never fails a training or a prune; a database gone is raised as it is."""
    schema = locks.schema_of(engine)
    with engine.connect() as conn:
        names = conn.execute(render("select_training_views"), {
            "schema": schema, "pattern": VIEW_PREFIX.replace("_", r"\_") + "%"}).scalars().all()
    swept = []
    for name in (f"{schema}.{relname}" for relname in names):
        def drop(conn: sa.Connection, view: str = name) -> bool:
            if conn.execute(sa.select(sa.func.to_regclass(view))).scalar_one() is None:
                return False  # another sweep dropped it after it was listed
            if not dry_run:
                conn.execute(render("drop_view", view=view))
            return True

        try:
            dropped = locks.when_free(engine, view_lock(name), drop, what=f"sweep of training view {name}")
        except sa.exc.DBAPIError as exc:
            if is_disconnect(exc):
                raise
            logger.warning("could not drop %s, a validation view left by a killed training: %s (left as it is; "
                           "drop it by hand)", name, first_line(exc))
            continue
        if dropped:
            swept.append(name)
    if swept and not dry_run:
        logger.warning("dropped %d validation view(s) left by killed trainings: %s", len(swept), ", ".join(swept))
    return swept


def _create_view(engine: sa.Engine, spec: Spec, rows: sa.Subquery, event_time: str, view: str) -> None:
    """View `view` of `rows` with the source's own column names (what the suite checks) and `ROW_ID`."""
    select = sa.select(rows.c[spec.source.key], rows.c[event_time].label(spec.source.date_column),
                       *[rows.c[name] for name in spec.feature_names], rows.c[ROW_ID])
    create = render("create_view", view=view).text + "\n" + compiled(select)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(create)
    except sa.exc.ProgrammingError as exc:  # no such table or column: the source, not the database, is wrong
        raise source_error(spec, first_line(exc)) from exc


def _run_gx(engine: sa.Engine, spec: Spec, view: str, suite_file: Path | None) -> tuple[int, Any]:
    """The view's row count and GX's outcome for it (None for a view without rows)."""
    from ml_batch.validation.passes import validate_relation
    from ml_batch.validation.relation import relation_column_types
    from ml_batch.validation.suite import build_suite

    with engine.connect() as conn:
        checked = int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(
            view.rpartition(".")[2], schema=view.rpartition(".")[0] or None))).scalar_one())
    if checked == 0:
        return 0, None
    column_types = relation_column_types(engine, view)
    suite = build_suite(spec, suite_file, check_row_count=False, check_key_unique=False, column_types=column_types)
    url = engine.url.render_as_string(hide_password=False)
    return checked, validate_relation(spec, url, view, suite, columns=column_types, row_key=ROW_ID)


def excluded_text(n_excluded: int | None, exclusions: dict[str, Any] | None) -> str:
    """A version's training rows left out because scoring would quarantine them, as the CLI, the demo and the
    UI say it: 'not checked' (registered before migration 0013), '0', or the count and each reason's count."""
    if n_excluded is None:
        return "not checked"
    reasons = (exclusions or {}).get("reasons") or {}
    return "; ".join([str(n_excluded), *(f"{reason} ({count})" for reason, count in reasons.items())])
