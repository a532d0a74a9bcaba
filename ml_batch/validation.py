"""Validate a batch of feature rows with Great Expectations (GX Core 1.x) before it is scored.

The suite is generated from the model spec (types, nullability, ranges, categories, the entity key, the
row count and the columns) and can be extended with a hand-written GX suite JSON named by
`validation.suite`. GX is the validator of record: its result is saved as a JSON file per run.

Failures come in two kinds:

* **batch failures** (too few rows, a missing column, a column of the wrong dtype, a null key, an
  expectation GX could not evaluate) fail the whole batch; the caller decides to raise;
* **row failures** (a value out of range, null or unknown) quarantine the rows, each mapped back to its
  entity key with every reason it failed; the rest of the batch is scored.

How GX is run, and why: one `Batch.validate(suite)` call per frame evaluates every expectation in one
metric graph, with result format COMPLETE. GX's cost is almost all fixed overhead per expectation and per
call (building the metric graph: ~0.25 s for the demo's 28 expectations, ~0.5 s for 49); the pandas work
is small, so COMPLETE costs about what SUMMARY or BOOLEAN_ONLY does, and a two-pass scheme (SUMMARY, then
COMPLETE for the failing expectations) would only pay the overhead twice. Measured on a loaded 2-core box:
100,000 rows x 11 features in ~0.3 s (1% failing rows: ~0.4 s); 1,000,000 rows x 20 features in 1.2 s as
one frame, 2.7 s in 250k-row chunks, 5.8 s in 100k-row chunks -- so validate big chunks, build the suite
once (`build_suite(..., check_row_count=False)` for chunks, checking the total row count once).

Failing rows are identified by `unexpected_index_list` on a frame with a fresh 0..n-1 index, i.e. by row
*position*, and mapped to keys with numpy here. `unexpected_index_column_names=[key]` is not used: GX 1.24
then looks every failing row up with `DataFrame.at` in a Python loop (+0.15-0.3 s per 5,000 failing
rows), and a missing key column would turn every row-level expectation into an exception. The saved
result therefore lists row positions within the validated frame; `meta.ml_batch` in the JSON says so and
names the key column.

Numeric features must arrive as numeric dtypes: an object column is type-checked value by value and only
`int`/`float`/`bool` values pass (a `decimal.Decimal` from a PostgreSQL NUMERIC fails), so the loader
casts them.

GX is imported lazily (it takes seconds to import), so importing this module at DAG-parse time is cheap.
GX 1.24 contains no usage-analytics client any more (no `great_expectations.analytics`, no posthog), and an
ephemeral context with in-memory stores makes no network call; as belt and braces for older 1.x releases
`GX_ANALYTICS_ENABLED` is set to false before GX is first imported and the context is created with
`analytics_enabled=False`. GX's "Calculating Metrics" tqdm progress bars are switched off in the
context config, and its logger is set to WARNING (it logs hundreds of INFO lines on import).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_batch.errors import SpecError
from ml_batch.spec import Spec

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation import Expectation

logger = logging.getLogger(__name__)

# dtype names GX accepts as numeric: numpy dtypes, pandas nullable dtypes and, for object columns (checked
# value by value), the Python types int and float. bool counts as numeric, as it does for pandas.
NUMERIC_TYPES: tuple[str, ...] = (
    "int", "float", "bool",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64", "boolean",
)  # fmt: skip

_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    # the query string repeats every failing index; the index list already holds them
    "return_unexpected_index_query": False,
}
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_LISTED = 10


@dataclass(frozen=True)
class ValidationOutcome:
    """What validating one frame found.

    Attributes:
        rows: rows in the validated frame.
        batch_failures: one human-readable line per failure that fails the whole batch.
        row_reasons: entity key -> every reason that key's row(s) failed; only failing rows.
        result_json: the GX validation result (`to_json_dict()`), to be saved with `save_result`.
        quarantined_rows: rows whose key is in `row_reasons` (two rows sharing a duplicated key count
            twice); None means one row per key.
    """

    rows: int
    batch_failures: list[str]
    row_reasons: dict[Any, list[str]]
    result_json: dict[str, Any]
    quarantined_rows: int | None = None

    @property
    def quarantined(self) -> int:
        """Rows to quarantine."""
        return len(self.row_reasons) if self.quarantined_rows is None else self.quarantined_rows

    @property
    def quarantine_share(self) -> float:
        """Share of the frame's rows that are quarantined (0.0 for an empty frame)."""
        return self.quarantined / self.rows if self.rows else 0.0

    @property
    def passed_batch(self) -> bool:
        """True when no batch-level expectation failed."""
        return not self.batch_failures


def suite_path(spec: Spec, spec_dir: Path) -> Path | None:
    """The extra suite file named by `validation.suite`, resolved against the spec's folder."""
    if spec.validation.suite is None:
        return None
    path = Path(spec.validation.suite)
    return path if path.is_absolute() else spec_dir / path


def build_suite(
    spec: Spec, extra_suite: Path | None = None, *, check_row_count: bool = True, check_types: bool = True
) -> gx.ExpectationSuite:
    """Build the expectation suite of a model: generated from its spec, plus an optional suite file.

    Args:
        spec: the model spec.
        extra_suite: a GX 1.x suite JSON (`{"name": ..., "expectations": [{"type": ..., "kwargs": ...}]}`)
            whose expectations are added. When None, an absolute `validation.suite` of the spec is used; a
            relative one must be resolved by the caller with `suite_path`.
        check_row_count: include `expect_table_row_count_to_be_between`; switch it off when validating a
            batch chunk by chunk and check the total row count once.
        check_types: include the per-column type expectations. Chunks of one Arrow stream share one
            schema, so after the first chunk passed them they cannot fail; leaving them out of later chunks
            saves ~30% of GX's per-call cost.

    Returns:
        The suite (not registered in any context).

    Raises:
        SpecError: the suite file is missing or malformed, or a relative `validation.suite` was not resolved.
    """
    gx = _import_gx()
    expectations = _spec_expectations(spec, check_row_count=check_row_count, check_types=check_types)
    if extra_suite is None and spec.validation.suite is not None:
        if not Path(spec.validation.suite).is_absolute():
            raise SpecError(
                f"model {spec.name!r}: validation.suite {spec.validation.suite!r} is relative to the spec's "
                "folder; resolve it with ml_batch.validation.suite_path(spec, spec_dir) and pass extra_suite"
            )
        extra_suite = Path(spec.validation.suite)
    if extra_suite is not None:
        expectations.extend(_load_suite_file(extra_suite))
    return gx.ExpectationSuite(name=f"ml_batch.{spec.name}", expectations=expectations)


def validate_frame(spec: Spec, frame: pd.DataFrame, suite: gx.ExpectationSuite | None = None) -> ValidationOutcome:
    """Run the suite on a frame with GX and map failing rows back to their entity keys.

    Args:
        spec: the model spec (its `source.key` names the key column).
        frame: the feature rows; its index is ignored.
        suite: the suite to run; built from the spec when None (build it once when validating chunks).

    Returns:
        The outcome; the caller decides whether batch failures or the quarantine share fail the run.
    """
    started = time.perf_counter()
    if suite is None:
        suite = build_suite(spec)
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        # GX reports failing rows by index label; positions make them unambiguous (cheap under CoW).
        frame = frame.reset_index(drop=True)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format=_RESULT_FORMAT)
    _release(batch)
    outcome = _interpret(spec, frame, result)
    logger.info(
        "validated %d rows against %d expectations in %.2fs: %d batch failures, %d rows quarantined",
        outcome.rows, len(suite.expectations), time.perf_counter() - started,
        len(outcome.batch_failures), outcome.quarantined,
    )  # fmt: skip
    return outcome


def save_result(outcome: ValidationOutcome, folder: Path, model: str, day: datetime.date, run_id: str) -> Path:
    """Write the GX result JSON to `folder/model/YYYY-MM-DD/<run_id>.json`, atomically; return its path.

    `model` and `run_id` are made safe as file names (anything but letters, digits, '.', '_' and '-'
    becomes '_'), so an Airflow run id like `scheduled__2024-01-01T06:00:00+00:00` can be used as is.
    Writing the same run again replaces the file.
    """
    target_dir = folder / _safe_name(model, "model") / day.isoformat()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{_safe_name(run_id, 'run_id')}.json"
    handle, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(outcome.result_json, stream, indent=2, sort_keys=True, default=str)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("saved validation result to %s", target)
    return target


# --- GX set-up -------------------------------------------------------------------------------------


def _import_gx() -> Any:
    # Older GX 1.x releases read this when great_expectations is first imported; 1.24 has no analytics.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX logs ~200 INFO lines on import (docs-decorator and registry chatter), which would flood task logs;
    # keep its warnings unless someone configured the logger on purpose.
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    import great_expectations

    return great_expectations


def _release(batch: Any) -> None:
    """Drop GX's cached reference to the validated frame.

    GX keeps each batch's DataFrame in its execution engine's cache, inside reference cycles that only a
    full garbage collection frees; clearing the cache frees the frame at once, so memory stays flat
    across chunks instead of growing by one chunk per call.
    """
    engine = getattr(getattr(batch, "data", None), "execution_engine", None)
    manager = getattr(engine, "batch_manager", None)
    if manager is not None and hasattr(manager, "reset_batch_cache"):
        manager.reset_batch_cache()
    cache = getattr(engine, "batch_data_cache", None) if engine is not None else None
    if isinstance(cache, dict):
        cache.clear()


def _batch_definition() -> BatchDefinition:
    """A whole-dataframe batch definition in a fresh ephemeral, offline context (~10 ms)."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    asset = context.data_sources.add_pandas(name="ml_batch").add_dataframe_asset(name="frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


# --- building the suite ----------------------------------------------------------------------------


def _spec_expectations(spec: Spec, *, check_row_count: bool, check_types: bool = True) -> list[Expectation]:
    import great_expectations.expectations as gxe

    meta = {"source": f"spec {spec.name}"}
    key = spec.source.key
    columns = [key, spec.source.date_column, *spec.feature_names]
    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=False, meta=meta),
        gxe.ExpectColumnValuesToNotBeNull(column=key, meta=meta),
        gxe.ExpectColumnValuesToBeUnique(column=key, meta=meta),
    ]
    if check_row_count:
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=spec.validation.min_rows, max_value=spec.validation.max_rows, meta=meta
            )
        )
    for feature in spec.features:
        if feature.type == "numeric":
            if check_types:
                expectations.append(
                    gxe.ExpectColumnValuesToBeInTypeList(
                        column=feature.name, type_list=list(NUMERIC_TYPES), meta=meta
                    )
                )
            if feature.min is not None or feature.max is not None:
                expectations.append(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=feature.name, min_value=feature.min, max_value=feature.max, meta=meta
                    )
                )
        elif feature.categories is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(column=feature.name, value_set=list(feature.categories), meta=meta)
            )
        if not feature.nullable:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=feature.name, meta=meta))
    return expectations


def _load_suite_file(path: Path) -> list[Expectation]:
    from great_expectations.exceptions import ExpectationNotFoundError, GreatExpectationsError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such expectation suite file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the expectation suite file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a JSON object with 'name' and 'expectations', got {type(raw).__name__}")
    entries = raw.get("expectations")
    if not isinstance(entries, list):
        raise SpecError(f"{path}: 'expectations' must be a list of {{'type': ..., 'kwargs': {{...}}}} objects")
    meta_source = {"source": f"suite {path.name}"}
    expectations: list[Expectation] = []
    for number, entry in enumerate(entries):
        where = f"{path}: expectations[{number}]"
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: expected an object with 'type' and 'kwargs', got {type(entry).__name__}")
        if "expectation_type" in entry and "type" not in entry:
            raise SpecError(f"{where}: 'expectation_type' is the GX 0.x format; GX 1.x calls it 'type'")
        kind, kwargs, meta = entry.get("type"), entry.get("kwargs", {}), entry.get("meta") or {}
        if not isinstance(kind, str) or not kind.startswith("expect_"):
            raise SpecError(f"{where}: 'type' must name an expectation like 'expect_column_values_to_match_regex', "
                            f"got {kind!r}")  # fmt: skip
        if not isinstance(kwargs, dict) or not isinstance(meta, dict):
            raise SpecError(f"{where} ({kind}): 'kwargs' and 'meta' must be objects")
        try:
            configuration = ExpectationConfiguration(
                type=kind, kwargs=kwargs, meta={**meta_source, **meta}, notes=entry.get("notes")
            )
            expectations.append(configuration.to_domain_obj())
        except ExpectationNotFoundError as exc:
            raise SpecError(f"{where}: unknown expectation type {kind!r} ({exc.message})") from exc
        except GreatExpectationsError as exc:
            raise SpecError(f"{where} ({kind}): invalid expectation: {exc.message}") from exc
        except (ValueError, TypeError) as exc:  # pydantic (v1) ValidationError is a ValueError
            problem = " ".join(str(exc).split())
            raise SpecError(f"{where} ({kind}): invalid kwargs {kwargs}: {problem}") from exc
    logger.info("loaded %d expectations from %s", len(expectations), path)
    return expectations


# --- reading the result ----------------------------------------------------------------------------


def _interpret(spec: Spec, frame: pd.DataFrame, result: ExpectationSuiteValidationResult) -> ValidationOutcome:
    key = spec.source.key
    present = set(frame.columns)
    key_is_null = pd.isna(frame[key]).to_numpy() if key in present else None
    batch_failures: list[str] = []
    reported_missing: set[str] = set()
    reasons_by_position: dict[int, list[str]] = {}
    null_key_rows = 0  # failing rows without a key: they cannot be quarantined
    key_nulls_reported = False

    # table-level results first, so a missing column is reported once, by the columns check
    failed = [(res.expectation_config, res) for res in result.results if res.expectation_config and not res.success]
    failed.sort(key=lambda pair: not pair[0].type.startswith("expect_table_"))
    for config, res in failed:
        kind, kwargs = config.type, dict(config.kwargs)
        columns = _columns_of(kwargs)
        details = res.result or {}
        errors = _exception_messages(res)
        if any(c not in present for c in columns):
            missing = [c for c in columns if c not in present and c not in reported_missing]
            batch_failures.extend(f"{column}: column is missing (needed by {kind})" for column in missing)
            reported_missing.update(missing)
        elif errors:
            batch_failures.append(f"{_label(columns)}{kind} could not be evaluated: {'; '.join(errors)}")
        elif "unexpected_index_list" in details and key_is_null is not None:
            failing = np.asarray(details["unexpected_index_list"], dtype=np.intp)
            if columns == [key] and kind == "expect_column_values_to_not_be_null":
                batch_failures.append(
                    f"{key}: {len(failing)} rows have a null key ({kind}); they cannot be quarantined by key"
                )
                key_nulls_reported = True
                continue
            with_key = failing[~key_is_null[failing]]
            null_key_rows += len(failing) - len(with_key)
            text = f"{_label(columns)}{kind}{_detail(kind, kwargs, key)}"
            for position, shown in zip(with_key.tolist(), _got(frame, columns, with_key), strict=True):
                reasons = reasons_by_position.setdefault(position, [])
                reason = f"{text}, got {shown}" if shown else text
                if reason not in reasons:
                    reasons.append(reason)
        else:
            line = _batch_failure(kind, columns, kwargs, details, key, reported_missing)
            if line:
                batch_failures.append(line)

    if null_key_rows and not key_nulls_reported:  # only when a custom suite does not check the key
        batch_failures.append(f"{key}: {null_key_rows} failing rows have a null key and cannot be quarantined")
    row_reasons = _reasons_by_key(frame, key, reasons_by_position)
    result_json: dict[str, Any] = result.to_json_dict()
    result_json.setdefault("meta", {})["ml_batch"] = {
        "model": spec.name,
        "key_column": key,
        "rows": len(frame),
        "unexpected_index_list": "row positions (0-based) within the validated frame",
        "batch_failures": batch_failures,
        "quarantined_keys": len(row_reasons),
    }
    return ValidationOutcome(
        rows=len(frame),
        batch_failures=batch_failures,
        row_reasons=row_reasons,
        result_json=result_json,
        quarantined_rows=len(reasons_by_position),
    )


def _batch_failure(
    kind: str, columns: list[str], kwargs: dict[str, Any], details: dict[str, Any], key: str, reported: set[str]
) -> str | None:
    """The line for a failed table-level (or otherwise unmappable) expectation; None if already reported."""
    if kind == "expect_table_columns_to_match_set":
        mismatched = (details.get("details") or {}).get("mismatched") or {}
        absent = [c for c in mismatched.get("missing", []) if c not in reported]
        reported.update(absent)
        parts = [f"missing columns {absent}"] if absent else []
        if mismatched.get("unexpected"):
            parts.append(f"unexpected columns {mismatched['unexpected']}")
        return f"{kind}: {', '.join(parts)}" if parts else None
    if kind == "expect_table_row_count_to_be_between":
        bounds = _between(kwargs.get("min_value"), kwargs.get("max_value"))
        return f"{kind}: {details.get('observed_value')} rows, expected {bounds}"
    if "unexpected_count" in details:
        observed = f"{details['unexpected_count']} unexpected values"
    else:
        observed = f"observed {_value(details.get('observed_value'))}"
    return f"{_label(columns)}{kind}{_detail(kind, kwargs, key)}: {observed}"


def _reasons_by_key(frame: pd.DataFrame, key: str, reasons_by_position: dict[int, list[str]]) -> dict[Any, list[str]]:
    """Merge the reasons of rows sharing a key; each key's reasons sorted (by column, as they start with it)."""
    positions = np.fromiter(sorted(reasons_by_position), dtype=np.intp, count=len(reasons_by_position))
    row_reasons: dict[Any, list[str]] = {}
    for position, value in zip(positions.tolist(), frame[key].take(positions).tolist(), strict=True):
        merged = row_reasons.setdefault(_native(value), [])
        merged.extend(r for r in reasons_by_position[position] if r not in merged)
    for reasons in row_reasons.values():
        reasons.sort()
    return row_reasons


def _label(columns: Sequence[str]) -> str:
    return f"{', '.join(columns)}: " if columns else ""


def _columns_of(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs and "column_B" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list") or [])


def _exception_messages(res: ExpectationValidationResult) -> list[str]:
    """GX 1.24 puts one dict per failed metric in `exception_info` (or a flat dict when none failed)."""
    info = res.exception_info or {}
    entries: Iterable[Any] = [info] if "raised_exception" in info else info.values()
    messages = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "unknown error")
            if message not in messages:
                messages.append(message)
    return messages


def _detail(kind: str, kwargs: dict[str, Any], key: str) -> str:
    """The expectation's parameters, for a reason line: ' (min 0, max 100)'."""
    if kind == "expect_column_values_to_be_between":
        return f" (min {_bound(kwargs.get('min_value'))}, max {_bound(kwargs.get('max_value'))})"
    if kind == "expect_column_values_to_be_in_set":
        return f" (allowed: {_listing(kwargs.get('value_set') or [])})"
    if kind == "expect_column_values_to_be_in_type_list":
        types = kwargs.get("type_list") or []
        return " (numeric types)" if list(types) == list(NUMERIC_TYPES) else f" (types: {_listing(types)})"
    if kind == "expect_column_values_to_be_unique":
        return " (key not unique)" if kwargs.get("column") == key else ""
    skip = {"column", "column_A", "column_B", "column_list", "batch_id", "result_format", "catch_exceptions"}
    shown = [
        f"{name} {_bound(value) if isinstance(value, float) else _value(value)}"
        for name, value in kwargs.items()
        if name not in skip and value is not None
    ]
    return f" ({', '.join(shown)})" if shown else ""


def _got(frame: pd.DataFrame, columns: Sequence[str], positions: np.ndarray) -> list[str]:
    """The failing rows' values, one string per row; fetched per column, not per row (fast)."""
    if not columns:
        return [""] * len(positions)
    values = [frame[column].take(positions).tolist() for column in columns]
    if len(columns) == 1:
        return [_value(value) for value in values[0]]
    return [
        ", ".join(f"{column}={_value(value)}" for column, value in zip(columns, row, strict=True))
        for row in zip(*values, strict=True)
    ]


def _between(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"between {_bound(low)} and {_bound(high)}"
    if low is not None:
        return f"at least {_bound(low)}"
    return f"at most {_bound(high)}" if high is not None else "any number"


def _bound(value: Any) -> str:
    value = _native(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "none" if value is None else str(value)


def _value(value: Any) -> str:
    value = _native(value)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


def _listing(values: Sequence[Any]) -> str:
    shown = ", ".join(_value(v) for v in list(values)[:_MAX_LISTED])
    return shown if len(values) <= _MAX_LISTED else f"{shown}, ... ({len(values)} in all)"


def _native(value: Any) -> Any:
    """numpy scalars -> Python scalars, so keys and messages read as plain values."""
    return value.item() if isinstance(value, np.generic) else value


def _safe_name(value: str, what: str) -> str:
    safe = _SAFE_NAME_RE.sub("_", value).strip("._")
    if not safe:
        raise ValueError(f"{what} {value!r} cannot be used as a file name: nothing left after making it safe")
    return safe
