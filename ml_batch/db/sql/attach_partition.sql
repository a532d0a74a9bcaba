ALTER TABLE {table} ATTACH PARTITION {partition} FOR VALUES FROM ('{day}') TO ('{next_day}')
