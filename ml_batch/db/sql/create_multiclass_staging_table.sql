-- A multiclass run's staging table: create_staging_table.sql's columns with a text label and every class's
-- probability (the types of create_multiclass_predictions_table.sql: ATTACH PARTITION needs the same).
CREATE TABLE {staging} (
    {key}            {key_type}        NOT NULL,
    score            double precision  NOT NULL,
    predicted_label  text,
    class_scores     jsonb             NOT NULL
)
