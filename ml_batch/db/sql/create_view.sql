-- A view over a query built by ml_batch.sources (the query is appended after this line).
CREATE VIEW {view} AS
