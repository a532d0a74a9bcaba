-- The oid of each type name as format_type() writes it (e.g. `bigint`, `timestamp with time zone`), NULL for
-- a name that is no type now (a dropped enum): the types a version recorded, read again as types.
SELECT name, to_regtype(name)::oid
FROM unnest(CAST(:names AS text[])) AS name
