"""Alembic environment: runs on the connection and schema that `ml_batch.db.migrate` hands over."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

# The schema must exist before alembic can keep its version table in it.
connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
context.configure(
    connection=connection,
    version_table_schema=schema,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
