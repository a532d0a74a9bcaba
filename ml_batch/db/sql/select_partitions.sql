-- The partitions of a (partitioned) table, by name: a predictions table's days are `<table>_pYYYYMMDD`.
SELECT c.relname
FROM pg_inherits AS i
JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(:table)
ORDER BY c.relname
