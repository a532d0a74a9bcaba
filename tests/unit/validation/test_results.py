"""How a validation result is saved (no database)."""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path

import pytest

from ml_batch.validation.results import ValidationOutcome, save_result

KEY = "application_id"


def test_save_result_writes_json_that_round_trips(tmp_path: Path) -> None:
    result = {"success": False, "results": [{"success": False, "result": {"unexpected_index_list": [{KEY: 3}]}}],
              "meta": {"ml_batch": {"key_column": KEY}}}
    outcome = ValidationOutcome(rows=150, batch_failures=[], row_reasons={3: ["income: ..."]}, result_json=result)
    run_id = "scheduled__2024-03-02T06:00:00+00:00"
    path = save_result(outcome, tmp_path, "credit_default", datetime.date(2024, 3, 2), run_id)
    assert path == tmp_path / "credit_default" / "2024-03-02" / "scheduled__2024-03-02T06_00_00_00_00.json"
    loaded = json.loads(path.read_text())
    assert loaded == json.loads(json.dumps(outcome.result_json, default=str))
    assert loaded["meta"]["ml_batch"]["key_column"] == KEY
    failed = [r for r in loaded["results"] if not r["success"]]
    assert [r["result"]["unexpected_index_list"] for r in failed] == [[{KEY: 3}]]
    # a second run of the same task replaces the file and leaves no temporary files behind
    assert save_result(outcome, tmp_path, "credit_default", datetime.date(2024, 3, 2), run_id) == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_save_result_gives_the_file_the_umask_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The one atomic-write rule (`ml_batch.files.write_atomic`): 0666 less the umask, like any file written."""
    outcome = ValidationOutcome(rows=1, batch_failures=[], row_reasons={}, result_json={"success": True})
    previous = os.umask(0o027)
    try:
        path = save_result(outcome, tmp_path, "m", datetime.date(2024, 1, 1), "run")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert json.loads(path.read_text()) == {"success": True}


def test_save_result_rejects_a_run_id_that_is_not_a_name(tmp_path: Path) -> None:
    outcome = ValidationOutcome(rows=0, batch_failures=[], row_reasons={}, result_json={})
    with pytest.raises(ValueError, match=r"run_id '\.\.' cannot be used as a file name"):
        save_result(outcome, tmp_path, "m", datetime.date(2024, 1, 1), "..")
