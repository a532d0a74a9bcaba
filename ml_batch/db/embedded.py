"""A private PostgreSQL server under ML_BATCH_HOME, for machines that have only Python.

The server binaries come from the `pgserver` wheel (a real PostgreSQL 16). ml-batch drives them with
`initdb`/`pg_ctl` itself rather than through pgserver's own wrapper, because that wrapper listens only on
a Unix socket (whose path length is limited and which Airflow connection URIs cannot express) and stops
the server when the last Python process exits. Here the server:

- listens on 127.0.0.1 only, on a free port chosen at first start (re-chosen if it is taken later);
- requires a password (scram-sha-256), generated at init and kept in `<home>/postgres/credentials.json`
  (mode 0600): no secret lives in code or in the repository;
- keeps running after the command that started it, until `ml-batch db down`.

When the process runs as root, PostgreSQL refuses to start, so the server runs as the system user
`pgserver` (created if missing, as the pgserver package itself does).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ml_batch.errors import DatabaseError

logger = logging.getLogger(__name__)

_SYSTEM_USER = "pgserver"
_DATABASE = "ml_batch"
_START_TIMEOUT_S = 60


@dataclass(frozen=True)
class ServerInfo:
    """Where the embedded server is and how to reach it."""

    root: Path
    port: int
    password: str
    database: str = _DATABASE

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"


class EmbeddedPostgres:
    """Lifecycle of the server whose files live in `root` (`<ML_BATCH_HOME>/postgres`)."""

    def __init__(self, root: Path, *, extra_conf: dict[str, str] | None = None) -> None:
        self.root = root.resolve()
        self.pgdata = self.root / "data"
        self._credentials = self.root / "credentials.json"
        self._extra_conf = dict(extra_conf or {})

    # -- public -----------------------------------------------------------------------------------------
    def ensure_running(self) -> ServerInfo:
        """Initialise the data folder if needed, start the server if it is not running, return its info.

        Safe to call from several processes at once: a file lock serialises init and start.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            info = self._read_credentials()
            if not self.is_running():
                info = self._start(info)
            self._ensure_database(info)
            return info

    def info(self) -> ServerInfo:
        """The server's info without starting it (raises when it was never initialised)."""
        return self._read_credentials()

    def is_running(self) -> bool:
        """True when `pg_ctl status` reports a live postmaster for this data folder."""
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._pg_ctl(["status"], check=False)
        return result.returncode == 0

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns False when it was not running."""
        with self._lock():
            if not self.is_running():
                return False
            self._pg_ctl(["stop", "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S)])
            return True

    # -- internals --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _initdb(self) -> None:
        logger.info("initialising embedded PostgreSQL in %s", self.pgdata)
        self._prepare_permissions()
        password = secrets.token_urlsafe(24)
        pwfile = self.root / ".initdb-pw"
        pwfile.write_text(password)
        try:
            self._chown(pwfile)
            self._run(
                "initdb",
                [
                    "-D", str(self.pgdata), "-U", "postgres", "--encoding=UTF8", "--locale=C",
                    "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\n# ml-batch: listen address, port and tuning live here, rewritten at each start\n")
            handle.write("include_if_exists = 'ml_batch.conf'\n")
        self._write_credentials(ServerInfo(root=self.root, port=0, password=password))

    def _start(self, info: ServerInfo) -> ServerInfo:
        port = info.port if info.port and _port_is_free(info.port) else _free_port()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": "''",  # loopback TCP only: no socket path-length limits
            "max_connections": "200",  # Airflow workers and mapped tasks each hold connections
            **self._extra_conf,
        }
        conf = self.pgdata / "ml_batch.conf"
        conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._chown(conf)
        logger.info("starting embedded PostgreSQL on 127.0.0.1:%d", port)
        log_file = self.root / "postgres.log"
        if not log_file.exists():
            log_file.touch()
            self._chown(log_file)
        try:
            self._pg_ctl(["start", "-w", "-t", str(_START_TIMEOUT_S), "-l", str(log_file)])
        except DatabaseError as exc:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise DatabaseError(f"{exc}\n--- last lines of {log_file} ---\n{tail}") from exc
        info = ServerInfo(root=self.root, port=port, password=info.password)
        self._write_credentials(info)
        return info

    def _ensure_database(self, info: ServerInfo) -> None:
        import psycopg2  # local import: keep `ml_batch.db` light for DAG parsing

        conn = psycopg2.connect(
            host="127.0.0.1", port=info.port, user="postgres", password=info.password, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (info.database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{info.database}"')
        finally:
            conn.close()

    def _read_credentials(self) -> ServerInfo:
        if not self._credentials.exists():
            raise DatabaseError(
                f"no embedded PostgreSQL under {self.root}: run 'ml-batch db up' first "
                "(or set ML_BATCH_DATABASE_URL to use another server)"
            )
        data = json.loads(self._credentials.read_text())
        return ServerInfo(root=self.root, port=int(data["port"]), password=str(data["password"]))

    def _write_credentials(self, info: ServerInfo) -> None:
        tmp = self._credentials.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"port": info.port, "password": info.password}, handle)
        tmp.replace(self._credentials)

    # -- running the binaries (as `pgserver` when we are root) ------------------------------------------
    def _system_user(self) -> str | None:
        return _SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_permissions(self) -> None:
        if self._system_user() is None:
            return
        import stat

        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(_SYSTEM_USER)
        bin_dir = _bin_dir()
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(bin_dir)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir.parent / "lib", readable)
        self._chown(self.root)

    def _chown(self, path: Path) -> None:
        user = self._system_user()
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _pg_ctl(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", ["-D", str(self.pgdata), *args], check=check)

    def _run(self, program: str, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(_bin_dir() / program), *args]
        result = subprocess.run(
            command,
            user=self._system_user(),
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S + 30,
            cwd=self.root,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise DatabaseError(
                f"{program} {' '.join(args[:4])} failed with exit code {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-1500:]}"
            )
        return result


def _bin_dir() -> Path:
    # Located without importing pgserver: its package import starts logging/platformdirs side effects.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError(
            "the embedded PostgreSQL needs the 'pgserver' package: pip install pgserver "
            "(or set ML_BATCH_DATABASE_URL to an existing server)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
