-- Take every table-level privilege back (column grants follow, so only the listed columns stay readable).
REVOKE ALL ON {table} FROM {role}
