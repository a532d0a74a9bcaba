"""Files written atomically: the one rule for every file ml-batch writes (reports, results, the artifact key).

A reader sees the old file or the new one, never half of one: the bytes go to a temporary file in the same
folder, are flushed to disk (fsync), given their mode, and renamed over the target; the folder is synced
too, so the rename survives a crash. The mode is what a plain `open(path, "w")` would give (0666 less the
umask), unless the caller names one: the artifact key is 0600 whatever the umask.

`exclusive=True` creates the file only if it does not exist yet (a hard link instead of a rename): of
several processes creating it at once, exactly one wins, and the others read its complete file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, mode: int | None = None, exclusive: bool = False) -> bool:
    """Write `data` to `path` atomically (see the module docstring); create missing parent folders.

    Returns:
        True when this call wrote the file; False only with `exclusive`, when it already existed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, default_mode() if mode is None else mode)
        if exclusive:
            try:
                os.link(temp_name, path)
            except FileExistsError:
                return False
        else:
            os.replace(temp_name, path)
        _sync_folder(path.parent)
        return True
    finally:
        Path(temp_name).unlink(missing_ok=True)


def default_mode() -> int:
    """The mode a new file gets from `open(path, "w")`: 0666 less this process's umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    # Linux reports the umask without changing it; os.umask can only read it by setting it, which would
    # briefly give every other thread's new files the wrong mode.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o077)
    os.umask(current)
    return current


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
