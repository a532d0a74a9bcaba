-- Fails with a unique violation when a key was staged twice: the audit reports it as duplicate keys.
ALTER TABLE {staging} ADD PRIMARY KEY (partition_date, {key})
