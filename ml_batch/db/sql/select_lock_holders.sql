-- Who holds a lock on the predictions table or the day's partition that a publish could not get in time:
-- named in the error when the swap gives up.
SELECT a.pid,
       l.mode,
       a.state,
       round(extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start))::numeric, 1) AS seconds,
       left(regexp_replace(a.query, '\s+', ' ', 'g'), 100) AS query
FROM pg_locks AS l
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND a.pid <> pg_backend_pid()
  AND l.relation IN (to_regclass(:table), to_regclass(:partition))
ORDER BY seconds DESC NULLS LAST, a.pid
