"""The test/benchmark cluster (`tests/support/cluster.py`): which Airflow settings its components get."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cluster import AIRFLOW_SETTINGS, ClusterConfig, _environment, airflow_settings

URLS = {"airflow": "postgresql://u:p@127.0.0.1/a", "celery": "postgresql://u:p@127.0.0.1/c",
        "ml_batch": "postgresql://u:p@127.0.0.1/m"}


def _env(tmp_path: Path, code_root: Path) -> dict[str, str]:
    config = ClusterConfig(root=tmp_path, urls=URLS, ml_batch_env={}, code_root=code_root)
    return _environment(config, tmp_path / "home", 8080, 6379, tmp_path / "passwords.json")


def test_components_get_the_airflow_env_of_the_checkout_they_run(tmp_path: Path) -> None:
    checkout = tmp_path / "old_checkout"
    checkout.mkdir()
    (checkout / "airflow.env").write_text("AIRFLOW__CORE__EXECUTOR=CeleryExecutor\nAIRFLOW__CORE__MARKER=old\n")
    env = _env(tmp_path, checkout)
    assert env["AIRFLOW__CORE__MARKER"] == "old"
    # a setting only this checkout's file has (e.g. one naming a module the old checkout lacks) is not passed on
    own_only = set(airflow_settings()) - set(airflow_settings(checkout / "airflow.env"))
    assert own_only, "expected this repository's airflow.env to have settings the small file lacks"
    assert not own_only & set(env) - set(os.environ)


def test_a_checkout_without_airflow_env_gets_this_repositorys(tmp_path: Path) -> None:
    env = _env(tmp_path, tmp_path)
    for key, value in airflow_settings(AIRFLOW_SETTINGS).items():
        assert env[key] == value
