"""A spec checked against the database: what it names exists, with types the pipeline can use.

Loading a spec checks its fields; only the database knows whether `source.table` exists, whether a feature's
column is there and is a number, or whether the labels' key joins the source's. Without this check such a
mistake surfaces mid-run as PostgreSQL's own words (`UndefinedColumn`, `operator does not exist: text =
bigint`) or as a pandas dtype far from its cause. Each problem is one `SpecProblem`, one line naming the spec
file, the field, the column and what was found, with a fix where there is one.

What is checked, reading no data rows (a `LIMIT 0` of the source and of the labels, and the catalog):
- the source table or query exists (a query runs: its error is the problem) and returns the key, the date
  column (a date or timestamp), `updated_at_column` (a date or timestamp) and every feature: a numeric
  feature needs a numeric or boolean column, a categorical one a text, number, boolean or enum column;
- the source still matches what earlier runs stored: when the model's predictions table exists, the source key
  has the type of its key column (the table was created with the source key's type, and every run's rows are
  copied into it in binary form: a key turned from bigint to text would otherwise fail the COPY with the
  driver's `insufficient data left in message`, taken for a lost connection and retried);
- a categorical feature's declared `categories` are values of its column's type (categories `red`, `blue` on
  a column turned integer would otherwise fail validation with GX's SQL and bind parameters);
- the source still has the column types the version to score was trained on (`model_versions.source_types`,
  recorded by `source_column_types` when a version is trained or registered): a categorical feature without
  declared categories whose column turned from text to integer would otherwise be scored as unseen
  categories ('1', '2'), silently. A change that reads the same values passes (`_Column.reads_as`): any
  number to any number (`integer` -> `bigint`, `real` -> `double precision`, `numeric`: numeric features
  read them as the same floats, and categories are canonical, `3`, `3.0` and `Decimal('3')` all `'3'`), any
  string or enum to any string or enum (`character varying` -> `text`); anything else only to the same base
  type (a `date` turned `timestamp` moves its category text and its day bounds). A column another check
  already names is not named twice. A version without recorded types (before migration 0014): nothing is
  compared;
- the labels table or query exists and returns the key, of the source key's type family (numbers join
  numbers, text joins text, any other type only itself: `text = bigint` has no operator), the label
  column (a number or boolean) and `date_column`/`known_at_column` (dates or timestamps).

`check_spec_db(..., scan_nulls=True)` (what `ml-batch specs check --db` runs) also asks, per feature, whether
its column holds any non-NULL value: one `EXISTS`, which stops at the first such row but reads the whole
source when there is none, which is why runs do not ask it. `require_spec_db` is what `train` and a scoring
run's plan call first: the structural checks only (a few milliseconds), raising one `SpecError`.
`check_spec_db` compares the source with the types the champion was trained on (when there is one);
`require_spec_db` compares nothing, since training on a changed source is the fix, and a scoring plan calls
`require_source_types` with the version it resolved.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from ml_batch.db.catalog import column_type, table_exists
from ml_batch.db.disconnects import is_disconnect
from ml_batch.db.sources import query_text, selectable
from ml_batch.db.sqlfiles import render
from ml_batch.db.tables import CHAMPION, model_aliases, model_versions
from ml_batch.errors import SpecError, first_line
from ml_batch.spec import LabelsSpec, SourceSpec, Spec

_DATE_TYPES = ("date", "timestamp", "timestamptz")
# pg_type.typcategory: N numeric, B boolean, S string, E enum (see the PostgreSQL manual, "pg_type").
_NUMERIC = ("N", "B")
_INTEGERS = ("int2", "int4", "int8")  # pg_type.typname: what a multiclass label may be besides text
_CATEGORICAL = ("S", "N", "B", "E")
_SHOWN_COLUMNS = 12
# What PostgreSQL reads as a boolean (the manual, "Boolean Type"), for categories declared on a boolean column.
_BOOLEAN_TEXT = frozenset({"true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0"})


@dataclass(frozen=True)
class SpecProblem:
    """One way a spec does not fit its database; `str()` is the one line a user reads.

    Attributes:
        origin: the spec file (or `model 'name'` for a spec built in code).
        field: the spec field to change, e.g. `features[1].name`, `labels.key`.
        column: the column concerned, when there is one.
        found: what the database has, phrased to follow `column 'x' ` (or the field when no column).
        fix: how to fix it, when there is a known way.
    """

    origin: str
    field: str
    column: str | None
    found: str
    fix: str | None = None

    def __str__(self) -> str:
        subject = f"column {self.column!r} " if self.column is not None else ""
        return f"{self.origin}: {self.field}: {subject}{self.found}" + (f"; {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class _Column:
    type_name: str  # PostgreSQL's name, e.g. `bigint`, `timestamp with time zone`
    base: str  # pg_type.typname of the type (a domain's base type), e.g. `int8`, `timestamptz`
    category: str  # pg_type.typcategory

    @property
    def family(self) -> str:
        """What the column compares with: numbers with numbers, strings with strings, else its own type."""
        return {"N": "number", "S": "text"}.get(self.category, self.base)

    @property
    def reads_as(self) -> str:
        """What a model reads from the column: numbers, strings (an enum's labels too) or booleans as such,
        any other type as itself: a change of type within one of these reads the same values."""
        return {"N": "number", "S": "text", "E": "text", "B": "boolean"}.get(self.category, self.base)


@dataclass(frozen=True)
class _Relation:
    """What a spec's table or query returns (None: it could not be read, and `problem` says why)."""

    role: str  # "source" or "labels"
    label: str  # how a line names it: `source toy_rows`, `source.query`
    columns: dict[str, _Column] | None
    problem: SpecProblem | None = None


def check_spec_db(engine: sa.Engine, spec: Spec, *, origin: Path | str | None, labels: bool = True,
                  scan_nulls: bool = True, against: str | None = CHAMPION) -> list[SpecProblem]:
    """Every problem of `spec` against the database, in the spec's field order (none: it fits).

    Args:
        engine: the database holding the source and the labels.
        spec: the spec to check.
        origin: the spec's file, named by every line (None: `model 'name'`).
        labels: check the labels too (a scoring run reads only the source).
        scan_nulls: also look for feature columns holding only NULLs (may read the whole source).
        against: the alias of the version whose recorded source types the source must still have (nothing
            is compared when the alias is not set, or for None).
    """
    where = _where(spec, origin)
    trained = None if against is None else _aliased_types(engine, spec.name, against)
    with engine.connect() as conn:
        source = _describe(conn, spec.source, "source", where)
        problems = [*_source_problems(spec, source, where), *_stored_key_problems(conn, spec, source, where)]
        if trained is not None:
            named = {problem.column for problem in problems if problem.column is not None}
            problems += _changed_types(conn, spec, source, *trained, where, named=named)
    if labels:
        with engine.connect() as conn:
            found = _describe(conn, spec.labels, "labels", where)
        problems += _labels_problems(spec, found, source, where)
    if scan_nulls and source.columns is not None:
        with engine.connect() as conn:
            problems += _null_problems(conn, spec, source, where)
    return problems


def require_spec_db(engine: sa.Engine, spec: Spec, *, origin: Path | str | None = None,
                    labels: bool = True) -> None:
    """Raise when `spec` does not fit the database: the structural checks of `check_spec_db`, no data scan.

    Raises:
        SpecError: every problem, one per line, in the spec's field order.
    """
    problems = check_spec_db(engine, spec, origin=origin, labels=labels, scan_nulls=False, against=None)
    _raise(problems)


def require_source_types(engine: sa.Engine, spec: Spec, version: int, recorded: Mapping[str, str] | None, *,
                         origin: Path | str | None = None) -> None:
    """Raise when a source column changed type since `version` was trained (its `recorded` types), in a way
    that reads other values (see the module doc); what a scoring plan calls with the version it will score,
    before any COPY. A version without recorded types (None: before migration 0014) passes.

    Raises:
        SpecError: one line per changed column: the column, its role, the type then and now, and the fix.
    """
    if not recorded:
        return
    where = _where(spec, origin)
    with engine.connect() as conn:
        source = _describe(conn, spec.source, "source", where)
        _raise(_changed_types(conn, spec, source, version, recorded, where, named=()))


def source_column_types(engine: sa.Engine, spec: Spec) -> dict[str, str]:
    """`{column: type}` of the source columns a version of `spec` reads (key, date column, features), with
    PostgreSQL's type names (e.g. `bigint`, `timestamp with time zone`): what a version records when it is
    trained or registered (`model_versions.source_types`), to be compared by `require_source_types`.

    Raises:
        SpecError: the source cannot be read (`require_spec_db` names that first).
    """
    with engine.connect() as conn:
        source = _describe(conn, spec.source, "source", _where(spec, None))
    if source.columns is None:
        raise SpecError(str(source.problem))
    return {column: source.columns[column].type_name for _, column, _ in _read_columns(spec)
            if column in source.columns}


def _where(spec: Spec, origin: Path | str | None) -> str:
    return str(origin) if origin is not None else f"model {spec.name!r}"


def _raise(problems: list[SpecProblem]) -> None:
    if problems:
        raise SpecError("\n".join(str(problem) for problem in problems))


# -- reading what a table or query returns -----------------------------------------------------------------
def _describe(conn: sa.Connection, part: SourceSpec | LabelsSpec, role: str, where: str) -> _Relation:
    if part.table is not None:
        label = f"{role} {part.table}"
        if not table_exists(conn, part.table):
            return _Relation(role, label, None, _missing_table(conn, part.table, role, where))
        frm: sa.FromClause = sa.table(part.table.rpartition(".")[2], schema=part.table.rpartition(".")[0] or None)
    else:
        assert part.query is not None
        label = f"{role}.query"
        frm = sa.text(query_text(part.query)).columns().subquery("q")
    try:
        cursor: sa.CursorResult[Any] = conn.execute(sa.select(sa.literal_column("*")).select_from(frm).limit(0))
    except sa.exc.DBAPIError as exc:
        if is_disconnect(exc):
            raise
        field = f"{role}.table" if part.table is not None else f"{role}.query"
        return _Relation(role, label, None, SpecProblem(where, field, None, f"cannot be read: {first_line(exc)}"))
    # psycopg2's description: each column's name and type oid (`type_code`)
    described = [(str(item[0]), cast(int, item[1])) for item in cursor.cursor.description]
    cursor.close()
    types = _types(conn, {oid for _, oid in described})
    return _Relation(role, label, {name: types[oid] for name, oid in described})


def _types(conn: sa.Connection, oids: Iterable[int]) -> dict[int, _Column]:
    """Each type oid's name, base type and category (`select_type_names`)."""
    return {int(oid): _Column(str(name), str(base), str(category)) for oid, name, base, category in
            conn.execute(render("select_type_names"), {"oids": sorted(set(oids))})}


def _missing_table(conn: sa.Connection, table: str, role: str, where: str) -> SpecProblem:
    schema = table.rpartition(".")[0] or None
    names = list(conn.execute(render("select_relation_names"), {"schema": schema}).scalars())
    close = difflib.get_close_matches(table, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecProblem(where, f"{role}.table", None, f"table {table!r} does not exist{hint}",
                       f"create it, or point {role}.table at an existing table")


def _absent(relation: _Relation, field: str, column: str, where: str) -> SpecProblem:
    """The problem of a column that `relation` does not return, with the closest name it does return."""
    assert relation.columns is not None
    names = list(relation.columns)
    close = difflib.get_close_matches(column, names, n=1)
    shown = ", ".join(names[:_SHOWN_COLUMNS]) + (" ..." if len(names) > _SHOWN_COLUMNS else "")
    found = f"is not in {relation.label}" + (f"; did you mean {close[0]!r}?" if close else "")
    fix = (f"add it to {relation.role}.query's SELECT list" if relation.label.endswith(".query")
           else None)
    return SpecProblem(where, field, column, f"{found} (it has: {shown})", fix)


def _cast_fix(relation: _Relation, column: str, sql_type: str, alternative: str | None = None, *,
              back: bool = False) -> str:
    place = f"{relation.role}.query" if relation.label.endswith(".query") else \
        f"{relation.role}.query (in place of {relation.role}.table)"
    return f"cast it {'back ' if back else ''}in {place}, e.g. `SELECT ..., {column}::{sql_type} AS {column}`" + (
        f", or {alternative}" if alternative else "")


def _date_problem(relation: _Relation, field: str, column: str, where: str) -> SpecProblem | None:
    assert relation.columns is not None
    found = relation.columns.get(column)
    if found is None:
        return _absent(relation, field, column, where)
    if found.base in _DATE_TYPES:
        return None
    return SpecProblem(where, field, column, f"is {found.type_name}: expected a date or timestamp",
                       _cast_fix(relation, column, "timestamptz"))


# -- the source ---------------------------------------------------------------------------------------------
def _source_problems(spec: Spec, source: _Relation, where: str) -> list[SpecProblem]:
    if source.columns is None:
        assert source.problem is not None
        return [source.problem]
    columns = source.columns
    problems: list[SpecProblem] = []
    if spec.source.key not in columns:
        problems.append(_absent(source, "source.key", spec.source.key, where))
    for field in ("date_column", "updated_at_column"):
        column = getattr(spec.source, field)
        problem = None if column is None else _date_problem(source, f"source.{field}", column, where)
        problems += [problem] if problem else []
    for index, feature in enumerate(spec.features):
        found = columns.get(feature.name)
        if found is None:
            problems.append(_absent(source, f"features[{index}].name", feature.name, where))
        elif feature.type == "numeric" and found.category not in _NUMERIC:
            alternative = "declare the feature categorical" if found.category in _CATEGORICAL else None
            problems.append(SpecProblem(where, f"features[{index}].type", feature.name,
                                        f"is {found.type_name}, but the feature is numeric (expected a number "
                                        "or boolean column)",
                                        _cast_fix(source, feature.name, "double precision", alternative)))
        elif feature.type == "categorical" and found.category not in _CATEGORICAL:
            problems.append(SpecProblem(where, f"features[{index}].type", feature.name,
                                        f"is {found.type_name}, but the feature is categorical (expected a "
                                        "text, integer, boolean or enum column)",
                                        _cast_fix(source, feature.name, "text")))
        elif feature.type == "categorical" and feature.categories:
            problems += _categories_problem(source, index, feature.name, feature.categories, where)
    return problems


def _categories_problem(source: _Relation, index: int, column: str, categories: list[str],
                        where: str) -> list[SpecProblem]:
    """The declared categories that are no value of the column's type (none for a text or enum column)."""
    assert source.columns is not None
    found = source.columns[column]
    if found.category == "N":
        foreign = [value for value in categories if not _is_number(value)]
    elif found.category == "B":
        foreign = [value for value in categories if value.strip().lower() not in _BOOLEAN_TEXT]
    else:
        return []
    if not foreign:
        return []
    return [SpecProblem(where, f"features[{index}].categories", column,
                        f"is {found.type_name} in {source.label}, but the feature's categories are text "
                        f"({', '.join(map(repr, foreign[:3]))}{' ...' if len(foreign) > 3 else ''} cannot be "
                        f"{found.type_name} values): the column changed type",
                        _cast_fix(source, column, "text", "retrain on the new values and update the categories"))]


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _stored_key_problems(conn: sa.Connection, spec: Spec, source: _Relation, where: str) -> list[SpecProblem]:
    """The source key against the key column of the model's predictions table, when the table exists: the
    table was created with the source key's type, and runs copy their rows into it in binary form."""
    key = spec.source.key
    found = None if source.columns is None else source.columns.get(key)
    table = spec.predictions.table
    if found is None or not table_exists(conn, table):
        return []
    stored = column_type(conn, table, key)
    if stored is None:
        return [SpecProblem(where, "source.key", key, f"is not a column of predictions table {table} (it was "
                            "created for another key)", "rename or drop that table, or point "
                            "predictions.table at a new one")]
    if stored == found.type_name:
        return []
    return [SpecProblem(where, "source.key", key,
                        f"is {found.type_name} in {source.label}, but predictions table {table} stores it as "
                        f"{stored}: the source key changed type from {stored} to {found.type_name}",
                        _cast_fix(source, key, stored, f"rename or drop {table} to start it again with "
                                                       f"{found.type_name} keys"))]


def _read_columns(spec: Spec) -> list[tuple[str, str, str]]:
    """(field, column, role) of each source column a version reads: the key, the date column, the features."""
    found = {spec.source.key: ("source.key", "key")}
    if spec.source.date_column is not None:
        found.setdefault(spec.source.date_column, ("source.date_column", "date"))
    for index, feature in enumerate(spec.features):
        found.setdefault(feature.name, (f"features[{index}].name", "feature"))
    return [(field, column, role) for column, (field, role) in found.items()]


def _aliased_types(engine: sa.Engine, model: str, alias: str) -> tuple[int, Mapping[str, str]] | None:
    """The version `alias` points at and its recorded source types; None when the alias is not set or the
    version recorded none."""
    # Read here, not through ml_batch.model.registry: this module is of the db layer, below the registry.
    query = (sa.select(model_versions.c.version, model_versions.c.source_types)
             .join(model_aliases, sa.and_(model_aliases.c.model_name == model_versions.c.model_name,
                                          model_aliases.c.version == model_versions.c.version))
             .where(model_aliases.c.model_name == model, model_aliases.c.alias == alias))
    with engine.connect() as conn:
        row = conn.execute(query).one_or_none()
    if row is None or not row.source_types:
        return None
    return int(row.version), row.source_types


def _changed_types(conn: sa.Connection, spec: Spec, source: _Relation, version: int, recorded: Mapping[str, str],
                   where: str, *, named: Collection[str]) -> list[SpecProblem]:
    """The columns `version` reads whose type changed since it recorded `recorded`, to one that reads other
    values (`_Column.reads_as`); a column in `named` (another problem names it already) is left out."""
    if source.columns is None:
        return []
    columns = source.columns
    changed = [(field, column, role, recorded[column], columns[column]) for field, column, role in _read_columns(spec)
               if column in recorded and column in columns and column not in named
               and recorded[column] != columns[column].type_name]
    if not changed:
        return []
    then = _named_types(conn, [old for _, _, _, old, _ in changed])
    problems = []
    for field, column, role, old, now in changed:
        was = then.get(old)
        if was is not None and was.reads_as == now.reads_as:
            continue
        problems.append(SpecProblem(
            where, field, column,
            f"(a {role}) is {now.type_name} in {source.label}, but {spec.name!r} version {version} was trained on "
            f"it as {old}: the column changed type from {old} to {now.type_name}",
            _cast_fix(source, column, old, "retrain on the new type", back=True)))
    return problems


def _named_types(conn: sa.Connection, names: list[str]) -> dict[str, _Column]:
    """Type names as `format_type` wrote them, read again as types (a name that is no type now is left out)."""
    oids = {str(name): int(oid) for name, oid in conn.execute(render("select_type_oids"), {"names": sorted(set(names))})
            if oid is not None}
    types = _types(conn, oids.values())
    return {name: types[oid] for name, oid in oids.items()}


def _null_problems(conn: sa.Connection, spec: Spec, source: _Relation, where: str) -> list[SpecProblem]:
    """Features whose column holds only NULLs (nothing to learn from; pandas reads them as `object`)."""
    assert source.columns is not None
    present = [name for name in spec.feature_names if name in source.columns]
    if not present:
        return []
    src = selectable(spec.source, present, "src")
    if not conn.execute(sa.select(sa.exists(sa.select(sa.literal(1)).select_from(src)))).scalar_one():
        return []  # an empty source: nothing loaded yet is not a mistake of the spec
    problems = []
    for index, feature in enumerate(spec.features):
        if feature.name not in present:
            continue
        exists = sa.exists(sa.select(sa.literal(1)).select_from(src).where(src.c[feature.name].is_not(None)))
        if not conn.execute(sa.select(exists)).scalar_one():
            problems.append(SpecProblem(where, f"features[{index}].name", feature.name,
                                        f"holds only NULLs in {source.label}: nothing to learn from",
                                        "load its values, or remove the feature"))
    return problems


# -- the labels ---------------------------------------------------------------------------------------------
def _label_type_problems(spec: Spec, labels: _Relation, label: _Column, where: str) -> list[SpecProblem]:
    """A binary label is a number or boolean, a regression label a number, a multiclass label (a class name)
    text or an integer: a float class would be a class per rounding."""
    column = spec.labels.column
    if spec.model.task == "multiclass":
        if label.category == "S" or label.base in _INTEGERS:
            return []
        return [SpecProblem(where, "labels.column", column, f"is {label.type_name}: expected text or an integer "
                            "(a multiclass label names a class)", _cast_fix(labels, column, "text"))]
    wanted = "a number or boolean" if spec.model.task == "binary" else "a number"
    if label.category in (_NUMERIC if spec.model.task == "binary" else ("N",)):
        return []
    return [SpecProblem(where, "labels.column", column, f"is {label.type_name}: expected {wanted}",
                        _cast_fix(labels, column, "double precision"))]


def _labels_problems(spec: Spec, labels: _Relation, source: _Relation, where: str) -> list[SpecProblem]:
    if labels.columns is None:
        assert labels.problem is not None
        return [labels.problem]
    columns, part = labels.columns, spec.labels
    problems: list[SpecProblem] = []
    key = columns.get(part.key)
    source_key = None if source.columns is None else source.columns.get(spec.source.key)
    if key is None:
        problems.append(_absent(labels, "labels.key", part.key, where))
    elif source_key is not None and key.family != source_key.family:
        problems.append(SpecProblem(
            where, "labels.key", part.key,
            f"is {key.type_name} but source key {spec.source.key!r} is {source_key.type_name}: they cannot be "
            "compared", _cast_fix(labels, part.key, source_key.type_name, "cast the source key in source.query")))
    label = columns.get(part.column)
    if label is None:
        problems.append(_absent(labels, "labels.column", part.column, where))
    else:
        problems += _label_type_problems(spec, labels, label, where)
    for field in ("date_column", "known_at_column"):
        column = getattr(part, field)
        problem = None if column is None else _date_problem(labels, f"labels.{field}", column, where)
        problems += [problem] if problem else []
    return problems
