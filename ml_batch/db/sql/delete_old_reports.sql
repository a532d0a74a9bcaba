-- Delete the reports (drift HTML, GX results) of a model older than the retention cutoff.
DELETE FROM {table} WHERE model_name = :model AND partition_date < :cutoff
