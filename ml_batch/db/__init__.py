"""Database access: the embedded server, engines, table definitions and migrations."""
