"""The pages' app as the api-server serves it: Airflow's authorization and ml-batch's database.

A FastAPI app mounted by a plugin gets no authentication from Airflow, so every page depends on the API's
own security dependencies: `requires_access_view(AccessView.PLUGINS)` for all pages, and read access to the
runs of `batch_predict_<model>` (the auth manager's `is_authorized_dag("GET", DagAccessEntity.RUN)`, what
`requires_access_dag` checks) for the pages of a model; the index lists only the models the user may read
so. Raw values (quarantined rows, GX failing values) need edit access to the model's DAG
(`is_authorized_dag("PUT")`: SimpleAuthManager's user role and above; a viewer sees reasons and counts). A
caller authenticates as with the REST API: a bearer token from `/auth/token`, or the UI's `_token` cookie,
which the browser sends with the iframe's same-origin requests.

The pages read ml-batch's database: the Airflow connection `ml_batch_db` (ML_BATCH_CONN_ID), resolved in the
api-server on the first request (never at import), else ML_BATCH_DATABASE_URL.

Imported only in the api-server, on the first request (`ml_batch.airflow.ui_plugin` keeps plugin loading light).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_view
from airflow.models.dag import DagModel
from fastapi import FastAPI, HTTPException, status

from ml_batch.airflow.runtime import conn_id
from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.ui.app import create_app

logger = logging.getLogger(__name__)

DAG_ID_PREFIX = "batch_predict_"

view_access = requires_access_view(AccessView.PLUGINS)


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


def server_engine() -> sa.Engine:
    """ml-batch's engine in the api-server: the Airflow connection, else ML_BATCH_DATABASE_URL."""
    settings = Settings.from_env()
    url = database_url(conn_id())
    if url is None:
        logger.info("no Airflow connection %r: the ml-batch pages use ML_BATCH_DATABASE_URL", conn_id())
        return make_engine(settings, start=False)
    logger.info("the ml-batch pages read the database of the Airflow connection %r", conn_id())
    return make_engine(Settings(home=settings.home, specs_dir=settings.specs_dir, schema=settings.schema,
                                database_url=url, user=settings.user), start=False)


def build_app(engine_factory: Callable[[], sa.Engine] = server_engine) -> FastAPI:
    """The pages' app with Airflow's authorization; the engine is made on the first request."""
    return create_app(engine_factory, view_access=view_access, model_access=model_access,
                      readable_models=readable_models, raw_access=raw_access)
