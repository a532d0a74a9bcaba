-- True when the role exists.
SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :role)
