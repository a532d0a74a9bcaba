"""Validation of a day's rows with Great Expectations, inside PostgreSQL, before scoring."""
