"""Fixtures of the monitoring unit tests: the demo spec, a reference sample, its profile, clustered days."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.profile import build_profile
from ml_batch.spec import Spec
from tests.unit.monitoring.data import clustered_days, make_frame


@pytest.fixture(scope="session")
def reference() -> tuple[pd.DataFrame, np.ndarray]:
    return make_frame(50_000, seed=0)


@pytest.fixture(scope="session")
def profile(spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]) -> dict[str, Any]:
    frame, scores = reference
    # Through JSON, as it comes back from the registry.
    return json.loads(json.dumps(build_profile(spec, frame, scores)))


@pytest.fixture(scope="session")
def clustered(spec: Spec) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]:
    frame, scores, days = clustered_days(30, 800, seed=11)
    profile = json.loads(json.dumps(build_profile(spec, frame, scores, days=days, score_days=days)))
    return frame, scores, days, profile
