"""Read-only web pages of ml-batch's database (registry, runs, quarantine, drift, performance).

`ml_batch.ui.app.create_app` builds a FastAPI app that the Airflow plugin (`ml_batch.airflow.ui_plugin`)
mounts in the api-server with Airflow's own authentication; nothing here imports Airflow.
"""
