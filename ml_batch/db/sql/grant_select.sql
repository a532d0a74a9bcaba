-- Read access to a whole table or view.
GRANT SELECT ON {table} TO {role}
