-- Rows read from a table so far by sequential and index scans, as the statistics system has them.
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relid = to_regclass(:table)
