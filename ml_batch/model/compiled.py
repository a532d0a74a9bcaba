"""Tree ensembles compiled to native code: built at registration, proven against scikit-learn, loaded verified.

A version whose pipeline ends in a tree ensemble that treelite imports (`SUPPORTED`) gets that estimator compiled
by tl2cgen (gcc) into a shared library; the preprocessing steps (`pipeline[:-1]`) stay scikit-learn. What
compiling found is recorded with the version (`model_versions.compiled`, `Compiled.record`): a status of
`STATUSES`, its reason, the platform built on (OS, architecture, libc and its version, compiler, treelite and
tl2cgen), the library's sha256 and size, the max abs difference from scikit-learn on the holdout, the compile
seconds and the holdout rows compared.

* **Identical scores.** The fresh library scores the version's holdout rows and must give the scores of
  `training.predict_scores` within `TOLERANCE` (1e-12, max abs difference), else the status is `mismatch` and
  no library is kept. tl2cgen's output is mapped to `predict_scores`' contract by `_as_scores`: binary is the
  probability of class 1 (a forest gives both classes' probabilities, a boosted model one sigmoid), multiclass
  the (n, k) probabilities in `classes_` order, regression the raw prediction. The input is float64, except for
  the ensembles of `sklearn.tree` trees, which compare float32 values: their features are rounded to float32
  first (`_FLOAT32_INPUT`), exactly as scikit-learn does, so no value can fall on the other side of a split.
* **Never failing training.** Anything that goes wrong while compiling becomes a status with its reason.
* **Bounded compile time.** gcc's time grows faster than the trees' node count (on 2 cores: 2,500 nodes of a
  boosted model 0.7 s, 40,000 nodes of a 4-tree forest 82 s), so an estimator of more than `MAX_NODES` nodes
  (`ML_BATCH_COMPILE_MAX_NODES`, default 25,000) is not compiled: status `too_large`, with its count.
* **Trusted like the artifact.** The library is signed at registration with the artifact's key
  (`signing.sign_library`). `load_library` writes the stored bytes to a private file (0600, in a 0700 folder),
  verifies that file's bytes (sha256 then HMAC, `signing.verify_library`) and only then loads it. A library
  built on another platform (`unfit_reason`) is never loaded: the caller scores with scikit-learn.
* **Threads.** tl2cgen's predictor may be called by one thread at a time, so each scoring thread loads its
  own predictor (`CompiledScorer`) with `nthread` threads: the shard sizes it so that its scoring threads times
  `nthread` stay within the cores (`ml_batch.run.shard`).

`ML_BATCH_COMPILE=0` (`COMPILE_ENV`) skips compiling at registration and makes scoring use scikit-learn.
treelite and tl2cgen are imported by the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import logging
import math
import os
import platform as _platform
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml_batch.errors import CompiledScoresDiffer
from ml_batch.features import feature_frame
from ml_batch.model.signing import verify_library
from ml_batch.model.verify import max_abs_diff
from ml_batch.spec import Spec

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

COMPILE_ENV = "ML_BATCH_COMPILE"
MAX_NODES_ENV = "ML_BATCH_COMPILE_MAX_NODES"
MAX_NODES = 25_000
TOLERANCE = 1e-12
STATUSES = ("compiled", "unsupported", "mismatch", "failed", "no_compiler", "too_large")
TOOLCHAIN = "gcc"
# The estimators treelite's scikit-learn importer reads, by module and class (exact types: a subclass may
# predict otherwise).
SUPPORTED = {
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting": (
        "HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    "sklearn.ensemble._forest": ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
                                 "ExtraTreesRegressor"),
    "sklearn.ensemble._gb": ("GradientBoostingClassifier", "GradientBoostingRegressor"),
}
# Ensembles of `sklearn.tree` trees, which cast their input to float32 before comparing it with a threshold.
_FLOAT32_INPUT = ("sklearn.ensemble._forest", "sklearn.ensemble._gb")
# What a library needs of the machine that loads it: the rest of the platform is recorded, not required.
_LOAD_KEYS = ("os", "arch", "libc", "libc_version", "tl2cgen")


def compile_enabled() -> bool:
    """Whether compiling and the compiled scoring path are on (`ML_BATCH_COMPILE` is not "0")."""
    return os.environ.get(COMPILE_ENV, "1").strip() != "0"


def runtime_platform() -> dict[str, str]:
    """What a compiled library depends on in this process: OS, architecture, libc and its version, tl2cgen."""
    libc, libc_version = _platform.libc_ver()
    return {"os": _platform.system(), "arch": _platform.machine(), "libc": libc or "unknown",
            "libc_version": libc_version or "unknown", "tl2cgen": _version("tl2cgen")}


def build_platform() -> dict[str, str]:
    """`runtime_platform` with the compiler (its `--version` first line) and treelite: what a library records."""
    return {**runtime_platform(), "compiler": _compiler_version(), "treelite": _version("treelite")}


def unfit_reason(recorded: dict[str, Any] | None) -> str | None:
    """Why a library built on the `recorded` platform cannot be loaded here (None: it can)."""
    if not recorded:
        return "the library records no platform"
    here = runtime_platform()
    differ = [f"{k} {recorded.get(k)!r} (here {here[k]!r})" for k in _LOAD_KEYS if recorded.get(k) != here[k]]
    return f"built for another platform: {', '.join(differ)}" if differ else None


def sklearn_reason(record: dict[str, Any] | None) -> str | None:
    """Why a version whose `compiled` record is `record` scores with scikit-learn in this process, or None when
    its library is used (once verified: `ml_batch.model.scorer`)."""
    if not compile_enabled():
        return f"{COMPILE_ENV}=0"
    if not record:
        return (f"the version was registered without compiling (before ml-batch compiled models, or with "
                f"{COMPILE_ENV}=0)")
    if record.get("status") != "compiled":
        return f"the version was not compiled ({record.get('status')}: {record.get('reason')})"
    unfit = unfit_reason(record.get("platform"))
    return None if unfit is None else f"its compiled library is not loaded here: {unfit}"


def describe(record: dict[str, Any] | None) -> str:
    """What compiling found and the path this process would score with, in one line (`ml-batch models show`)."""
    why = sklearn_reason(record)
    if record is None or record.get("status") != "compiled":
        return f"scikit-learn: {why}"
    built, diff = record.get("platform") or {}, record.get("max_abs_diff")
    found = (f"{record.get('library_size') or 0:,} bytes, sha256 {str(record.get('library_sha256'))[:12]}, built in "
             f"{record.get('compile_seconds')} s with {built.get('compiler')} on {built.get('os')} {built.get('arch')} "
             f"{built.get('libc')} {built.get('libc_version')} (tl2cgen {built.get('tl2cgen')}), max abs diff "
             f"{'-' if diff is None else format(diff, '.3g')} on {record.get('holdout_rows')} holdout rows")
    return f"compiled here: {found}" if why is None else f"scikit-learn: {why}; library: {found}"


def unsupported_reason(estimator: Any) -> str | None:
    """Why treelite cannot import `estimator` (None: it is one of `SUPPORTED`)."""
    kind = type(estimator)
    if kind.__name__ in SUPPORTED.get(kind.__module__, ()):
        return None
    names = sorted(name for names in SUPPORTED.values() for name in names)
    return f"estimator {kind.__module__}.{kind.__qualname__} is not one treelite compiles (supported: {names})"


@dataclass(frozen=True)
class Compiled:
    """What compiling a version's estimator gave: the library (None unless status `compiled`) and its record."""

    library: bytes | None
    record: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.record["status"])


def compile_pipeline(pipeline: Pipeline, spec: Spec, holdout: pd.DataFrame, scores: np.ndarray, *,
                     nthread: int) -> Compiled:
    """Compile the pipeline's estimator and prove it on the holdout: never raises (see the module doc).

    Args:
        pipeline: The version's fitted pipeline.
        spec: Its spec (task and features).
        holdout: The holdout rows the version was evaluated on.
        scores: Their scores by scikit-learn (`training.predict_scores`).
        nthread: Compiler jobs and scoring threads (one per core: `ml_batch.run.shard.available_cores`).

    Returns:
        The library when it scores the holdout as scikit-learn does, and the record either way.
    """
    reason = unsupported_reason(pipeline[-1])
    if reason is not None:
        return _outcome("unsupported", reason)
    try:
        nodes, limit = node_count(pipeline[-1]), max_nodes()
    except ValueError as exc:  # a misconfigured limit: said on the version, training goes on
        return _outcome("failed", str(exc))
    if nodes > limit:
        return _outcome("too_large", f"{type(pipeline[-1]).__name__} has {nodes} tree nodes, more than {MAX_NODES_ENV} "
                        f"{limit}: compiling it would take minutes (gcc's time grows faster than the node count)",
                        nodes=nodes)
    if shutil.which(TOOLCHAIN) is None:
        return _outcome("no_compiler", f"{TOOLCHAIN} is not on PATH: this machine cannot compile models")
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ml-batch-compile-") as folder:
            library = _build(pipeline[-1], Path(folder) / "model.so", nthread)
            seconds = time.perf_counter() - started
            scorer = CompiledScorer(pipeline, Path(folder) / "model.so", nthread=nthread)
            diff = max_abs_diff(scorer.scores(holdout, spec), np.asarray(scores, dtype=np.float64))
    except _Unimportable as exc:
        return _outcome("unsupported", f"treelite cannot import {type(pipeline[-1]).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - compiling never fails training: any failure is recorded instead
        return _outcome("failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc) else ''}",
                        compile_seconds=round(time.perf_counter() - started, 3))
    found = {"library_sha256": hashlib.sha256(library).hexdigest(), "library_size": len(library),
             "max_abs_diff": diff, "compile_seconds": round(seconds, 3), "holdout_rows": len(holdout)}
    if not diff <= TOLERANCE:
        return _outcome("mismatch", f"the compiled library scores the {len(holdout)} holdout rows up to "
                        f"{diff:.3g} away from scikit-learn (tolerance {TOLERANCE:g}): not used", **found)
    logger.info("compiled %s (%s) in %.1fs: %d bytes, max abs diff %.3g on %d holdout rows", spec.name,
                type(pipeline[-1]).__name__, seconds, len(library), diff, len(holdout))
    return Compiled(library, _record("compiled", None, **found))


def node_count(estimator: Any) -> int:
    """The nodes of a supported estimator's trees (what compiling takes time for)."""
    if hasattr(estimator, "_predictors"):  # HistGradientBoosting: one predictor per iteration and class
        return int(sum(len(tree.nodes) for per_iteration in estimator._predictors for tree in per_iteration))
    return int(sum(tree.tree_.node_count for tree in np.ravel(estimator.estimators_)))  # forests, GradientBoosting


def max_nodes() -> int:
    """The largest estimator compiled: `ML_BATCH_COMPILE_MAX_NODES` (a positive integer), else `MAX_NODES`."""
    raw = os.environ.get(MAX_NODES_ENV, "").strip()
    if not raw:
        return MAX_NODES
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{MAX_NODES_ENV}={raw!r}: expected a positive whole number of tree nodes")
    return int(raw)


def compiled_fields(pipeline: Pipeline, spec: Spec, holdout: pd.DataFrame, scores: np.ndarray, *,
                    nthread: int) -> dict[str, Any]:
    """`compile_pipeline` as the `registry.NewVersion` fields `compiled_library` and `compiled` (both None with
    `ML_BATCH_COMPILE=0`): what training and a registered artifact store with a new version."""
    if not compile_enabled():
        logger.info("%s: not compiled (%s=0)", spec.name, COMPILE_ENV)
        return {"compiled_library": None, "compiled": None}
    found = compile_pipeline(pipeline, spec, holdout, scores, nthread=nthread)
    return {"compiled_library": found.library, "compiled": found.record}


class _Unimportable(Exception):
    """treelite refused the estimator (a setting of it that it does not support)."""


def _build(estimator: Any, path: Path, jobs: int) -> bytes:
    """The estimator compiled into the shared library `path`; its bytes.

    treelite and tl2cgen `print` their native log lines ("Parallel compilation enabled ...") to stdout, which
    is the CLI's `--json` output: they are caught here and logged instead (compiling runs on one thread, at
    registration, so swapping stdout cannot catch another thread's output).
    """
    import tl2cgen
    import treelite

    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            try:
                model = treelite.sklearn.import_model(estimator)
            except (treelite.TreeliteError, NotImplementedError, ValueError, TypeError) as exc:
                raise _Unimportable(str(exc)) from exc
            tl2cgen.export_lib(model, toolchain=TOOLCHAIN, libpath=str(path), params={"parallel_comp": jobs},
                               nthread=jobs)
    finally:
        for line in said.getvalue().splitlines():
            if line.strip():
                logger.debug("compiler: %s", line)
    return path.read_bytes()


def _outcome(status: str, reason: str, **found: Any) -> Compiled:
    (logger.info if status == "unsupported" else logger.warning)("not compiled (%s): %s", status, reason)
    return Compiled(None, _record(status, reason, **found))


def _record(status: str, reason: str | None, **found: Any) -> dict[str, Any]:
    diff = found.get("max_abs_diff")
    if diff is not None and not math.isfinite(diff):
        found["max_abs_diff"] = None  # JSON has no infinity: a shape or NaN mismatch (the reason says so)
    return {"status": status, "reason": reason, "platform": build_platform(), "toolchain": TOOLCHAIN,
            "library_sha256": None, "library_size": None, "max_abs_diff": None, "compile_seconds": None,
            "holdout_rows": None, **found}


@dataclass
class CompiledScorer:
    """Scores like `training.predict_scores` (same contract), with the estimator's compiled library.

    Each calling thread loads its own tl2cgen predictor of `library` (tl2cgen allows one caller at a time per
    predictor) with `nthread` threads.
    """

    pipeline: Any
    library: Path
    nthread: int = 1
    path: str = "compiled"
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def scores(self, frame: pd.DataFrame, spec: Spec) -> np.ndarray:
        """P(class 1) (binary), the prediction (regression), the (n, k) probabilities (multiclass)."""
        import tl2cgen

        task = spec.model.task
        if frame.empty:
            shape = (0, len(self.pipeline.classes_)) if task == "multiclass" else (0,)
            return np.empty(shape, dtype=np.float64)
        features = np.asarray(self.pipeline[:-1].transform(feature_frame(frame, spec)), dtype=np.float64)
        if type(self.pipeline[-1]).__module__ in _FLOAT32_INPUT:
            features = features.astype(np.float32).astype(np.float64)
        out = self._predictor().predict(tl2cgen.DMatrix(features, dtype="float64"))
        return _as_scores(np.asarray(out, dtype=np.float64), task, len(frame))

    def _predictor(self) -> Any:
        predictor = getattr(self._local, "predictor", None)
        if predictor is None:
            import tl2cgen

            predictor = self._local.predictor = tl2cgen.Predictor(self.library, nthread=self.nthread)
        return predictor


def _as_scores(out: np.ndarray, task: str, n: int) -> np.ndarray:
    """tl2cgen's (n, targets, classes) output as `predict_scores` gives it for `task`."""
    flat = out.reshape(n, -1)
    if task == "multiclass":
        return np.ascontiguousarray(flat)
    if task == "binary" and flat.shape[1] == 2:
        return np.ascontiguousarray(flat[:, 1])  # a forest: both classes' probabilities
    if flat.shape[1] != 1:
        raise ValueError(f"the compiled library gives {flat.shape[1]} values per row: expected 1 for a {task} model")
    return np.ascontiguousarray(flat[:, 0])


def load_library(model: str, version: int, library: bytes, sha256: str, signature: str, signed_with: str | None,
                 folder: Path) -> Path:
    """The stored library written to a private file in `folder` and verified there; its path, ready to load.

    The bytes verified are those read back from the file (0600, in `folder`, which the caller made 0700), so
    what is loaded is what was verified.

    Raises:
        ArtifactIntegrityError: The file's sha256 or HMAC is not the one registered (nothing was loaded).
    """
    path = folder / f"{model}-{version}.so"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(library)
    verify_library(model, version, path.read_bytes(), sha256, signature, signed_with)
    return path


def sample_check(compiled: np.ndarray, sklearn: np.ndarray, what: str) -> float:
    """The max abs difference of the compiled path's scores from scikit-learn's on the same rows.

    Raises:
        CompiledScoresDiffer: They differ by more than `TOLERANCE`.
    """
    diff = max_abs_diff(compiled, sklearn)
    if not diff <= TOLERANCE:
        raise CompiledScoresDiffer(
            f"{what}: the compiled library scores {len(sklearn)} sample rows up to {diff:.6g} away from "
            f"scikit-learn (tolerance {TOLERANCE:g}); nothing of this run is published. Score with "
            f"scikit-learn ({COMPILE_ENV}=0) and report the version")
    return diff


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _compiler_version() -> str:
    try:
        done = subprocess.run([TOOLCHAIN, "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({type(exc).__name__})"
    return done.stdout.splitlines()[0] if done.stdout else "unknown"
