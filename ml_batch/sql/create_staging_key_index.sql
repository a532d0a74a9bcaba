-- The predictions table's key index (create_predictions_key_index.sql), built on the staging table before
-- the swap: ATTACH PARTITION then adopts it instead of building it under the table's exclusive lock.
CREATE INDEX {index} ON {staging} ({key}, partition_date DESC)
