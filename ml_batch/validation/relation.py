"""What the database says about the rows to validate, for building their suite: column types, a unique key.

Plain SQLAlchemy, no Great Expectations: both answers are read before GX runs.
"""

from __future__ import annotations

import sqlalchemy as sa

from ml_batch.spec import Spec


def relation_column_types(engine: sa.Engine, relation: str) -> dict[str, str]:
    """Column name -> type as GX renders it for PostgreSQL (`DOUBLE PRECISION`, `NUMERIC(12, 2)`, ...)."""
    schema, _, name = relation.rpartition(".")
    columns = sa.inspect(engine).get_columns(name, schema=schema or None)
    return {column["name"]: str(column["type"]) for column in columns}


def key_is_unique(engine: sa.Engine, spec: Spec) -> bool:
    """Whether the source table's own unique index (or primary key) on the key guarantees unique keys.

    Then the key's uniqueness cannot fail and GX need not check it (for 1,000,000 rows its GROUP BY, or
    even a COUNT(DISTINCT), is a third of the validation's time in PostgreSQL). A `source.query` is
    always checked.
    """
    if spec.source.table is None:
        return False
    from ml_batch.db.sqlfiles import render, render_regclass

    with engine.connect() as conn:
        return bool(conn.execute(render("select_key_is_unique"),
                                 {"table": render_regclass(spec.source.table), "key": spec.source.key}).scalar_one())
