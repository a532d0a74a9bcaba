"""The one atomic file write (`ml_batch.files.write_atomic`): whole files, the umask's mode, no temp left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ml_batch.files import default_mode, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_is_replaced_whole_with_the_mode_a_plain_write_gives(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    previous = os.umask(0o027)
    try:
        assert write_atomic(target, "first") and write_atomic(target, "second")
        assert default_mode() == 0o640
    finally:
        os.umask(previous)
    assert target.read_text() == "second" and _mode(target) == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"], "no temporary file is left"


def test_an_explicit_mode_wins_over_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_atomic(tmp_path / "key", b"secret", mode=0o600)
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "key") == 0o600


def test_an_exclusive_write_never_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "key"
    assert write_atomic(target, "mine", exclusive=True) is True
    assert write_atomic(target, "theirs", exclusive=True) is False
    assert target.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
