"""SQL statements kept as files in `ml_batch/sql/` (one statement per file, verb-first names).

Placeholders in braces are filled by `render` with *quoted identifiers* or *dates* only; every other value
is a bound parameter (`:name`). Identifiers were validated by the spec loader and are quoted here again,
so nothing from a spec is ever pasted raw into SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from importlib import resources

import sqlalchemy as sa

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# key_type comes from PostgreSQL's own format_type() of the source's key column, e.g. "bigint",
# "character varying(20)", "uuid", "timestamp with time zone".
_TYPE_RE = re.compile(r"^[a-z][a-z0-9 _]*(\(\d+(,\d+)?\))?(\[\])?$")


def quote_ident(name: str) -> str:
    """Quote one identifier (`schema.table` is split and both parts quoted)."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(_IDENT_RE.match(p) for p in parts):
        raise ValueError(f"{name!r} is not a valid identifier: expected [A-Za-z_][A-Za-z0-9_]* (optionally schema.)")
    return ".".join('"' + p + '"' for p in parts)


def render_regclass(name: str) -> str:
    """`schema.table` quoted the way to_regclass() expects (validated like any identifier)."""
    quote_ident(name)
    return ".".join(f'"{part}"' for part in name.split("."))


@cache
def _template(name: str) -> str:
    return (resources.files("ml_batch.db") / "sql" / f"{name}.sql").read_text()


def render(name: str, *, dates: dict[str, dt.date] | None = None, key_type: str | None = None,
           **identifiers: str) -> sa.TextClause:
    """The statement in `ml_batch/sql/<name>.sql` with identifiers quoted and dates as ISO literals."""
    values: dict[str, str] = {key: quote_ident(value) for key, value in identifiers.items()}
    for key, value in (dates or {}).items():
        if not isinstance(value, dt.date):
            raise TypeError(f"{key}={value!r} is not a date")
        values[key] = value.isoformat()
    if key_type is not None:
        if not _TYPE_RE.match(key_type):
            raise ValueError(f"key type {key_type!r} is not a plain PostgreSQL type name")
        values["key_type"] = key_type
    text = "\n".join(line for line in _template(name).splitlines() if not line.lstrip().startswith("--"))
    return sa.text(text.format(**values))
