-- "What did we predict for this customer over time?": entity lookups across days.
CREATE INDEX IF NOT EXISTS {index} ON {table} ({key}, partition_date DESC)
