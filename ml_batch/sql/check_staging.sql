-- The audit of write-audit-publish: what the staging table holds, before anything is published.
-- Keys are unique by the primary key added just before this check.
SELECT count(*)                                                       AS row_count,
       count(*) FILTER (WHERE score IS NULL OR score = 'NaN'::float8) AS bad_scores,
       count(*) FILTER (WHERE partition_date <> :day)                 AS wrong_day,
       count(*) FILTER (WHERE model_version <> :version)              AS wrong_version,
       avg(score)                                                     AS score_mean
FROM {staging}
