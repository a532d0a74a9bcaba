"""Settings read from the environment, in one place.

| variable               | default                  | meaning                                              |
|------------------------|--------------------------|------------------------------------------------------|
| ML_BATCH_DATABASE_URL  | (embedded server)        | SQLAlchemy URL of the PostgreSQL to use              |
| ML_BATCH_HOME          | ./.ml_batch              | state folder: embedded server, reports               |
| ML_BATCH_SPECS_DIR     | ./include/models         | folder of model spec YAML files                      |
| ML_BATCH_SCHEMA        | ml_batch                 | schema of ml-batch's own tables                      |
| ML_BATCH_USER          | $USER / login name       | who is recorded in registry events                   |
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ml_batch.errors import ConfigError

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with `Settings.from_env()` or directly in tests."""

    home: Path
    specs_dir: Path
    schema: str = "ml_batch"
    database_url: str | None = None
    user: str = field(default_factory=lambda: _login_name())

    def __post_init__(self) -> None:
        if not _SCHEMA_RE.match(self.schema):
            raise ConfigError(
                f"ML_BATCH_SCHEMA={self.schema!r} is not a valid schema name: expected lowercase letters, "
                "digits and underscores, starting with a letter or underscore, at most 63 characters"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read settings from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        cwd = Path.cwd()
        return cls(
            home=Path(env.get("ML_BATCH_HOME") or cwd / ".ml_batch").expanduser().resolve(),
            specs_dir=Path(env.get("ML_BATCH_SPECS_DIR") or cwd / "include" / "models").expanduser().resolve(),
            schema=env.get("ML_BATCH_SCHEMA") or "ml_batch",
            database_url=env.get("ML_BATCH_DATABASE_URL") or None,
            user=env.get("ML_BATCH_USER") or _login_name(),
        )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
        return f"uid:{os.getuid()}"
