"""The scorer of a loaded version: its compiled library when it has one that fits this machine and verifies,
else scikit-learn (`training.predict_scores`, the one place that scores a pipeline).

Both scorers have one contract, `scores(frame, spec)`, the one of `predict_scores`. `scoring_path` says which
one a run uses and why (the shard records it on the run and logs it):

* `ML_BATCH_COMPILE=0`, a version without a library (not a supported estimator, compiled before ml-batch could,
  a mismatch at registration: its `compiled` record says why) or a library built for another platform
  (`compiled.unfit_reason`): scikit-learn;
* a library whose bytes are not those signed at registration (sha256, then HMAC): `ArtifactIntegrityError`,
  before anything is loaded. It is tampering, not a platform question, so the run fails instead of quietly
  scoring another way;
* otherwise the compiled library, written to a private folder for as long as the caller scores with it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import sqlalchemy as sa

from ml_batch.db.tables import model_versions
from ml_batch.model import training
from ml_batch.model.compiled import CompiledScorer, load_library, sklearn_reason
from ml_batch.spec import Spec

if TYPE_CHECKING:
    import pandas as pd

    from ml_batch.model.registry import LoadedModel

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    """Scores a frame as `training.predict_scores` does; `path` is `tables.SCORING_PATHS`' name of it."""

    @property
    def pipeline(self) -> Any: ...

    @property
    def path(self) -> str: ...

    def scores(self, frame: pd.DataFrame, spec: Spec) -> np.ndarray: ...


@dataclass(frozen=True)
class SklearnScorer:
    """The scikit-learn path: `predict_scores` of the pipeline."""

    pipeline: Any
    path: str = "sklearn"

    def scores(self, frame: pd.DataFrame, spec: Spec) -> np.ndarray:
        return training.predict_scores(self.pipeline, frame, spec)


@dataclass(frozen=True)
class ScoringPath:
    """The scorer chosen for a version, and why."""

    scorer: Scorer
    reason: str

    @property
    def path(self) -> str:
        return self.scorer.path


@contextmanager
def scoring_path(engine: sa.Engine, loaded: LoadedModel, *, nthread: int) -> Iterator[ScoringPath]:
    """The scorer of a verified, loaded version (module doc), usable inside the `with` block.

    Args:
        engine: The ml-batch database.
        loaded: The version (`registry.load`: its artifact verified).
        nthread: Threads of each compiled predictor (one per scoring thread: `compiled.CompiledScorer`).

    Raises:
        ArtifactIntegrityError: The version's library is not the one signed at registration (never loaded).
    """
    info = loaded.info
    sklearn = SklearnScorer(loaded.pipeline)
    record = info.compiled
    why = sklearn_reason(record)
    if why is not None or record is None:
        yield ScoringPath(sklearn, str(why))
        return
    row = _library_row(engine, info.model_name, info.version)
    if row.compiled_library is None:
        yield ScoringPath(sklearn, "its record says compiled, but the version holds no library")
        return
    with tempfile.TemporaryDirectory(prefix="ml-batch-library-") as folder:  # created 0700
        path = load_library(info.model_name, info.version, bytes(row.compiled_library),
                            str(record.get("library_sha256")), row.compiled_hmac, row.artifact_key_id, Path(folder))
        yield ScoringPath(CompiledScorer(loaded.pipeline, path, nthread=nthread),
                          f"compiled library verified (sha256 {str(record.get('library_sha256'))[:12]}, built with "
                          f"{record.get('platform', {}).get('compiler')}), max abs diff {record.get('max_abs_diff')} "
                          f"on {record.get('holdout_rows')} holdout rows")


def _library_row(engine: sa.Engine, model: str, version: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(model_versions.c.compiled_library, model_versions.c.compiled_hmac,
                      model_versions.c.artifact_key_id)
            .where(model_versions.c.model_name == model, model_versions.c.version == version)
        ).one()
