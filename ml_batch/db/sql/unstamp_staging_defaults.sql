-- The stamped values stay (in attmissingval); only the defaults go, so the partition has none, like its parent.
ALTER TABLE {staging}
    ALTER COLUMN partition_date DROP DEFAULT,
    ALTER COLUMN model_name DROP DEFAULT,
    ALTER COLUMN model_version DROP DEFAULT,
    ALTER COLUMN artifact_sha256 DROP DEFAULT,
    ALTER COLUMN run_id DROP DEFAULT,
    ALTER COLUMN scored_at DROP DEFAULT
