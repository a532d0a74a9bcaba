"""Labels joined to the rows they label: the one join that training, the holdout, realized performance
(published and shadow) and shadow comparisons use.

Which label belongs to which row (all days are UTC days, the source's own rule):
- **one event per key** (no `labels.date_column`): the label of key k belongs to the one source row of k.
  That the key identifies one event is checked, not assumed: a labelled key that the source has on several
  days fails the join, since its label would land on every day's row;
- **recurring entities** (`labels.date_column` set): the label of (k, day D) belongs to the source row of k
  on day D, where D is the UTC day of `date_column` (`D 00:00 <= date_column < D+1 00:00`).

A label is *known* at the end of day A when it is not null and, with `labels.known_at_column`, was recorded
before A+1 00:00 UTC. Several known label rows for one row are an error as well, never deduplicated: which one
is right is the data owner's call. Every error names up to five offending keys and days and the spec field
that fixes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ml_batch.db.sources import day_bounds, selectable, utc_day
from ml_batch.errors import LabelJoinError
from ml_batch.spec import LabelsSpec, SourceSpec, Spec

LABEL = "_label"
_LABEL_DAY = "_label_day"
_SHOWN = 5


def known_labels(spec: Spec, as_of: dt.date) -> sa.Subquery:
    """The labels known at the end of `as_of`: key, label and (with `date_column`) the label's UTC day."""
    labels = spec.labels
    columns = [labels.key, labels.column, *(c for c in (labels.known_at_column, labels.date_column) if c)]
    lab = selectable(labels, columns, "lab")
    conditions: list[sa.ColumnElement[bool]] = [lab.c[labels.column].is_not(None)]
    if labels.known_at_column:
        conditions.append(lab.c[labels.known_at_column] < day_bounds(as_of)[1])
    outputs: list[sa.ColumnElement[Any]] = [lab.c[labels.key], lab.c[labels.column].label(LABEL)]
    if labels.date_column:
        outputs.append(utc_day(lab.c[labels.date_column]).label(_LABEL_DAY))
    return sa.select(*outputs).where(*conditions).subquery("known_labels")


def join_labels(spec: Spec, rows: sa.Subquery, *, key: str, day: str, as_of: dt.date,
                text_keys: bool = False) -> sa.Select:
    """`rows` (with an entity key column `key` and a UTC event-day column `day`) with their known label as
    `_label`; rows without one are left out. Call `check_one_label_per_row` first: it proves this join
    returns each row at most once."""
    lab = known_labels(spec, as_of)
    return sa.select(rows, lab.c[LABEL]).select_from(rows.join(lab, _matches(spec, rows, lab, key, day, text_keys)))


def check_one_label_per_row(conn: sa.Connection, spec: Spec, rows: sa.Subquery, *, key: str, day: str,
                            as_of: dt.date, what: str, text_keys: bool = False) -> None:
    """Raise `LabelJoinError` when `join_labels` would return a row of `rows` more than once, or when a key
    that should identify one event is on several days of the source (its one label would be every day's)."""
    joined = join_labels(spec, rows, key=key, day=day, as_of=as_of, text_keys=text_keys).subquery("joined")
    if not spec.labels.date_column:  # the cause to name first: the other failure follows from it
        _check_one_day_per_key(conn, spec, sa.select(joined.c[key]), what, text_keys)
    repeated = conn.execute(
        sa.select(joined.c[key], joined.c[day], sa.func.count().label("n"))
        .group_by(joined.c[key], joined.c[day]).having(sa.func.count() > 1)
        .order_by(joined.c[key], joined.c[day]).limit(_SHOWN + 1)
    ).all()
    if repeated:
        per = "entity and day (key, labels.date_column)" if spec.labels.date_column else "key"
        shown = ", ".join(f"key {k!s} on {d} ({n} label rows)" for k, d, n in repeated[:_SHOWN])
        raise LabelJoinError(
            f"model {spec.name!r} {what}: labels {_name(spec.labels)} have several known rows for one {per}: "
            f"{shown}{' ...' if len(repeated) > _SHOWN else ''}; each needs exactly one label row (duplicates "
            "are never dropped silently: fix the labels source"
            + ("" if spec.labels.date_column else ", or set labels.date_column if labels are per entity and day")
            + ")"
        )


def _check_one_day_per_key(conn: sa.Connection, spec: Spec, labelled_keys: sa.Select, what: str,
                           text_keys: bool) -> None:
    """Without `labels.date_column`: no labelled key may be on several UTC days of the source."""
    src = selectable(spec.source, [spec.source.key, spec.source.date_column], "src")
    src_key: sa.ColumnElement[Any] = sa.cast(src.c[spec.source.key], sa.Text) if text_keys else src.c[spec.source.key]
    source_day = utc_day(src.c[spec.source.date_column])
    several = conn.execute(
        sa.select(src_key.label("k"), sa.func.array_agg(sa.distinct(source_day)).label("days"))
        .where(src_key.in_(labelled_keys))
        .group_by(src_key).having(sa.func.count(sa.distinct(source_day)) > 1)
        .order_by(src_key).limit(_SHOWN + 1)
    ).all()
    if several:
        shown = ", ".join(f"key {k!s} on {_days(days)}" for k, days in several[:_SHOWN])
        raise LabelJoinError(
            f"model {spec.name!r} {what}: labelled keys are on several days of source {_name(spec.source)}: "
            f"{shown}{' ...' if len(several) > _SHOWN else ''}. Without labels.date_column a key must identify "
            "one event, and its label would join every day's row (another day's outcome); set labels.date_column "
            "to the labels' event day or timestamp column"
        )


def _matches(spec: Spec, rows: sa.Subquery, lab: sa.Subquery, key: str, day: str,
             text_keys: bool) -> sa.ColumnElement[bool]:
    # Shadow rows keep keys as text (one table for every model): compare the label key as text there.
    lab_key = sa.cast(lab.c[spec.labels.key], sa.Text) if text_keys else lab.c[spec.labels.key]
    conditions = [lab_key == rows.c[key]]
    if spec.labels.date_column:
        conditions.append(lab.c[_LABEL_DAY] == rows.c[day])
    return sa.and_(*conditions)


def _name(part: SourceSpec | LabelsSpec) -> str:
    return part.table or "(query)"


def _days(days: list[dt.date]) -> str:
    ordered = sorted(days)
    listed = ", ".join(str(d) for d in ordered[:3])
    return f"{listed}{' ...' if len(ordered) > 3 else ''} ({len(ordered)} days)"
