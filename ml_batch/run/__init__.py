"""A day's run: plan, score shards, publish; its records, objects, liveness and retention."""
