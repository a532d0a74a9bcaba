-- Read access to one column of a table (the others stay unreadable).
GRANT SELECT ({column}) ON {table} TO {role}
