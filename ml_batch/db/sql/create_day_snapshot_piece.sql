-- One shard's piece of a run's day snapshot (UNLOGGED, like the unsplit snapshot).
CREATE UNLOGGED TABLE {piece} PARTITION OF {table} FOR VALUES IN (:shard)
