-- Tables and views a run may leave next to a predictions table (staging `<table>__s_*`, GX views
-- `ml_batch_validate_*`, day snapshots `ml_batch_day_*`; a snapshot's pieces go with their parent).
SELECT c.relname, c.relkind
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = coalesce(:schema, current_schema())
  AND c.relkind IN ('r', 'p', 'v')
  AND NOT c.relispartition
  AND (c.relname LIKE :staging_pattern OR c.relname LIKE 'ml\_batch\_validate\_%' OR c.relname LIKE 'ml\_batch\_day\_%')
ORDER BY c.relname
