"""Throwaway PostgreSQL servers for tests: started in a fresh temporary folder, stopped and removed after."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ml_batch.db.embedded import EmbeddedPostgres

# Durability a test server does not need, for speed.
FAST_CONF = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@contextmanager
def throwaway_server(prefix: str, **conf: str) -> Iterator[EmbeddedPostgres]:
    """A running embedded server with `FAST_CONF` plus `conf`, in a folder named by `prefix`; it is stopped and
    its folder removed on exit, also when the test fails."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(root / "postgres", extra_conf={**FAST_CONF, **conf})
    server.ensure_running()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
