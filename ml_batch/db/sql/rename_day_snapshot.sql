-- The unsplit snapshot of a one-shard run becomes that shard's piece (catalog only: no row is copied).
ALTER TABLE {table} RENAME TO {piece_name}
