-- The predictions table of a multiclass model: the columns of create_predictions_table.sql, except that the
-- predicted label is a class name (text) and every row carries every class's probability (class_scores:
-- {class: probability}, summing to 1); score is the probability of predicted_label.
CREATE TABLE IF NOT EXISTS {table} (
    {key}            {key_type}        NOT NULL,
    partition_date   date              NOT NULL,
    score            double precision  NOT NULL,
    predicted_label  text,
    class_scores     jsonb             NOT NULL,
    model_name       text              NOT NULL,
    model_version    integer           NOT NULL,
    artifact_sha256  char(64)          NOT NULL,
    run_id           text              NOT NULL,
    scored_at        timestamptz       NOT NULL,
    PRIMARY KEY (partition_date, {key})
) PARTITION BY RANGE (partition_date)
