-- Drop (a table of) a run's day snapshot. CASCADE: what depends on it is the run's own GX validation views
-- over its pieces (left by a shard killed while GX ran); the snapshot is the run's, nothing else builds on it.
DROP TABLE IF EXISTS {table} CASCADE
