-- Lets ATTACH PARTITION skip its validation scan: the constraint already proves the bound.
ALTER TABLE {staging} ADD CONSTRAINT {constraint} CHECK (partition_date >= DATE '{day}' AND partition_date < DATE '{next_day}')
