"""The outcome of validating a batch, and GX's result as it is saved: a JSON file per shard and a stored report.

GX is the validator of record: its result is saved per shard, in the file (`save_result`) and in the
database (`store_result`, which the UI reads). The saved result is the pass-1 result with the failing
expectations' entries replaced by their pass-2/3 entries; `meta.ml_batch` says so. It spells NaN and
+-Infinity "NaN", "inf", "-inf" (GX's own JSON has null for NaN and a bare, invalid Infinity).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ml_batch.files import write_atomic
from ml_batch.ops import reports
from ml_batch.spec import Spec
from ml_batch.validation.interpret import Findings
from ml_batch.validation.reasons import special_text

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )

logger = logging.getLogger(__name__)

_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ValidationOutcome:
    """What validating one batch found.

    Attributes:
        rows: rows in the validated batch, when GX counted them (it does when something failed).
        batch_failures: one human-readable line per failure that fails the whole batch.
        row_reasons: entity key -> every reason that key's row(s) failed; only failing rows. Every row with
            such a key is quarantined (two rows sharing a duplicated key are both quarantined).
        result_json: the GX validation result (`to_json_dict()`), to be saved with `save_result`.
        passes: the GX calls made: 1 when everything passed, up to 3.
    """

    rows: int | None
    batch_failures: list[str]
    row_reasons: dict[Any, list[str]]
    result_json: dict[str, Any]
    passes: int = 1
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def quarantined_keys(self) -> int:
        """Keys whose rows are to be quarantined."""
        return len(self.row_reasons)

    @property
    def passed_batch(self) -> bool:
        """True when no batch-level expectation failed."""
        return not self.batch_failures


@dataclass(frozen=True)
class RunFacts:
    """What the saved result records about how it was made, besides GX's results."""

    suite_name: str
    relation: str
    gx_version: str
    passes: int


def result_document(
    spec: Spec, screen: list[ExpectationValidationResult], details: dict[int, ExpectationValidationResult],
    findings: Findings, facts: RunFacts,
) -> dict[str, Any]:
    """The saved GX result: each expectation's pass-1 result, or its pass-2/3 one when it failed.

    Args:
        spec: the model spec (its name and key are recorded).
        screen: the pass-1 results, in the suite's order.
        details: index -> the pass-2/3 result of a failed screen.
        findings: what the results mean (`ml_batch.validation.interpret`).
        facts: the suite, the relation, the GX version and how many GX calls were made.

    Returns:
        GX's validation result JSON, with `meta.ml_batch` explaining ml-batch's part.
    """
    results = [result_entry(details.get(index, res)) for index, res in enumerate(screen)]
    key = spec.source.key
    return {
        "success": not findings.batch_failures and not findings.row_reasons,
        "results": results,
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": sum(1 for r in results if r["success"]),
            "unsuccessful_expectations": sum(1 for r in results if not r["success"]),
        },
        "meta": {
            "ml_batch": {
                "model": spec.name,
                "key_column": key,
                "rows": findings.rows,
                "gx_passes": facts.passes,
                "results": "pass 1 (BOOLEAN_ONLY) for passing expectations, pass 2/3 (SUMMARY/COMPLETE) for "
                           "failing ones",
                "unexpected_index_list": f"the failing rows' {key} and values (unexpected_index_column_names)",
                "batch_failures": findings.batch_failures,
                "quarantined_keys": len(findings.row_reasons),
            },
            "great_expectations_version": facts.gx_version,
            "relation": facts.relation,
        },
        "suite_name": facts.suite_name,
    }


def result_entry(res: ExpectationValidationResult) -> dict[str, Any]:
    """GX's JSON of one result, except that failing NaN and +-Infinity values read "NaN", "inf", "-inf".

    GX writes a NaN as null (the same as a NULL) and an infinity as a bare `Infinity`, which is not JSON.
    """
    from great_expectations.util import convert_to_json_serializable

    payload: dict[str, Any] = res.to_json_dict()
    if res.result:
        payload["result"] = convert_to_json_serializable(_specials_as_text(res.result))
    return dict(_specials_as_text(payload))  # infinite bounds of the expectation's kwargs


def _specials_as_text(value: Any) -> Any:
    """`value` (nested dicts and lists) with every NaN and +-Infinity as its text; anything else as it is."""
    if isinstance(value, dict):
        return {key: _specials_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_specials_as_text(item) for item in value]
    return special_text(value) or value


def save_result(outcome: ValidationOutcome, folder: Path, model: str, day: datetime.date, run_id: str) -> Path:
    """Write the GX result JSON to `folder/model/YYYY-MM-DD/<run_id>.json`, atomically; return its path.

    `model` and `run_id` are made safe as file names (anything but letters, digits, '.', '_' and '-'
    becomes '_'), so an Airflow run id like `scheduled__2024-01-01T06:00:00+00:00` can be used as is.
    Writing the same run again replaces the file. The write is `ml_batch.files.write_atomic`'s (its mode
    follows the umask).

    Raises:
        ValueError: `model` or `run_id` has nothing left once made safe.
    """
    target = folder / _safe_name(model, "model") / day.isoformat() / f"{_safe_name(run_id, 'run_id')}.json"
    write_atomic(target, result_text(outcome))
    logger.info("saved validation result to %s", target)
    return target


def result_text(outcome: ValidationOutcome) -> str:
    """The GX result as the JSON text both the file and the database hold."""
    return json.dumps(outcome.result_json, indent=2, sort_keys=True, default=str)


def store_result(engine: sa.Engine, outcome: ValidationOutcome, model: str, day: datetime.date, run_id: str,
                 shard: int) -> None:
    """Store the GX result of one shard of a run in the database (`reports`), replacing a retry's.

    The UI plugin reads it there: it has no access to a worker's `results_dir`.
    """
    with engine.begin() as conn:
        reports.store(conn, model=model, day=day, kind=reports.VALIDATION_RESULT, run_id=run_id,
                      part=f"s{shard}", content=result_text(outcome))


def _safe_name(value: str, what: str) -> str:
    safe = _SAFE_NAME_RE.sub("_", value).strip("._")
    if not safe:
        raise ValueError(f"{what} {value!r} cannot be used as a file name: nothing left after making it safe")
    return safe
