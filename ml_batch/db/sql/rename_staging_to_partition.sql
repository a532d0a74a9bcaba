ALTER TABLE {staging} RENAME TO {partition_name}
