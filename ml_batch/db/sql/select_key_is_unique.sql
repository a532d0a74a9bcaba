-- True when a valid unique index (or primary key) on exactly the key column, without a predicate or an
-- expression, guarantees the key never repeats in the table: then there is nothing for GX to check.
SELECT EXISTS (
    SELECT 1
    FROM pg_index AS i
    JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = to_regclass(:table)
      AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
      AND i.indpred IS NULL AND i.indexprs IS NULL
      AND a.attname = :key
)
