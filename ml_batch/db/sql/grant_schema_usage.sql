-- Lets a role look up objects in a schema (it grants no access to any table in it).
GRANT USAGE ON SCHEMA {schema} TO {role}
