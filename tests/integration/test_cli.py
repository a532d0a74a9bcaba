"""The `ml-batch` console script, run as a user would (a subprocess), against the real test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_batch.config import Settings
from ml_batch.db.migrate import head_revision
from tests.support.cli import run_cli as _cli

pytestmark = pytest.mark.integration

def test_db_up_then_train_list_promote_rollback(settings: Settings) -> None:
    up = json.loads(_cli(settings, "db", "up", "--json").stdout)
    assert up["schema"] == settings.schema and up["migration"] == head_revision() and "***" in up["url"]

    seeded = json.loads(_cli(settings, "demo", "seed", "--end-date", "2026-06-30", "--days", "100",
                             "--rows-per-day", "300", "--json").stdout)
    assert seeded["applications"] > 20_000

    first = json.loads(_cli(settings, "train", "--model", "credit_default", "--as-of", "2026-06-30",
                            "--promote", "--json").stdout)
    assert first["version"]["version"] == 1 and first["promoted"] is True
    assert first["version"]["metrics"]["roc_auc"] > 0.7
    _cli(settings, "train", "--model", "credit_default", "--as-of", "2026-06-30")

    listed = json.loads(_cli(settings, "models", "list", "--json").stdout)
    assert [(v["version"], v["aliases"]) for v in listed] == [(2, []), (1, ["champion"])]

    moved = json.loads(_cli(settings, "models", "promote", "credit_default", "2", "--reason", "test",
                            "--json").stdout)
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    human = _cli(settings, "models", "rollback", "credit_default", "--reason", "bad day").stdout
    assert "champion moved from 2 to 1" in human

    shown = json.loads(_cli(settings, "models", "show", "credit_default", "--json").stdout)
    assert shown["version"]["version"] == 1
    assert [e["event"] for e in shown["events"]][:3] == ["rollback", "promoted", "registered"]
    assert shown["events"][0]["actor"] == "cli-test" and shown["events"][0]["reason"] == "bad day"
    table = _cli(settings, "models", "list").stdout
    assert "credit_default" in table and "champion" in table


def test_expected_errors_are_one_line_without_traceback(settings: Settings, tmp_path: Path) -> None:
    result = _cli(settings, "models", "promote", "credit_default", "9", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: model 'credit_default' has no version 9 (versions: none)")

    result = _cli(settings, "train", "--model", "nope", check=False)
    assert result.returncode == 1 and "known models: credit_default" in result.stderr

    result = _cli(settings, "train", "--model", "credit_default", "--as-of", "31/12/2026", check=False)
    assert result.returncode == 1 and "--as-of '31/12/2026' is not a date" in result.stderr


def test_register_outside_artifact_checks_schema(settings: Settings, tmp_path: Path) -> None:
    import joblib
    import pandas as pd
    import skops.io as sio
    from sklearn.dummy import DummyClassifier

    _cli(settings, "demo", "seed", "--end-date", "2026-06-30", "--days", "100", "--rows-per-day", "200")
    trained = json.loads(_cli(settings, "train", "--model", "credit_default", "--as-of", "2026-06-30",
                              "--json").stdout)
    assert trained["version"]["version"] == 1

    wrong = tmp_path / "wrong.skops"
    sio.dump(DummyClassifier().fit(pd.DataFrame({"a": [1, 2]}), [0, 1]), wrong)
    result = _cli(settings, "models", "register", "--model", "credit_default", "--artifact", str(wrong),
                  "--as-of", "2026-06-30", check=False)
    assert result.returncode == 1 and "fitted on columns ['a']" in result.stderr

    from ml_batch.db.engine import make_engine
    from ml_batch.model import registry
    from ml_batch.spec import get_spec

    engine = make_engine(settings)
    spec = get_spec(settings.specs_dir, "credit_default")
    pipeline = registry.load(engine, spec, 1).pipeline
    pickled = tmp_path / "notebook.joblib"
    joblib.dump(pipeline, pickled)
    result = _cli(settings, "models", "register", "--model", "credit_default", "--artifact", str(pickled),
                  "--as-of", "2026-06-30", check=False)
    assert result.returncode == 1 and "is not a skops file" in result.stderr
    good = tmp_path / "notebook.skops"
    sio.dump(pipeline, good)
    registered = json.loads(_cli(settings, "models", "register", "--model", "credit_default", "--artifact",
                                 str(good), "--as-of", "2026-06-30", "--json").stdout)
    assert registered["version"] == 2 and registered["source"] == "registered"
    assert registered["metrics"]["roc_auc"] == pytest.approx(trained["version"]["metrics"]["roc_auc"])
