-- The split snapshot of a run's day: the columns (and types) of the day's rows plus each row's shard number,
-- LIST-partitioned by it so that each shard reads its own piece only. The parent holds no rows.
CREATE TABLE {table} (LIKE {columns_of}, {shard_column} integer NOT NULL) PARTITION BY LIST ({shard_column})
