-- The multiclass part of the staging audit (check_staging.sql checks the score column of every model).
-- Per row: its class_scores must hold exactly the :classes (a jsonb object's keys are unique, so as many keys
-- as classes, all among them, is the class set), each a number in [0, 1] (the shard writes NaN and
-- +-Infinity as JSON strings, since JSON numbers cannot hold them), summing to 1 within :tolerance;
-- predicted_label must be a class of maximal probability (ties: any of them) and score its probability.
-- A row is counted once, for the first of these it fails, in that order.
SELECT count(*) FILTER (WHERE NOT c.class_set)                                             AS wrong_classes,
       count(*) FILTER (WHERE c.class_set AND c.bad_values > 0)                            AS bad_probabilities,
       count(*) FILTER (WHERE c.class_set AND c.bad_values = 0
                          AND abs(c.total - 1) > :tolerance)                               AS bad_sums,
       count(*) FILTER (WHERE c.class_set AND c.bad_values = 0 AND abs(c.total - 1) <= :tolerance
                          AND (c.label_p IS NULL OR c.label_p < c.top))                    AS not_argmax,
       count(*) FILTER (WHERE c.class_set AND c.bad_values = 0 AND abs(c.total - 1) <= :tolerance
                          AND c.label_p >= c.top AND s.score IS DISTINCT FROM c.label_p)   AS wrong_score
FROM {staging} AS s
CROSS JOIN LATERAL (
    SELECT count(*) = cardinality(CAST(:classes AS text[]))
               AND count(*) FILTER (WHERE v.key = ANY(CAST(:classes AS text[]))) = count(*) AS class_set,
           count(*) FILTER (WHERE v.p IS NULL OR v.p < 0 OR v.p > 1)                       AS bad_values,
           sum(v.p)                                                                        AS total,
           max(v.p)                                                                        AS top,
           max(v.p) FILTER (WHERE v.key = s.predicted_label)                               AS label_p
    FROM (
        SELECT e.key, CASE WHEN jsonb_typeof(e.value) = 'number' THEN CAST(e.value AS float8) END AS p
        FROM jsonb_each(CASE WHEN jsonb_typeof(s.class_scores) = 'object' THEN s.class_scores
                             ELSE jsonb_build_object() END) AS e
    ) AS v
) AS c
