-- PostgreSQL's name of a column's type (e.g. `bigint`, `character varying(20)`), or no row.
SELECT format_type(a.atttypid, a.atttypmod)
FROM pg_attribute AS a
WHERE a.attrelid = to_regclass(:table) AND a.attname = :column AND a.attnum > 0 AND NOT a.attisdropped
