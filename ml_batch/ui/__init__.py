"""Read-only web pages of ml-batch's database (registry, runs, quarantine, drift, performance).

`ml_batch.ui.app.create_app` builds a FastAPI app that the Airflow plugin (`ml_batch.airflow.ui_plugin`)
mounts in the api-server with Airflow's own authentication; nothing here imports Airflow.
"""

#: Where the api-server mounts the pages (the plugin's `url_prefix`; links back to Airflow's UI strip it).
URL_PREFIX = "/ml-batch"
