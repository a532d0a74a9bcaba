"""Validation of a day's rows with Great Expectations, inside PostgreSQL, before scoring.

One module per job, lowest first (each imports only the ones above it in this list):

* `session`: GX itself: its lazy import, an offline context with a batch of a PostgreSQL relation, one call;
* `suite`: the expectation suite, generated from the spec and extended by a suite file;
* `relation`: what the database says about the relation to validate (column types, a unique key);
* `reasons`: why a row failed, as text (`RowReason`, `GOT`, `nan_columns`) and how values read in it;
* `interpret`: what GX's results mean: batch failures, and the failing rows' reasons by key;
* `results`: the `ValidationOutcome`, and GX's result as it is saved (a file, a stored report);
* `passes`: `validate_relation`, GX's up to three passes over a relation.

Importing any of them imports no Great Expectations: GX is imported on first use.
"""
