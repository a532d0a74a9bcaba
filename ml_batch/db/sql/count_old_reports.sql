-- Rows of the reports table (migration 0009) of a model older than the retention cutoff.
SELECT count(*) FROM {table} WHERE model_name = :model AND partition_date < :cutoff
