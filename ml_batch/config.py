"""Settings read from the environment, in one place.

| variable               | default                  | meaning                                              |
|------------------------|--------------------------|------------------------------------------------------|
| ML_BATCH_DATABASE_URL  | (embedded server)        | SQLAlchemy URL of the PostgreSQL to use              |
| ML_BATCH_HOME          | ./.ml_batch              | state folder: embedded server, reports               |
| ML_BATCH_SPECS_DIR     | include/models           | folder of model spec YAML files (see `specs_dir`)    |
| ML_BATCH_SCHEMA        | ml_batch                 | schema of ml-batch's own tables                      |
| ML_BATCH_USER          | $USER / login name       | who is recorded in registry events                   |
| ML_BATCH_ARTIFACT_KEY  | ~/.config/ml-batch/artifact.key | secret that signs model artifacts (HMAC)      |
| ML_BATCH_CONNECT_WAIT_S | 120                     | how long a step waits for a free connection slot (`db.faults`) |
| ML_BATCH_UI_DATABASE_URL | (the owner's)        | the pages' role (`db grant-ui`), without connection `ml_batch_ui` |
| ML_BATCH_COMPILE       | 1                        | 0: no compiled tree models (`model.compiled`)       |
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ml_batch.errors import ConfigError
from ml_batch.files import write_atomic

logger = logging.getLogger(__name__)

ARTIFACT_KEY_ENV = "ML_BATCH_ARTIFACT_KEY"
SPECS_DIR_ENV = "ML_BATCH_SPECS_DIR"
UI_DATABASE_URL_ENV = "ML_BATCH_UI_DATABASE_URL"
MIN_ARTIFACT_KEY_BYTES = 32

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with `Settings.from_env()` or directly in tests."""

    home: Path
    specs_dir: Path
    schema: str = "ml_batch"
    database_url: str | None = None
    user: str = field(default_factory=lambda: _login_name())
    ui_database_url: str | None = None  # the role `ml-batch db grant-ui` granted, for the pages

    def __post_init__(self) -> None:
        if not _SCHEMA_RE.match(self.schema):
            raise ConfigError(
                f"ML_BATCH_SCHEMA={self.schema!r} is not a valid schema name: expected lowercase letters, "
                "digits and underscores, starting with a letter or underscore, at most 63 characters"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        cwd = Path.cwd()
        return cls(
            home=Path(env.get("ML_BATCH_HOME") or cwd / ".ml_batch").expanduser().resolve(),
            specs_dir=specs_dir(env),
            schema=env.get("ML_BATCH_SCHEMA") or "ml_batch",
            database_url=env.get("ML_BATCH_DATABASE_URL") or None,
            user=env.get("ML_BATCH_USER") or _login_name(),
            ui_database_url=env.get(UI_DATABASE_URL_ENV) or None,
        )


def specs_dir(environ: Mapping[str, str] | None = None, *, project: Path | None = None) -> Path:
    """The specs folder: ML_BATCH_SPECS_DIR when set, else `include/models` of the project.

    The project is `project` when given (a DAG file passes the folder above `dags/`, whatever the current
    directory of the process parsing it), else the current directory (the CLI, run from the project). The DAG
    factory resolves it once, when the DAG file is parsed, and hands that folder to the tasks that read specs:
    parsing and the plan task never read two different folders.
    """
    env = os.environ if environ is None else environ
    value = env.get(SPECS_DIR_ENV)
    folder = Path(value) if value else (project if project is not None else Path.cwd()) / "include" / "models"
    return folder.expanduser().resolve()


def artifact_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The secret that signs and verifies model artifacts (HMAC-SHA256).

    ML_BATCH_ARTIFACT_KEY when set: what a deployment must do, with the same value for every worker and
    every machine that trains or registers models. Otherwise the current user's key file
    (`default_artifact_key_file`), generated on first use with mode 0600 like the embedded server's
    credentials, so the demo and the tests work on a fresh machine. It belongs to the OS user, not to
    ML_BATCH_HOME, because every process of that user (CLI, local Airflow, notebook) must agree on it
    whatever its working directory; another user, host or container gets another key and refuses the
    first one's artifacts, which is why a deployment sets the variable.
    """
    env = os.environ if environ is None else environ
    value = env.get(ARTIFACT_KEY_ENV)
    if value:
        return _checked_key(value.encode(), ARTIFACT_KEY_ENV)
    path = default_artifact_key_file(env)
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"artifact key file {path} has mode {mode:04o}: expected 0600 (readable by its owner only); "
            f"run 'chmod 600 {path}' or set {ARTIFACT_KEY_ENV}"
        )
    return _checked_key(path.read_bytes().strip(), str(path))


def default_artifact_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the key lives when ML_BATCH_ARTIFACT_KEY is unset: `$XDG_CONFIG_HOME/ml-batch/artifact.key`
    (`~/.config/ml-batch/artifact.key` by default)."""
    env = os.environ if environ is None else environ
    config_home = env.get("XDG_CONFIG_HOME")
    if not config_home:
        try:
            config_home = str(Path.home() / ".config")
        except RuntimeError as exc:  # no HOME and no passwd entry (some containers)
            raise ConfigError(f"{ARTIFACT_KEY_ENV} is not set and there is no home directory to keep a "
                              f"generated key in: set {ARTIFACT_KEY_ENV}") from exc
    return Path(config_home).expanduser() / "ml-batch" / "artifact.key"


def _checked_key(key: bytes, source: str) -> bytes:
    if len(key) < MIN_ARTIFACT_KEY_BYTES:
        raise ConfigError(
            f"{source} is {len(key)} bytes long: expected at least {MIN_ARTIFACT_KEY_BYTES} "
            "(e.g. the output of: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def _create_key_file(path: Path) -> None:
    # Created exclusively (`files.write_atomic`): of several processes creating it at once, one wins and the
    # others read its complete file, never a half-written one.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if write_atomic(path, secrets.token_hex(32) + "\n", mode=0o600, exclusive=True):
        logger.warning("%s is not set: generated a new artifact key in %s (a deployment sets %s instead, the "
                       "same on every machine)", ARTIFACT_KEY_ENV, path, ARTIFACT_KEY_ENV)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
        return f"uid:{os.getuid()}"
