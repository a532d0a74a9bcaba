-- Fresh planner statistics for a just-attached partition (drift and analysts' queries read it next).
ANALYZE {table}
