-- The audit of write-audit-publish: what the staging table holds, before anything is published.
-- Keys are unique by the primary key added just before this check. In PostgreSQL NaN sorts above every
-- number and equals itself, so the range test leaves NaN (and +-Infinity) to their own counts.
SELECT count(*)                                                                  AS row_count,
       count(*) FILTER (WHERE score IS NULL OR score = 'NaN'::float8)            AS bad_scores,
       count(*) FILTER (WHERE score = 'Infinity'::float8)                        AS positive_infinite,
       count(*) FILTER (WHERE score = '-Infinity'::float8)                       AS negative_infinite,
       count(*) FILTER (WHERE score > '-Infinity'::float8 AND score < 'Infinity'::float8
                          AND (score < 0 OR score > 1))                          AS outside_unit,
       count(*) FILTER (WHERE partition_date <> :day)                            AS wrong_day,
       count(*) FILTER (WHERE model_version <> :version)                         AS wrong_version,
       avg(score)                                                                AS score_mean
FROM {staging}
