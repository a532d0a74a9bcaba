-- Route a run's day into the pieces of its snapshot (the query, with its shard column, is appended).
INSERT INTO {table}
