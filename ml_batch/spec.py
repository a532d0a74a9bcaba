"""Model specs: one YAML file per model, validated on load.

A spec is data (see docs/spec.md and `include/models/credit_default.yaml`). Loading it
checks every field and every identifier; an error names the file, the field and what was expected.
Identifiers (tables, columns) must match `[A-Za-z_][A-Za-z0-9_]*` (tables may be `schema.table`) and are
always quoted by SQLAlchemy when used, so a spec can never inject SQL.

One file is read by `read_spec_file` (with its text: `PinnedSpec`); a folder of them by
`ml_batch.spec_folder`, where one bad file never hides the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ml_batch.errors import SpecError
from ml_batch.schedules import schedule_problem
from ml_batch.tasks import Metric, task_problem, with_task_default_metric

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def _identifier(value: str) -> str:
    if not _IDENT_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid SQL identifier: expected letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    return value


def _table_name(value: str) -> str:
    parts = value.split(".")
    if len(parts) > 2:
        raise ValueError(f"{value!r} is not a table name: expected 'table' or 'schema.table'")
    for part in parts:
        _identifier(part)
    return value


def _select_query(value: str) -> str:
    body = value.strip().rstrip(";").strip()
    if ";" in body:
        raise ValueError("a query must be a single SELECT statement (found ';' inside it)")
    if not re.match(r"^(select|with)\b", body, re.IGNORECASE):
        raise ValueError(f"a query must start with SELECT or WITH, got {body[:30]!r}")
    return body


Identifier = Annotated[str, AfterValidator(_identifier)]
TableName = Annotated[str, AfterValidator(_table_name)]
SelectQuery = Annotated[str, AfterValidator(_select_query)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TableOrQuery(_Strict):
    table: TableName | None = None
    query: SelectQuery | None = None

    @model_validator(mode="after")
    def _one_of_table_or_query(self) -> _TableOrQuery:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


_DURATION_RE = re.compile(r"^(\d+)\s*([smhd])$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> str:
    if not _DURATION_RE.match(value.strip()):
        raise ValueError(f"{value!r} is not a duration: expected a whole number and a unit s, m, h or d, "
                         "like '90m' or '6h'")
    return value.strip()


def duration_seconds(value: str) -> int:
    """Seconds in a spec duration (`'6h'`, `'10m'`, `'0s'`), as `Duration` fields hold them."""
    number, unit = _DURATION_RE.match(value).groups()  # type: ignore[union-attr]  # validated on load
    return int(number) * _DURATION_UNITS[unit]


def _ready_query(value: str) -> str:
    body = _select_query(value)
    if not re.search(r"(?<!:):day\b", body):
        raise ValueError("a ready_query must use the bind parameter :day (the day being scored, a date)")
    return body


def _asset_uri(value: str) -> str:
    if not re.match(r"^[a-z][a-z0-9+.-]*://\S+$", value):
        raise ValueError(f"{value!r} is not an Asset URI: expected 'scheme://...', like 's3://bucket/loads/events'")
    return value


Duration = Annotated[str, AfterValidator(_duration)]

_CLOCK_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _clock_time(value: str) -> str:
    if not _CLOCK_RE.match(value):
        raise ValueError(f"{value!r} is not a time of day: expected HH:MM (24-hour, UTC), like '08:00'")
    return value


def clock_time(value: str) -> dt.time:
    """The `dt.time` of a spec time of day (`'08:00'`, as `ClockTime` fields hold them), in UTC."""
    hours, minutes = _CLOCK_RE.match(value).groups()  # type: ignore[union-attr]  # validated on load
    return dt.time(int(hours), int(minutes), tzinfo=dt.UTC)


ClockTime = Annotated[str, AfterValidator(_clock_time)]


def _cron_schedule(value: str) -> str:
    problem = schedule_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A cron schedule Airflow takes (`ml_batch.schedules`), in UTC.
CronSchedule = Annotated[str, AfterValidator(_cron_schedule)]


class SourceSpec(_TableOrQuery):
    """Where feature rows come from; a run for day D reads rows with D <= date_column < D+1 (UTC).

    `updated_at_column` (a timestamp the loader bumps when it changes a row) lets reconcile notice changed
    rows, not only added and removed ones. A source that can say when a day is complete says so with
    `ready_query` (one boolean for `:day`) or `ready_asset` (an Airflow Asset its loader updates): see
    docs/completeness.md.
    """

    key: Identifier
    date_column: Identifier
    updated_at_column: Identifier | None = None
    ready_query: Annotated[str, AfterValidator(_ready_query)] | None = None
    ready_asset: Annotated[str, AfterValidator(_asset_uri)] | None = None

    @model_validator(mode="after")
    def _readiness_columns(self) -> SourceSpec:
        if self.updated_at_column is not None and self.updated_at_column in (self.key, self.date_column):
            raise ValueError(f"updated_at_column {self.updated_at_column!r} is the key or the date column")
        return self


class FeatureSpec(_Strict):
    """One model input, with the expectations validation checks it against."""

    name: Identifier
    type: Literal["numeric", "categorical"]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    # False: the day's null share of this feature is not held against its training share (validation's
    # max_null_share); it is still reported with the drift results.
    null_share_check: bool = True

    @model_validator(mode="after")
    def _expectations_fit_type(self) -> FeatureSpec:
        if self.type == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError(f"feature {self.name!r} is categorical: 'min'/'max' apply to numeric features only")
        if self.type == "numeric" and self.categories is not None:
            raise ValueError(f"feature {self.name!r} is numeric: 'categories' applies to categorical features only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} is greater than max {self.max}")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError(f"feature {self.name!r}: 'categories' has duplicates")
        return self


class LabelsSpec(_TableOrQuery):
    """Where labels come from and when they arrive.

    Without `date_column` the key identifies one event (an application, a flight): a label joins the one
    source row of its key, and ml-batch checks that the key is on one day only. With `date_column` (the
    label's event day or timestamp) labels are per entity and day (a customer, a store): a label joins the
    source row with the same key and the same UTC event day.
    """

    key: Identifier
    column: Identifier
    delay_days: int = Field(ge=0, le=3650)
    known_at_column: Identifier | None = None
    date_column: Identifier | None = None

    @model_validator(mode="after")
    def _columns_distinct(self) -> LabelsSpec:
        named = [self.key, self.column, self.known_at_column, self.date_column]
        used = [name for name in named if name is not None]
        if len(set(used)) != len(used):
            raise ValueError(f"key, column, known_at_column and date_column must be distinct columns, got {used}")
        return self


class ModelSpec(_Strict):
    """The estimator: a dotted scikit-learn class path and its parameters."""

    task: Literal["binary", "regression", "multiclass"] = "binary"
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimator")
    @classmethod
    def _dotted_path(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$", value):
            raise ValueError(f"{value!r} is not a dotted class path like 'sklearn.linear_model.LogisticRegression'")
        return value


class TrainingSpec(_Strict):
    """Training window, time-based holdout and the promotion gate."""

    window_days: int = Field(default=90, ge=2, le=3650)
    holdout_days: int = Field(default=14, ge=1, le=365)
    metric: Metric = "roc_auc"  # the task's own default when the spec names none (`ml_batch.tasks.DEFAULT_METRIC`)
    min_score: float | None = None
    min_improvement: float = Field(default=0.0, ge=0)
    schedule: CronSchedule = "@weekly"
    shadow_days: int = Field(default=0, ge=0, le=90)
    # A challenger is promoted only on this many shadow days with labels (its realized metric not worse than
    # the champion's on the same rows), and demoted once this many shadow days pass without that evidence.
    shadow_min_labelled_days: int = Field(default=3, ge=1, le=90)
    shadow_max_days: int = Field(default=90, ge=1, le=365)
    # "required": the champion moves only on a person's approval (the retraining DAG's `approval` task,
    # Airflow's Human-in-the-loop): a candidate that passed the gate (shadow_days 0), or a challenger that earned
    # its promotion in shadow; no answer within approval_timeout is a rejection (never an approval).
    approval: Literal["none", "required"] = "none"
    approval_timeout: Duration = "3d"
    min_class_rows: int = Field(default=1, ge=1)  # a multiclass class with fewer training rows fails training

    @model_validator(mode="after")
    def _holdout_inside_window(self) -> TrainingSpec:
        if self.holdout_days >= self.window_days:
            raise ValueError(
                f"holdout_days ({self.holdout_days}) must be smaller than window_days ({self.window_days})"
            )
        if self.shadow_days > 0 and self.shadow_max_days < self.shadow_days:
            raise ValueError(
                f"training.shadow_max_days ({self.shadow_max_days}) must be at least training.shadow_days "
                f"({self.shadow_days}): a challenger is demoted after shadow_max_days shadow days"
            )
        if duration_seconds(self.approval_timeout) < 60:
            raise ValueError(f"training.approval_timeout {self.approval_timeout!r}: expected at least 1m")
        return self


class ValidationSpec(_Strict):
    """Batch-level bounds, the quarantine threshold, and when a day counts as complete (docs/completeness.md).

    A day's rows are compared with the volume its recent history leads to expect (`ml_batch.run.completeness`):
    below `min_volume_ratio` or above `max_volume_ratio` times that, the day is not published (the daily DAG
    waits up to `wait_for_volume` for it to fill, re-checking every `recheck_every`). A feature null in more
    than `max_null_share` of the day's rows while its training share was below `reference_null_share` fails
    the day. Reconcile re-checks the last `reconcile_days` published days against the source.
    """

    min_rows: int = Field(default=1, ge=0)
    max_rows: int | None = Field(default=None, ge=1)
    max_quarantine_share: float = Field(default=0.05, ge=0, le=1)
    suite: str | None = None
    min_volume_ratio: float = Field(default=0.5, ge=0, le=1)
    max_volume_ratio: float | None = Field(default=3.0, gt=1)
    volume_history_weeks: int = Field(default=4, ge=1, le=52)
    wait_for_volume: Duration = "6h"
    recheck_every: Duration = "10m"
    max_null_share: float = Field(default=0.5, ge=0, le=1)
    reference_null_share: float = Field(default=0.05, ge=0, le=1)
    reconcile_days: int = Field(default=7, ge=0, le=90)

    @model_validator(mode="after")
    def _null_shares_ordered(self) -> ValidationSpec:
        if self.reference_null_share > self.max_null_share:
            raise ValueError(f"reference_null_share ({self.reference_null_share}) must be at most max_null_share "
                             f"({self.max_null_share})")
        if duration_seconds(self.recheck_every) < 1:
            raise ValueError(f"recheck_every {self.recheck_every!r}: expected at least 1s")
        return self

    def quarantine_exceeded(self, quarantined: int, day_rows: int) -> bool:
        """The one quarantine-share rule: a day may quarantine at most `max_quarantine_share` of its rows.

        `quarantined` counts the day's quarantined rows whatever their reasons (a row failing two checks is
        one row), so two checks failing on 4% of the rows each may quarantine 8% of the day: each passes on
        its own, the day does not (at the default 5%). Validation applies the rule early to one check's
        failing rows, which can only be fewer than the day's (a check failing on more than the share fails
        the day at once, before its rows are listed); publish applies it to the day's total. Exact on the
        share as written in the spec: 29 of 100 rows is exactly 0.29, not above it.
        """
        return Fraction(quarantined) > Fraction(str(self.max_quarantine_share)) * day_rows


class AlertAfterSpec(_Strict):
    """Sustained drift: the dataset-drift alert (and the drift Asset) fire when `days` of the last `of` drifted."""

    days: int = Field(default=2, ge=1, le=90)
    of: int = Field(default=3, ge=1, le=90)

    @model_validator(mode="after")
    def _days_within_of(self) -> AlertAfterSpec:
        if self.days > self.of:
            raise ValueError(f"days ({self.days}) must be at most of ({self.of}): K of the last M days, K <= M")
        return self


class DriftSpec(_Strict):
    """Effect-size thresholds that decide drift (p-values are reported, not used to decide).

    With `thresholds: calibrated` (the default) a statistic's threshold is the `calibration_quantile` of the
    values the reference's own days show against the rest of the reference, times `calibration_margin`
    (stored in the profile at training), and never below the fixed one; the fixed `*_threshold` values alone
    apply with `thresholds: fixed`, and to a profile trained on fewer than `calibration_min_days` days.

    `wasserstein_threshold` is the Wasserstein distance in units of the reference's standard deviation (a
    mean shift of 0.1 sd is 0.1), `multivariate_threshold` the day's PCA reconstruction error over the
    reference's (`ml_batch.monitoring.multivariate`). A feature is out of support when at least
    `out_of_support_share` of its non-null values lie outside the `support_quantiles` band of the training
    window's values (default: its minimum and maximum), or are categories never seen in it.
    The calibrated thresholds of the two statistics without a ceiling (Wasserstein, multivariate) are further
    multiplied by `unbounded_margin`: an ordinary new day exceeds the widest of N training days about once
    in N + 1, and without a ceiling nothing else stops it.
    """

    psi_threshold: float = Field(default=0.2, gt=0)
    ks_threshold: float = Field(default=0.1, gt=0, le=1)
    js_threshold: float = Field(default=0.1, gt=0, le=1)
    wasserstein_threshold: float = Field(default=0.2, gt=0)
    multivariate_threshold: float = Field(default=1.25, gt=1)
    out_of_support_share: float = Field(default=0.25, gt=0, le=1)
    support_quantiles: tuple[float, float] = (0.0, 1.0)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    bins: int = Field(default=10, ge=2, le=100)
    thresholds: Literal["calibrated", "fixed"] = "calibrated"
    calibration_quantile: float = Field(default=1.0, ge=0.5, le=1)
    calibration_margin: float = Field(default=1.0, ge=1, le=10)
    unbounded_margin: float = Field(default=1.25, ge=1, le=10)
    calibration_min_days: int = Field(default=7, ge=3, le=365)
    window_days: int = Field(default=1, ge=1, le=90)
    alert_after: AlertAfterSpec = AlertAfterSpec()
    share_basis: Literal["count", "importance"] = "count"

    @field_validator("support_quantiles")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low < 0.5 < high <= 1:
            raise ValueError(f"support_quantiles {list(value)}: expected [low, high] with 0 <= low < 0.5 < high <= 1")
        return value


class ScoringSpec(_Strict):
    """How a day is split for scoring: a fixed number of shards, or one shard per `rows_per_shard` rows."""

    shards: int | None = Field(default=None, ge=1, le=64)
    rows_per_shard: int = Field(default=500_000, ge=1_000)
    max_shards: int = Field(default=16, ge=1, le=64)


class PredictionsSpec(_Strict):
    """Where predictions are published, and the threshold that turns a probability into a label."""

    table: TableName
    threshold: float = Field(default=0.5, gt=0, lt=1)

    @field_validator("table")
    @classmethod
    def _room_for_partitions(cls, value: str) -> str:
        # Day partitions are named <table>_pYYYYMMDD and staging tables <table>__s_<10 hex>: keep them <= 63.
        if len(value.rpartition(".")[2]) > 48:
            raise ValueError(f"{value!r}: the table name (without schema) must be at most 48 characters")
        return value

    @property
    def schema_name(self) -> str | None:
        return self.table.rpartition(".")[0] or None

    @property
    def table_name(self) -> str:
        return self.table.rpartition(".")[2]

    def qualified(self, name: str) -> str:
        """`name` in the predictions table's schema (unqualified when the table is): where every object next
        to the predictions table lives."""
        return f"{self.schema_name}.{name}" if self.schema_name else name

    def partition(self, day: dt.date) -> str:
        """Day `day`'s partition of the predictions table, `<table>_pYYYYMMDD` (schema-qualified)."""
        return self.qualified(f"{self.table_name}_p{day:%Y%m%d}")

    @property
    def latest_view(self) -> str:
        """The `<table>_latest` view: each key's most recent prediction (schema-qualified)."""
        return self.qualified(f"{self.table_name}_latest")

    @property
    def key_index(self) -> str:
        """The predictions table's index on (key, partition_date) (schema-qualified)."""
        return self.qualified(f"{self.table_name}_key_idx")


class Spec(_Strict):
    """A whole model spec (one YAML file)."""

    name: str
    description: str = ""
    owner: str = "ml-batch"
    schedule: CronSchedule = "0 6 * * *"
    # The time of day (UTC) by which the day a scheduled run scores must be published (`ml_batch.monitoring.late`);
    # None: no deadline.
    publish_by: ClockTime | None = None
    start_date: dt.date = dt.date(2026, 1, 1)
    max_active_runs: int = Field(default=4, ge=1, le=64)
    source: SourceSpec
    features: list[FeatureSpec] = Field(min_length=1)
    labels: LabelsSpec
    model: ModelSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    predictions: PredictionsSpec

    @field_validator("name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not _MODEL_NAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a model name: expected lowercase letters, digits and underscores, "
                "starting with a letter, at most 41 characters (it becomes part of DAG ids and table names)"
            )
        return value

    @model_validator(mode="after")
    def _columns_distinct(self) -> Spec:
        names = [feature.name for feature in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features are listed more than once: {duplicates}")
        reserved = {self.source.key, self.source.date_column}
        clash = sorted(reserved.intersection(names))
        if clash:
            raise ValueError(f"features {clash} are the source's key or date column, not inputs")
        return self

    @model_validator(mode="before")
    @classmethod
    def _task_default_metric(cls, data: Any) -> Any:
        return with_task_default_metric(data)

    @model_validator(mode="after")
    def _training_fits_task(self) -> Spec:
        problem = task_problem(self.model.task, self.training.metric)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _shadow_period_can_see_labels(self) -> Spec:
        training, delay = self.training, self.labels.delay_days
        needed = delay + training.shadow_min_labelled_days
        if training.shadow_days > 0 and training.shadow_days < needed:
            raise ValueError(
                f"training.shadow_days ({training.shadow_days}) is shorter than labels.delay_days ({delay}) + "
                f"training.shadow_min_labelled_days ({training.shadow_min_labelled_days}): the labels of a shadow "
                f"day arrive {delay} days after it, so a challenger has its first labelled shadow day after "
                f"{delay + 1} shadow days and cannot be promoted on evidence before {needed}; "
                f"set shadow_days to at least {needed}"
                + ("" if training.shadow_max_days >= needed else f" (and shadow_max_days to at least {needed})")
            )
        return self

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def feature_schema(self) -> list[dict[str, str]]:
        """Names, order and types of the inputs: what a registered version records and is checked against."""
        return [{"name": feature.name, "type": feature.type} for feature in self.features]

    def sha256(self) -> str:
        """A stable hash of the spec's content (not of its formatting)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def estimator_class(self) -> type:
        """Import the estimator class; a wrong path is a SpecError naming it."""
        module_name, _, class_name = self.model.estimator.rpartition(".")
        try:
            estimator = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise SpecError(
                f"model {self.name!r}: model.estimator {self.model.estimator!r} cannot be imported ({exc})"
            ) from exc
        if not (isinstance(estimator, type) and hasattr(estimator, "fit")):
            raise SpecError(
                f"model {self.name!r}: model.estimator {self.model.estimator!r} is not an estimator class "
                "(expected a class with a fit method)"
            )
        return estimator


@dataclass(frozen=True)
class PinnedSpec:
    """A spec with the exact text it was parsed from and that text's sha256 (what a run pins)."""

    spec: Spec
    text: str
    sha256: str
    path: Path | None

    @classmethod
    def of(cls, spec: Spec | PinnedSpec) -> PinnedSpec:
        """`spec` pinned: as it is when it was read from a file, else (a spec built in code) by its canonical
        JSON, which parses back to the same spec (JSON is YAML)."""
        if isinstance(spec, PinnedSpec):
            return spec
        text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, indent=1)
        return cls(spec, text, hashlib.sha256(text.encode()).hexdigest(), None)


# libyaml's safe loader parses a spec ~10x faster than the pure-Python one: every task process parses the DAG
# file, and so every spec file, before it runs.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_spec(path: Path) -> Spec:
    """Load and validate one spec file."""
    return read_spec_file(path).spec


def parse_spec(text: str, origin: Path | str) -> Spec:
    """Validate a spec from its YAML `text`; errors name `origin` (the file, or where the text came from)."""
    try:
        raw = yaml.load(text, Loader=_SAFE_LOADER)  # a safe loader (libyaml's when available)
    except yaml.YAMLError as exc:
        raise SpecError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: expected a mapping of spec fields at the top level, got {type(raw).__name__}")
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{origin}: {format_validation_error(exc)}") from exc


def read_spec_file(path: Path) -> PinnedSpec:
    """One spec file read and validated, with its text; any problem is a SpecError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such spec file") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec file: {exc.strerror}") from exc
    return PinnedSpec(parse_spec(text, path), text, hashlib.sha256(text.encode()).hexdigest(), path)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: `field.path: message (got value)`."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against the spec reference)"
        elif error["type"] == "missing":
            message = "required field is missing"
        got = error.get("input")
        suffix = "" if error["type"] in {"missing"} or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"field '{where}': {message}{suffix}")
    return "; ".join(lines)
