"""What the api-server shows when a spec file is broken: the DAG processor's own path, end to end.

Each DAG file is parsed as the DAG processor parses it (`airflow.dag_processing.processor._parse_file`, in a
subprocess there, in this process here) and its result persisted as the processor manager persists it
(`DagFileProcessorManager.persist_parsing_result`) into Airflow's metadata database. The api-server lists the
DAGs that are not stale (`GET /api/v2/dags` excludes stale ones by default; the scheduler skips them too) and
the `import_error` rows. An import error marks every DAG of its file stale, which is why the invalid specs'
error is raised by `model_specs.py`, a file with no DAGs, and not by the files that hold the good DAGs.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import structlog
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.manager import DagFileProcessorManager
from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
from airflow.models import DagModel
from airflow.models.errors import ParseImportError
from airflow.utils.session import create_session
from sqlalchemy import select

from tests.dags.test_dag_integrity import DAGS_DIR, SPEC_ERRORS_FILE, _both_dags, _broken_spec, _write_spec

BUNDLE = "dags-folder"
DAG_FILES = ("batch_predict.py", "retrain.py", SPEC_ERRORS_FILE)


def _process_dags_folder(specs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse and persist every DAG file once, the DAG files reading their specs from `specs_dir`."""
    monkeypatch.setenv("ML_BATCH_SPECS_DIR", str(specs_dir))
    manager = DagFileProcessorManager(max_runs=1)
    for name in DAG_FILES:
        request = DagFileParseRequest(file=str(DAGS_DIR / name), bundle_path=DAGS_DIR, bundle_name=BUNDLE,
                                      callback_requests=[])
        result = _parse_file(request, structlog.get_logger())
        assert result is not None
        with create_session() as session:
            manager.persist_parsing_result(bundle_name=BUNDLE, bundle_version=None, version_data=None,
                                           parsing_result=result, run_duration=0.1, relative_fileloc=name,
                                           session=session)


def _listed_dags(models: set[str]) -> set[str]:
    """The DAGs of these models the api-server lists: not stale, no import error."""
    with create_session() as session:
        rows = session.scalars(select(DagModel).where(DagModel.dag_id.in_(_both_dags(*models))))
        return {row.dag_id for row in rows if not row.is_stale and not row.has_import_errors}


def _import_errors() -> dict[str, str]:
    with create_session() as session:
        rows = session.scalars(select(ParseImportError).where(ParseImportError.bundle_name == BUNDLE))
        return {str(row.filename): str(row.stacktrace) for row in rows}


@pytest.fixture()
def bundle(airflow_db: None) -> None:
    DagBundlesManager().sync_bundles_to_db()  # the processor manager does this before it parses a bundle


def test_a_broken_spec_is_an_import_error_and_the_other_models_stay_listed(
    bundle: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:8]  # the metadata database lives for the whole test session
    good = {f"good_a_{suffix}", f"good_b_{suffix}"}
    for model in sorted(good):
        _write_spec(tmp_path, model)
    broken = _broken_spec(tmp_path, f"broken_{suffix}")

    _process_dags_folder(tmp_path, monkeypatch)

    assert _listed_dags(good | {f"broken_{suffix}"}) == _both_dags(*good)
    errors = _import_errors()
    assert set(errors) & set(DAG_FILES) == {SPEC_ERRORS_FILE}
    assert f"{broken}: field 'source.date_column': required field is missing" in errors[SPEC_ERRORS_FILE]

    _write_spec(tmp_path, f"broken_{suffix}")  # fixed: the next parse clears the error and adds its DAGs
    _process_dags_folder(tmp_path, monkeypatch)

    assert _listed_dags(good | {f"broken_{suffix}"}) == _both_dags(*good, f"broken_{suffix}")
    assert set(_import_errors()) & set(DAG_FILES) == set()
