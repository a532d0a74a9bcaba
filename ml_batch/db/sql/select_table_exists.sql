-- True when the (quoted, possibly schema-qualified) table exists; to_regclass takes no lock.
SELECT to_regclass(:table) IS NOT NULL
