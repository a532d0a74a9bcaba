-- The analysts' predictions table of one model: one row per entity per day, a partition per day.
CREATE TABLE IF NOT EXISTS {table} (
    {key}            {key_type}        NOT NULL,
    partition_date   date              NOT NULL,
    score            double precision  NOT NULL,
    predicted_label  smallint,
    model_name       text              NOT NULL,
    model_version    integer           NOT NULL,
    artifact_sha256  char(64)          NOT NULL,
    run_id           text              NOT NULL,
    scored_at        timestamptz       NOT NULL,
    PRIMARY KEY (partition_date, {key})
) PARTITION BY RANGE (partition_date)
