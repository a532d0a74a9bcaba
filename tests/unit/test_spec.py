from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ml_batch.errors import SpecError
from ml_batch.spec import Spec, load_spec

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "include" / "models" / "credit_default.yaml"


def _demo_dict() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _write(tmp_path: Path, data: dict, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_demo_spec_loads_with_its_features_in_order() -> None:
    spec = load_spec(DEMO)
    assert spec.name == "credit_default"
    assert spec.feature_names[:3] == ["income", "age", "debt_ratio"]
    assert {"name": "purpose", "type": "categorical"} in spec.feature_schema
    assert spec.estimator_class().__name__ == "HistGradientBoostingClassifier"


@pytest.mark.parametrize("name", ["credit_default", "store_demand"])
def test_shipped_demo_specs_are_the_ones_in_include_and_in_the_docs(name: str) -> None:
    shipped = REPO / "ml_batch" / "demo" / "specs" / f"{name}.yaml"
    included = REPO / "include" / "models" / f"{name}.yaml"
    assert shipped.read_text() == included.read_text()
    # docs/spec.md quotes each demo spec byte for byte, as one whole ```yaml block
    assert f"```yaml\n{included.read_text()}```\n" in (REPO / "docs" / "spec.md").read_text()


def test_sha256_ignores_formatting_but_not_content(tmp_path: Path) -> None:
    data = _demo_dict()
    a = load_spec(_write(tmp_path, data, "a.yaml"))
    b = load_spec(_write(tmp_path, data, "b.yaml"))
    data["training"]["holdout_days"] = 5
    c = load_spec(_write(tmp_path, data, "c.yaml"))
    assert a.sha256() == b.sha256() != c.sha256()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["features"][0].update(type="float"), "field 'features.0.type'"),
        (lambda d: d.update(colour="blue"), "field 'colour': unknown field"),
        (lambda d: d["source"].update(table="demo.x; DROP TABLE users"), "is not a valid SQL identifier"),
        (lambda d: d["source"].update(key='id" OR 1=1 --'), "field 'source.key'"),
        (lambda d: d["source"].update(query="SELECT 1"), "give exactly one of 'table' or 'query'"),
        (lambda d: d.pop("labels"), "field 'labels': required field is missing"),
        (lambda d: d["training"].update(holdout_days=60), "holdout_days (60) must be smaller than window_days"),
        (lambda d: d["features"].append(dict(d["features"][0])), "listed more than once: ['income']"),
        (lambda d: d["features"][0].update(categories=["a"]), "is numeric: 'categories'"),
        (lambda d: d.update(name="Credit-Default"), "is not a model name"),
        (lambda d: d["model"].update(estimator="LogisticRegression"), "is not a dotted class path"),
        (lambda d: d["labels"].update(delay_days=-1), "field 'labels.delay_days'"),
    ],
)
def test_invalid_spec_names_file_field_and_expectation(tmp_path: Path, mutate, expected: str) -> None:
    data = _demo_dict()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_query_source_must_be_one_select(tmp_path: Path) -> None:
    data = _demo_dict()
    del data["source"]["table"]
    data["source"]["query"] = "SELECT * FROM a; DELETE FROM a"
    with pytest.raises(SpecError, match=r"single SELECT statement"):
        load_spec(_write(tmp_path, data))
    data["source"]["query"] = "SELECT * FROM demo.credit_applications WHERE income > 0;"
    assert load_spec(_write(tmp_path, data)).source.query == "SELECT * FROM demo.credit_applications WHERE income > 0"


def test_unimportable_estimator_is_a_spec_error(tmp_path: Path) -> None:
    data = _demo_dict()
    data["model"]["estimator"] = "sklearn.ensemble.NoSuchModel"
    spec = load_spec(_write(tmp_path, data))
    with pytest.raises(SpecError, match=r"'sklearn\.ensemble\.NoSuchModel' cannot be imported"):
        spec.estimator_class()


def test_yaml_syntax_and_top_level_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")


def test_defaults_are_filled_in() -> None:
    data = _demo_dict()
    for optional in ("training", "validation", "drift"):
        data.pop(optional)
    spec = Spec.model_validate(data)
    assert spec.training.holdout_days == 14
    assert spec.drift.psi_threshold == 0.2
    assert spec.validation.max_quarantine_share == 0.05


def test_labels_date_column_is_optional_and_distinct_from_the_other_label_columns() -> None:
    from ml_batch.spec import LabelsSpec

    recurring = LabelsSpec(table="s.l", key="k", column="y", delay_days=1, date_column="label_day")
    assert recurring.date_column == "label_day"
    assert LabelsSpec(table="s.l", key="k", column="y", delay_days=1).date_column is None
    with pytest.raises(ValueError, match=r"must be distinct columns, got \['k', 'y', 'k'\]"):
        LabelsSpec(table="s.l", key="k", column="y", delay_days=1, date_column="k")
    with pytest.raises(ValueError, match=r"not a valid SQL identifier"):
        LabelsSpec(table="s.l", key="k", column="y", delay_days=1, date_column="day; drop")


def test_shadow_days_shorter_than_the_label_delay_is_explained(tmp_path: Path) -> None:
    data = _demo_dict()  # labels arrive 30 days late
    data.setdefault("training", {})["shadow_days"] = 7
    with pytest.raises(SpecError, match=r"training.shadow_days \(7\) is shorter than "
                                        r"labels.delay_days \(30\) \+ training.shadow_min_labelled_days \(3\): "
                                        r".*set shadow_days to at least 33"):
        load_spec(_write(tmp_path, data))
    data["training"].update(shadow_days=33, shadow_max_days=20)
    with pytest.raises(SpecError, match=r"training.shadow_max_days \(20\) must be at least training.shadow_days "
                                        r"\(33\)"):
        load_spec(_write(tmp_path, data))
    data["training"].update(shadow_max_days=40, shadow_min_labelled_days=0)
    with pytest.raises(SpecError, match=r"field 'training.shadow_min_labelled_days': Input should be greater "
                                        r"than or equal to 1 \(got 0\)"):
        load_spec(_write(tmp_path, data))
    data["training"].update(shadow_min_labelled_days=1)
    training = load_spec(_write(tmp_path, data)).training
    assert (training.shadow_days, training.shadow_min_labelled_days, training.shadow_max_days) == (33, 1, 40)
    data["training"] = {k: v for k, v in data["training"].items() if not k.startswith("shadow")}
    defaults = load_spec(_write(tmp_path, data)).training
    assert (defaults.shadow_days, defaults.shadow_min_labelled_days, defaults.shadow_max_days) == (0, 3, 90)


def test_a_query_keeps_a_trailing_comment_and_colons(tmp_path: Path) -> None:
    data = _demo_dict()
    del data["source"]["table"]
    data["source"]["query"] = "SELECT * FROM demo.credit_applications WHERE purpose <> 'a :b'\n-- all of them\n"
    query = load_spec(_write(tmp_path, data)).source.query
    assert query == "SELECT * FROM demo.credit_applications WHERE purpose <> 'a :b'\n-- all of them"


def test_alert_after_needs_days_within_of() -> None:
    from ml_batch.spec import AlertAfterSpec

    with pytest.raises(ValueError, match=r"days \(4\) must be at most of \(3\)"):
        AlertAfterSpec(days=4, of=3)


@pytest.mark.parametrize(("share", "quarantined", "rows", "exceeded"), [
    (0.29, 29, 100, False), (0.29, 30, 100, True), (0.05, 4, 80, False), (0.05, 5, 80, True), (0.07, 7, 100, False),
    (0.0, 0, 10, False), (0.0, 1, 10, True), (1.0, 10, 10, False),
])
def test_the_quarantine_share_rule_is_exact_on_the_share_written_in_the_spec(
        share: float, quarantined: int, rows: int, exceeded: bool) -> None:
    """One rule (`ValidationSpec.quarantine_exceeded`) for validation and publish; 0.29 of 100 rows is 29 rows
    exactly, not 28.999999999999996 (the float product validation used to compare with)."""
    from ml_batch.spec import ValidationSpec

    assert ValidationSpec(max_quarantine_share=share).quarantine_exceeded(quarantined, rows) is exceeded


# -- when a day is complete (validation volume fields, source readiness) ----------------------------------
def _spec_with(spec: Spec, section: str, **fields: object) -> dict:
    data = spec.model_dump(mode="json")
    data[section] = {**data[section], **fields}
    return data


@pytest.mark.parametrize(("value", "seconds"), [("6h", 21600), ("90m", 5400), ("45s", 45), ("1d", 86400)])
def test_durations_are_a_whole_number_and_a_unit(spec: Spec, value: str, seconds: int) -> None:
    from ml_batch.spec import duration_seconds

    parsed = Spec.model_validate(_spec_with(spec, "validation", wait_for_volume=value))
    assert duration_seconds(parsed.validation.wait_for_volume) == seconds


@pytest.mark.parametrize("value", ["6 hours", "1.5h", "h", "-1h", ""])
def test_a_duration_that_is_not_one_is_refused_naming_it(spec: Spec, value: str) -> None:
    with pytest.raises(ValidationError, match="is not a duration: expected a whole number and a unit s, m, h or d"):
        Spec.model_validate(_spec_with(spec, "validation", wait_for_volume=value))


def test_a_ready_query_must_name_the_day_and_be_one_select(spec: Spec) -> None:
    ok = Spec.model_validate(_spec_with(spec, "source", ready_query="SELECT done FROM log WHERE day = :day"))
    assert ok.source.ready_query == "SELECT done FROM log WHERE day = :day"
    with pytest.raises(ValidationError, match="must use the bind parameter :day"):
        Spec.model_validate(_spec_with(spec, "source", ready_query="SELECT done FROM log WHERE day = current_date"))
    with pytest.raises(ValidationError, match="single SELECT"):
        Spec.model_validate(_spec_with(spec, "source", ready_query="SELECT 1 WHERE :day; DROP TABLE x"))


def test_a_ready_asset_is_a_uri_and_reference_share_stays_below_the_maximum(spec: Spec) -> None:
    with pytest.raises(ValidationError, match="is not an Asset URI"):
        Spec.model_validate(_spec_with(spec, "source", ready_asset="loads of events"))
    with pytest.raises(ValidationError, match=r"reference_null_share \(0.6\) must be at most max_null_share"):
        Spec.model_validate(_spec_with(spec, "validation", reference_null_share=0.6))


def test_approval_works_with_shadow_days_and_publish_by_is_a_time_of_day(spec: Spec) -> None:
    ok = Spec.model_validate(_spec_with(spec, "training", approval="required", approval_timeout="2h"))
    assert (ok.training.approval, ok.training.approval_timeout) == ("required", "2h")
    # The challenger's promotion after its shadow days is what asks (tests/integration/test_approval.py).
    shadowed = Spec.model_validate(_spec_with(spec, "training", approval="required", shadow_days=40))
    assert (shadowed.training.approval, shadowed.training.shadow_days) == ("required", 40)
    with pytest.raises(ValidationError, match="expected at least 1m"):
        Spec.model_validate(_spec_with(spec, "training", approval="required", approval_timeout="30s"))
    assert Spec.model_validate({**spec.model_dump(mode="json"), "publish_by": "08:00"}).publish_by == "08:00"
    with pytest.raises(ValidationError, match=r"'8am' is not a time of day: expected HH:MM"):
        Spec.model_validate({**spec.model_dump(mode="json"), "publish_by": "8am"})


# -- multiclass models --------------------------------------------------------------------------------------
def _multiclass(spec: Spec, **training: object) -> dict:
    data = spec.model_dump(mode="json")
    data["model"]["task"] = "multiclass"
    data["training"] = {key: value for key, value in data["training"].items() if key != "metric"} | training
    return data


def test_a_multiclass_spec_without_a_metric_is_gated_on_log_loss(spec: Spec) -> None:
    loaded = Spec.model_validate(_multiclass(spec))
    assert (loaded.model.task, loaded.training.metric, loaded.training.min_class_rows) == ("multiclass", "log_loss", 1)
    assert Spec.model_validate(_multiclass(spec, metric="macro_f1")).training.metric == "macro_f1"
    shipped = load_spec(Path(__file__).resolve().parents[2] / "docs" / "examples" / "ticket_queue.yaml")
    assert (shipped.model.task, shipped.training.min_class_rows) == ("multiclass", 20)


def test_a_metric_of_another_task_is_refused_naming_it_and_the_allowed_ones(spec: Spec) -> None:
    with pytest.raises(ValidationError, match=r"training.metric 'roc_auc' is not a multiclass metric: expected one of "
                                              r"\['log_loss', 'accuracy', 'macro_f1', 'roc_auc_ovr', "
                                              r"'balanced_accuracy'\]"):
        Spec.model_validate(_multiclass(spec, metric="roc_auc"))
    with pytest.raises(ValidationError, match=r"training.metric 'macro_f1' is not a binary metric: expected one of "
                                              r"\['roc_auc', 'average_precision', 'log_loss', 'accuracy'\]"):
        Spec.model_validate(_spec_with(spec, "training", metric="macro_f1"))
    with pytest.raises(ValidationError, match=r"'roc_auc_ovr' is not a regression metric"):
        data = _spec_with(spec, "training", metric="roc_auc_ovr")
        data["model"]["task"] = "regression"
        Spec.model_validate(data)


def _of_task(spec: Spec, task: str, **training: object) -> dict:
    data = _multiclass(spec, **training)
    data["model"]["task"] = task
    return data


@pytest.mark.parametrize(("task", "default"), [("binary", "roc_auc"), ("regression", "rmse"),
                                               ("multiclass", "log_loss")])
def test_a_spec_without_a_metric_is_gated_on_its_tasks_default(spec: Spec, task: str, default: str) -> None:
    # A regression spec once got roc_auc, which a regression model never has: its gate could never promote.
    assert Spec.model_validate(_of_task(spec, task)).training.metric == default


@pytest.mark.parametrize(("task", "metric"), [("regression", "roc_auc"), ("regression", "log_loss"),
                                              ("regression", "accuracy"), ("binary", "rmse"), ("binary", "r2")])
def test_a_binary_or_regression_metric_of_the_other_task_is_refused(spec: Spec, task: str, metric: str) -> None:
    # Such a metric is NaN on every holdout of the task: the gate refused every candidate, saying only "undefined".
    with pytest.raises(ValidationError, match=rf"training.metric {metric!r} is not a {task} metric: expected one of"):
        Spec.model_validate(_of_task(spec, task, metric=metric))


def test_min_class_rows_is_at_least_one_and_multiclass_shadow_days_are_accepted(spec: Spec) -> None:
    with pytest.raises(ValidationError, match=r"training.min_class_rows"):
        Spec.model_validate(_multiclass(spec, min_class_rows=0))
    shadowed = Spec.model_validate(_multiclass(spec, shadow_days=40, approval="required"))
    assert (shadowed.model.task, shadowed.training.shadow_days, shadowed.training.approval) == (
        "multiclass", 40, "required")
    # The shadow period's own rule holds for multiclass models as for the others.
    with pytest.raises(ValidationError, match=r"training.shadow_days \(7\) is shorter than labels.delay_days"):
        Spec.model_validate(_multiclass(spec, shadow_days=7))
