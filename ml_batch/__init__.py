"""ml-batch: daily batch predictions from PostgreSQL, validated, versioned and published atomically."""

from __future__ import annotations

__version__ = "0.1.0"
