-- A run's staging table: shaped like one partition of the predictions table, filled by the shards.
CREATE TABLE {staging} (
    LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (partition_date, {key})
)
