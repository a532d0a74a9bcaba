-- Each type's PostgreSQL name, the name and category (pg_type.typcategory: N numeric, S string, B boolean,
-- D date/time, ...) of the type it is, a domain's base type, given the type oids a statement returned.
SELECT t.oid, format_type(t.oid, NULL), b.typname, b.typcategory
FROM pg_type AS t
JOIN pg_type AS b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE t.oid = ANY(:oids)
