"""The `ml-batch` console script, run as a user would (a subprocess), against the real test server."""

from __future__ import annotations

import json
import re
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
    # the scoring path in words: the version's HistGradientBoosting was compiled at training, on this machine
    said = _cli(settings, "models", "show", "credit_default").stdout
    assert re.search(r"scoring path\s+│?\s*compiled here: [\d,]+ bytes, sha256 [0-9a-f]{12}, built in", said), said


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
    from ml_batch.spec_folder import get_spec

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


# -- specs check, and the spec checked against the database at the start of a run (issue 22) ----------------
def _specs_folder(settings: Settings, tmp_path: Path, **variants: dict) -> Settings:
    """Settings whose specs folder holds one toy spec per variant (`name` -> overrides of `toy_spec`), over the
    toy tables of the test's schema (loaded, with a text-keyed copy of the labels and an all-NULL column)."""
    import dataclasses
    import datetime as dt

    import sqlalchemy as sa

    from ml_batch.db.engine import make_engine
    from tests.integration.helpers import load_toy_data, toy_spec, write_spec

    engine = make_engine(settings)
    s = settings.schema
    load_toy_data(engine, s, dt.date(2026, 5, 1), days=3, rows_per_day=10)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{s}".toy_labels_text AS SELECT id::text AS id, y, known_at '
                             f'FROM "{s}".toy_labels'))
        conn.execute(sa.text(f'ALTER TABLE "{s}".toy_rows ADD COLUMN x3 double precision'))
    folder = tmp_path / "specs"
    for name, overrides in variants.items():
        write_spec(toy_spec(s, name=name, **overrides), folder)
    return dataclasses.replace(settings, specs_dir=folder)


def _five_mistakes(schema: str) -> dict[str, dict]:
    """The five mistakes of issue 22, each a spec of its own."""
    x1 = {"name": "x1", "type": "numeric"}
    color = {"name": "color", "type": "categorical", "categories": ["red", "blue"]}
    labels = {"key": "id", "column": "y", "delay_days": 3, "known_at_column": "known_at"}
    return {
        "feature_typo": {"features": [x1, {"name": "x22", "type": "numeric"}, color]},
        "label_key_type": {"labels": {**labels, "table": f"{schema}.toy_labels_text"}},
        "numeric_on_text": {"features": [x1, {"name": "color", "type": "numeric"}]},
        "missing_labels": {"labels": {**labels, "table": f"{schema}.toy_label"}},
        "all_null": {"features": [x1, {"name": "x3", "type": "numeric"}, color]},
    }


def test_specs_check_reports_every_file_and_fails_on_any_bad_one(settings: Settings, tmp_path: Path) -> None:
    checked = _specs_folder(settings, tmp_path, good={}, other={})
    (checked.specs_dir / "broken.yaml").write_text(
        (checked.specs_dir / "good.yaml").read_text().replace("date_column: event_time", ""))
    result = _cli(checked, "specs", "check", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["error", "ok", "ok"]  # broken, good, other: file order
    assert lines[0].startswith(f"error  {checked.specs_dir / 'broken.yaml'}: field 'source.date_column'")
    assert lines[1].startswith("ok  good: 3 features") and lines[2].startswith("ok  other: 3 features")
    assert result.stderr.strip() == f"error: 1 of 3 spec files in {checked.specs_dir} have problems (listed above)"

    as_json = json.loads(_cli(checked, "specs", "check", "--json", check=False).stdout)
    assert as_json["ok"] is False and sorted(as_json["specs"]) == ["good", "other"]
    assert [e["file"] for e in as_json["errors"]] == [str(checked.specs_dir / "broken.yaml")]

    (checked.specs_dir / "broken.yaml").unlink()
    assert _cli(checked, "specs", "check").stdout.count("ok  ") == 2


def test_specs_check_db_names_file_field_and_column_of_each_mistake(settings: Settings, tmp_path: Path) -> None:
    s = settings.schema
    checked = _specs_folder(settings, tmp_path, fine={}, **_five_mistakes(s))
    folder = checked.specs_dir
    result = _cli(checked, "specs", "check", "--db", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [
        f"error  {folder}/all_null.yaml: features[1].name: column 'x3' holds only NULLs in source {s}.toy_rows: "
        "nothing to learn from; load its values, or remove the feature",
        f"error  {folder}/feature_typo.yaml: features[1].name: column 'x22' is not in source {s}.toy_rows; did "
        "you mean 'x2'? (it has: id, event_time, x1, x2, color, x3)",
        f"ok  fine: 3 features, source {s}.toy_rows, predictions {s}.toy_predictions; fits the database",
        f"error  {folder}/label_key_type.yaml: labels.key: column 'id' is text but source key 'id' is bigint: they "
        "cannot be compared; cast it in labels.query (in place of labels.table), e.g. `SELECT ..., id::bigint AS "
        "id`, or cast the source key in source.query",
        f"error  {folder}/missing_labels.yaml: labels.table: table '{s}.toy_label' does not exist (did you mean "
        f"'{s}.toy_labels'?); create it, or point labels.table at an existing table",
        f"error  {folder}/numeric_on_text.yaml: features[1].type: column 'color' is text, but the feature is "
        "numeric (expected a number or boolean column); cast it in source.query (in place of source.table), e.g. "
        "`SELECT ..., color::double precision AS color`, or declare the feature categorical",
    ]
    assert result.stderr.strip() == f"error: 5 of 6 spec files in {folder} have problems (listed above)"
    as_json = json.loads(_cli(checked, "specs", "check", "--db", "--json", check=False).stdout)
    assert as_json["specs"]["fine"]["problems"] == [] and len(as_json["specs"]["all_null"]["problems"]) == 1


def test_score_with_a_feature_typo_is_one_error_line_and_verbose_adds_the_traceback(settings: Settings,
                                                                                    tmp_path: Path) -> None:
    s = settings.schema
    checked = _specs_folder(settings, tmp_path, feature_typo=_five_mistakes(s)["feature_typo"])
    expected = (f"error: {checked.specs_dir}/feature_typo.yaml: features[1].name: column 'x22' is not in source "
                f"{s}.toy_rows; did you mean 'x2'? (it has: id, event_time, x1, x2, color, x3)")
    result = _cli(checked, "score", "-m", "feature_typo", "--date", "2026-05-02", check=False)
    assert result.returncode == 1 and result.stderr.strip() == expected
    verbose = _cli(checked, "-v", "score", "-m", "feature_typo", "--date", "2026-05-02", check=False)
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
    assert "ml_batch.errors.SpecError" in verbose.stderr and verbose.stderr.strip().endswith(expected)


@pytest.mark.parametrize("mistake", ["feature_typo", "label_key_type", "missing_labels"])
def test_train_with_a_spec_mistake_is_one_error_line(settings: Settings, tmp_path: Path, mistake: str) -> None:
    checked = _specs_folder(settings, tmp_path, **{mistake: _five_mistakes(settings.schema)[mistake]})
    result = _cli(checked, "train", "-m", mistake, "--as-of", "2026-05-20", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {checked.specs_dir}/{mistake}.yaml: ")
    assert len(result.stderr.strip().splitlines()) == 1
