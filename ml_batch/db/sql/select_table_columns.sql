-- The columns of a table, in order (the table as to_regclass takes it).
SELECT attname FROM pg_attribute
WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped
ORDER BY attnum
