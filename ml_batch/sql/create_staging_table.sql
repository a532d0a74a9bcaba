-- A run's staging table: shaped like one partition of the predictions table, filled by the shards.
-- No primary key yet: COPY into a heap without an index is ~40% faster; publish adds the key (which also
-- proves there is no duplicate) before the audit.
CREATE TABLE {staging} (
    LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS
)
