-- Transaction-local settings read by stamp_staging.sql (is_local = true: gone at commit or rollback).
SELECT set_config('ml_batch.model_name', :model_name, true),
       set_config('ml_batch.model_version', :model_version, true),
       set_config('ml_batch.artifact_sha256', :artifact_sha256, true),
       set_config('ml_batch.run_id', :run_id, true)
