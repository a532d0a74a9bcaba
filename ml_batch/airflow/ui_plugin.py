"""The Airflow 3 plugin of ml-batch's pages (`ml_batch.ui`): a FastAPI app and a nav entry.

Every Airflow process loads plugins, task processes included, so this module imports nothing but the
plugin base class: the app (FastAPI, Airflow's security dependencies, ml-batch's queries) is built by
`ml_batch.airflow.ui_auth` on the first request the api-server routes to it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ml_batch.ui import URL_PREFIX  # the package only: no web app at plugin load

URL_ROUTE = "ml-batch"

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyPagesApp:
    """An ASGI app that builds the pages' FastAPI app on its first request (in the api-server only)."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _built(self) -> Any:
        with self._lock:
            if self._app is None:
                from ml_batch.airflow.ui_auth import build_app

                self._app = build_app()
            return self._app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        await self._built()(scope, receive, send)


class MlBatchUiPlugin(AirflowPlugin):
    """ml-batch's pages under /ml-batch, and a nav entry (Browse) that shows them in the UI's iframe."""

    name = "ml_batch_ui"
    fastapi_apps = [{"app": LazyPagesApp(), "url_prefix": URL_PREFIX, "name": "ml-batch"}]
    external_views = [{"name": "ml-batch", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": URL_ROUTE,
                       "category": "browse"}]
