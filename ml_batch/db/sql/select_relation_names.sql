-- The tables, views and foreign tables of a schema (the session's search path when :schema is NULL).
SELECT CASE WHEN :schema IS NULL THEN c.relname ELSE n.nspname || '.' || c.relname END
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND (n.nspname = :schema OR (:schema IS NULL AND n.nspname = ANY(current_schemas(false))))
ORDER BY 1
