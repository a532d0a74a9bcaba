-- The predictions table's key index (create_predictions_key_index.sql), built on the staging table before
-- the swap: ATTACH PARTITION then adopts it instead of building it under the table's exclusive lock.
-- Unnamed on purpose: PostgreSQL picks a free name, and the day's partition may still hold the index of an
-- earlier publish under the same run id (a cleared and reprocessed DAG run), whose name a fixed one would hit.
CREATE INDEX ON {staging} ({key}, partition_date DESC)
