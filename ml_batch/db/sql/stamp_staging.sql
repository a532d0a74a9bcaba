-- The columns every row of a run shares, added after the rows are written, as PostgreSQL "fast defaults"
-- (PostgreSQL >= 11): a non-volatile default of a new column is evaluated once and kept in the catalog
-- (pg_attribute.attmissingval) for the rows that already exist, so the shards COPY 3 columns instead of
-- 9 and a day's partition is ~60% smaller, while every row reads back with its value. The values come
-- from transaction-local settings (set by the caller with set_config, as bound parameters), since DDL
-- cannot take parameters; scored_at is the publishing transaction's start time.
ALTER TABLE {staging}
    ADD COLUMN partition_date   date         NOT NULL DEFAULT DATE '{day}',
    ADD COLUMN model_name       text         NOT NULL DEFAULT current_setting('ml_batch.model_name'),
    ADD COLUMN model_version    integer      NOT NULL DEFAULT current_setting('ml_batch.model_version')::integer,
    ADD COLUMN artifact_sha256  char(64)     NOT NULL DEFAULT current_setting('ml_batch.artifact_sha256'),
    ADD COLUMN run_id           text         NOT NULL DEFAULT current_setting('ml_batch.run_id'),
    ADD COLUMN scored_at        timestamptz  NOT NULL DEFAULT now()
