-- The latest prediction per entity.
CREATE OR REPLACE VIEW {view} AS
SELECT DISTINCT ON ({key}) *
FROM {table}
ORDER BY {key}, partition_date DESC
