"""The pages' app as the api-server serves it: Airflow's authorization and ml-batch's database.

A FastAPI app mounted by a plugin gets no authentication from Airflow, so every page depends on the API's
own security dependencies: `requires_access_view(AccessView.PLUGINS)` for all pages, and read access to the
runs of `batch_predict_<model>` (the auth manager's `is_authorized_dag("GET", DagAccessEntity.RUN)`, what
`requires_access_dag` checks) for the pages of a model; the index lists only the models the user may read
so. Raw values (quarantined rows, GX failing values) need edit access to the model's DAG
(`is_authorized_dag("PUT")`: SimpleAuthManager's user role and above; a viewer sees reasons and counts). A
caller authenticates as with the REST API: a bearer token from `/auth/token`, or the UI's `_token` cookie,
which the browser sends with the iframe's same-origin requests.

The pages read ml-batch's database through two engines, each made in the api-server on its first use (never
at import). The reader, for every page, is the UI role's: the Airflow connection `ml_batch_ui`
(ML_BATCH_UI_CONN_ID), else ML_BATCH_UI_DATABASE_URL, a role granted by `ml-batch db grant-ui ROLE`. The
owner's, for an editor's raw quarantined rows only, is the Airflow connection `ml_batch_db` (ML_BATCH_CONN_ID),
else ML_BATCH_DATABASE_URL. With no UI role configured, the pages read as the owner (a warning says so and
names the deployment step).

The index's health column needs the specs: the api-server's specs folder (`Settings.from_env().specs_dir`, as
the DAG files read it), scanned on each request that needs it (`server_specs`). A run Airflow started links
to its page in Airflow's UI, `/dags/batch_predict_<model>/runs/<run_id>` (`airflow_run_link`).

Imported only in the api-server, on the first request (`ml_batch.airflow.ui_plugin` keeps plugin loading light).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_view
from airflow.models.dag import DagModel
from fastapi import FastAPI, HTTPException, status

from ml_batch.airflow.runtime import conn_id
from ml_batch.config import UI_DATABASE_URL_ENV, Settings
from ml_batch.db.engine import make_engine
from ml_batch.run.runs import AIRFLOW_RUN_TYPES
from ml_batch.spec_folder import SpecScan, scan_specs
from ml_batch.ui import URL_PREFIX
from ml_batch.ui.app import RunLink, create_app

logger = logging.getLogger(__name__)

DAG_ID_PREFIX = "batch_predict_"
DEFAULT_UI_CONN_ID = "ml_batch_ui"
UI_CONN_ID_ENV = "ML_BATCH_UI_CONN_ID"

view_access = requires_access_view(AccessView.PLUGINS)
#: The run types of runs Airflow started (the others, `cli` and `reconcile`, have no Airflow run to link to).
AIRFLOW_STARTED = frozenset(AIRFLOW_RUN_TYPES.values())


def _authorized(user: BaseUser, model: str, method: ResourceMethod, entity: DagAccessEntity | None) -> bool:
    """Whether the auth manager lets `user` do `method` on `entity` of `batch_predict_<model>` (its team's)."""
    dag_id = f"{DAG_ID_PREFIX}{model}"
    return get_auth_manager().is_authorized_dag(
        method=method, access_entity=entity, details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user)


def model_access(model: str, user: GetUserDep) -> None:
    """Read access to the runs of the model's DAG, `batch_predict_<model>` (403 otherwise)."""
    if not _authorized(user, model, "GET", DagAccessEntity.RUN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


def readable_models(user: GetUserDep) -> Callable[[Sequence[str]], set[str]]:
    """The models whose pages `user` may read (`model_access`), of some model names."""
    return lambda models: {m for m in models if _authorized(user, m, "GET", DagAccessEntity.RUN)}


def raw_access(model: str, user: GetUserDep) -> bool:
    """Whether `user` may see the model's raw values: edit access to its DAG (`PUT`, as Airflow's own
    `requires_access_dag(method="PUT")` for editing a DAG)."""
    return _authorized(user, model, "PUT", None)


def database_url(connection_id: str) -> str | None:
    """The SQLAlchemy URL of an Airflow connection, read in the api-server (which has the metadata database).

    `airflow.sdk.BaseHook.get_connection` needs a task's supervisor; the api-server reads connections with
    the core model, through the secrets backends (environment variables first, then the metadata database).
    """
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    from ml_batch.airflow.runtime import url_of

    try:
        conn = Connection.get_connection_from_secrets(connection_id)
    except AirflowNotFoundException:
        return None
    return url_of(conn)


def ui_conn_id() -> str:
    """The Airflow connection of the UI role: `ml_batch_ui`, or the one named by ML_BATCH_UI_CONN_ID."""
    return os.environ.get(UI_CONN_ID_ENV) or DEFAULT_UI_CONN_ID


def server_engine() -> sa.Engine:
    """ml-batch's engine in the api-server (the owner's): the Airflow connection, else ML_BATCH_DATABASE_URL."""
    settings = Settings.from_env()
    url = database_url(conn_id())
    if url is None:
        logger.info("no Airflow connection %r: the ml-batch pages use ML_BATCH_DATABASE_URL", conn_id())
        return make_engine(settings, start=False)
    logger.info("the ml-batch pages read the database of the Airflow connection %r", conn_id())
    return make_engine(replace(settings, database_url=url), start=False)


def reader_engine() -> sa.Engine:
    """The engine the pages read through: the UI role's (the Airflow connection `ui_conn_id()`, else
    ML_BATCH_UI_DATABASE_URL), or, when neither is set, the owner's (`server_engine`: the same engine, made
    once) with a warning naming the deployment step."""
    settings = Settings.from_env()
    url = database_url(ui_conn_id())
    if url is None and settings.ui_database_url is None:
        _warn_reading_as_owner(ui_conn_id())
        return server_engine()
    logger.info("the ml-batch pages read as the UI role of %s",
                f"the Airflow connection {ui_conn_id()!r}" if url is not None else UI_DATABASE_URL_ENV)
    return make_engine(replace(settings, database_url=url or settings.ui_database_url), start=False)


@cache  # once per process (and connection id), however often the engine is retried
def _warn_reading_as_owner(connection_id: str) -> None:
    logger.warning("no Airflow connection %r and no %s: the ml-batch pages read as the owner of ml-batch's "
                   "schema (artifacts and raw rows included); create a LOGIN role, run `ml-batch db grant-ui "
                   "ROLE` and define the connection %r as that role (docs/operations.md)", connection_id,
                   UI_DATABASE_URL_ENV, connection_id)


def server_specs() -> SpecScan:
    """The api-server's specs folder (`Settings.from_env().specs_dir`), read now: a bad file is an entry of
    `errors`, a missing folder a SpecError (the pages say so)."""
    return scan_specs(Settings.from_env().specs_dir)


def airflow_run_link(base: str, model: str, run: Mapping[str, Any]) -> str | None:
    """A run's page in Airflow's UI (`/dags/{dag_id}/runs/{run_id}`, next to the pages' `base` path), or None
    for a run Airflow did not start."""
    if run["run_type"] not in AIRFLOW_STARTED:
        return None
    root = base.removesuffix(URL_PREFIX)
    return f"{root}/dags/{quote(DAG_ID_PREFIX + model, safe='')}/runs/{quote(str(run['run_id']), safe='')}"


def build_app(engine_factory: Callable[[], sa.Engine] = server_engine,
              reader_factory: Callable[[], sa.Engine] = reader_engine,
              specs_factory: Callable[[], SpecScan] = server_specs, run_link: RunLink = airflow_run_link) -> FastAPI:
    """The pages' app with Airflow's authorization: every page reads through `reader_factory`'s engine (the UI
    role's), an editor's raw rows through `engine_factory`'s (the owner's); each made on its first use. The
    index's health and the performance page's floor read `specs_factory`'s specs; runs link by `run_link`."""
    return create_app(reader_factory, raw_engine_factory=engine_factory, view_access=view_access,
                      model_access=model_access, readable_models=readable_models, raw_access=raw_access,
                      specs_factory=specs_factory, run_link=run_link)
