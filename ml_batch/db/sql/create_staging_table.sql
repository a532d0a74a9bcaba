-- A run's staging table: only what differs from row to row. The shards COPY (key, score, label) into it;
-- publish adds the columns every row of the run shares (stamp_staging.sql) and the primary key.
-- No primary key yet: COPY into a heap without an index is ~40% faster, and the key added at publish
-- also proves there is no duplicate.
CREATE TABLE {staging} (
    {key}            {key_type}        NOT NULL,
    score            double precision  NOT NULL,
    predicted_label  smallint
)
