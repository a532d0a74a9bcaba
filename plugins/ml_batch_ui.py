"""ml-batch's pages in the Airflow UI (registry, runs, quarantine, drift, performance): only wiring.

The plugin lives in `ml_batch.airflow.ui_plugin`; Airflow finds its class here, in the plugins folder.
"""

from ml_batch.airflow.ui_plugin import MlBatchUiPlugin

__all__ = ["MlBatchUiPlugin"]
