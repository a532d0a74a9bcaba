-- Validation views of trainings (`ml_batch_train_*`) in ml-batch's own schema: live ones and those a killed
-- training left (`ml_batch.model.validity.sweep_leftover_views` tells them apart by their advisory lock).
SELECT c.relname
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = :schema
  AND c.relkind = 'v'
  AND c.relname LIKE :pattern
ORDER BY c.relname
