ALTER TABLE {partition} DROP CONSTRAINT {constraint}
