-- Planner statistics of a day's rows, gathered on the staging table inside the publishing transaction:
-- they stay with the table when it becomes the partition, and no step after the swap is left to fail.
ANALYZE {table}
