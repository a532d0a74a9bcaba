-- How long the transaction's next statements wait for a lock (transaction-local: is_local = true, and undone
-- by a rollback to a savepoint taken before it). '0' waits for ever, PostgreSQL's default.
SELECT set_config('lock_timeout', :timeout, true)
