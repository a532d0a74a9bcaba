-- A run's snapshot of its day, read from the source once at plan time (the query built by ml_batch.sources
-- is appended after this line). UNLOGGED: nothing to WAL-log for rows a re-plan reads again anyway.
CREATE UNLOGGED TABLE {table} AS
