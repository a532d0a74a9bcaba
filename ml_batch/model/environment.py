"""The Python and library versions a model version was fitted in, and the rule that says where it may load.

A fitted scikit-learn pipeline is a pickle of objects whose layout belongs to the library versions that wrote
it. Unpickled under another scikit-learn it may fail, or load and predict differently; scikit-learn only
warns (`InconsistentVersionWarning`), and a worker image upgraded before the registry would score with it
silently. So each version records the environment it was fitted in (`current`, stored in
`model_versions.environment`), and loading it elsewhere is refused, deterministically (`mismatches`):

* scikit-learn: a different *minor* (1.5.x vs 1.6.x) is refused; patch releases keep the pickle format.
* python, numpy, scipy, pandas, joblib: a different *major* is refused.
* skops is recorded for versions registered from a skops file, for the record only: the registry stores
  every version as joblib bytes, so skops plays no part in loading it.
* a library the version recorded but this process lacks is refused; one it did not record (an older record)
  is not compared.

A refused version loads again once `ml-batch models verify` re-scored its holdout sample under the current
environment with the same scores (`ml_batch.model.verify`): the environments it was verified in are kept
(`VerifiedEnvironment`, in `model_versions.verified_environments`) and compared by the same rule.
Versions without a recorded environment (registered before migration 0013) are not checked.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_batch.errors import EnvironmentMismatch

PYTHON = "python"
SCIKIT_LEARN = "scikit-learn"
SKOPS = "skops"
# Library (its distribution name, as pip knows it) -> how many leading release numbers must match.
COMPARED: dict[str, int] = {PYTHON: 1, SCIKIT_LEARN: 2, "numpy": 1, "scipy": 1, "pandas": 1, "joblib": 1}
logger = logging.getLogger(__name__)

_RELEASE = re.compile(r"^\s*(\d+(?:\.\d+)*)")


def current(*, skops: bool = False) -> dict[str, str]:
    """The versions of this process: python (major.minor.micro) and every library of `COMPARED` installed.

    Args:
        skops: Also record skops' version (for a version registered from a skops file).

    Returns:
        Library -> version text, e.g. `{"python": "3.11.7", "scikit-learn": "1.6.1", ...}`.
    """
    found = dict(_installed())
    if skops:
        skops_version = _version_of(SKOPS)
        if skops_version is not None:
            found[SKOPS] = skops_version
    return found


@functools.cache
def _installed() -> tuple[tuple[str, str], ...]:
    # Read from the installed distributions' metadata: nothing is imported, and it cannot change in a process.
    versions = [(PYTHON, platform.python_version())]
    versions += [(name, v) for name in COMPARED if name != PYTHON and (v := _version_of(name)) is not None]
    return tuple(versions)


def _version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def mismatches(recorded: Mapping[str, str], here: Mapping[str, str]) -> list[str]:
    """Every library whose version in `here` may not load what `recorded` wrote (pure; see the module doc).

    Args:
        recorded: The environment a version was fitted (or verified) in.
        here: The environment that would load it (`current()`).

    Returns:
        One entry per refused library, naming both versions, e.g. `scikit-learn 1.5.2 (this process has
        1.6.1)`; empty when it may load.
    """
    found = []
    for name, parts in COMPARED.items():
        if name not in recorded:
            continue
        theirs, ours = recorded[name], here.get(name)
        if ours is None:
            found.append(f"{name} {theirs} (not installed in this process)")
        elif _release(theirs)[:parts] != _release(ours)[:parts]:
            found.append(f"{name} {theirs} (this process has {ours})")
    return found


def _release(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version text: `1.6.0rc1` -> (1, 6, 0); text without any -> ()."""
    match = _RELEASE.match(version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


@dataclass(frozen=True)
class VerifiedEnvironment:
    """An environment `ml-batch models verify` re-scored a version in with the recorded scores."""

    environment: dict[str, str]
    verified_at: str  # ISO timestamp (UTC)
    verified_by: str
    max_abs_diff: float
    rows: int

    def as_dict(self) -> dict[str, Any]:
        """As `model_versions.verified_environments` stores each entry."""
        return {"environment": dict(self.environment), "verified_at": self.verified_at,
                "verified_by": self.verified_by, "max_abs_diff": self.max_abs_diff, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerifiedEnvironment:
        """An entry of `model_versions.verified_environments`."""
        return cls(environment=dict(data["environment"]), verified_at=str(data["verified_at"]),
                   verified_by=str(data["verified_by"]), max_abs_diff=float(data["max_abs_diff"]),
                   rows=int(data["rows"]))


def refusal(recorded: Mapping[str, str] | None, verified: Sequence[VerifiedEnvironment],
            here: Mapping[str, str]) -> list[str]:
    """Why a version may not load `here`: its recorded environment's `mismatches`, unless it was verified in an
    environment that matches `here` by the same rule (pure). Empty when it may load, and for a version with no
    recorded environment (registered before migration 0013: nothing to compare).
    """
    if recorded is None:
        return []
    found = mismatches(recorded, here)
    if found and any(not mismatches(entry.environment, here) for entry in verified):
        return []
    return found


def describe(environment: Mapping[str, str]) -> str:
    """An environment as one line of text: `python 3.11.7, scikit-learn 1.6.1, numpy 2.2.0, ...`."""
    return ", ".join(f"{name} {version}" for name, version in environment.items())


# (model, version) loaded without a recorded environment: warned about once per process.
_UNCHECKED_WARNED: set[tuple[str, int]] = set()


def require_loadable(model: str, version: int, recorded: Mapping[str, str] | None,
                     verified: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a version this process's library versions may not unpickle (`refusal`), before it is unpickled.

    Raises:
        EnvironmentMismatch: naming each library with both versions, and `ml-batch models verify` as the fix.
            A version with no recorded environment (registered before migration 0013) loads, with one warning
            per process.
    """
    if recorded is None:
        if (model, version) not in _UNCHECKED_WARNED:
            _UNCHECKED_WARNED.add((model, version))
            logger.warning("model %s version %d has no recorded environment (registered before migration 0013): "
                           "loading it without checking its library versions; retrain it to record them",
                           model, version)
        return
    refused = refusal(recorded, [VerifiedEnvironment.from_dict(entry) for entry in verified], current())
    if refused:
        raise EnvironmentMismatch(
            f"model {model!r} version {version} was fitted with {', '.join(refused)}: refusing to unpickle it, "
            "since a pipeline loaded under other library versions may fail or predict differently; run "
            f"'ml-batch models verify -m {model} --version {version}' to re-score its holdout sample here (it then "
            "loads if the scores match), or retrain it in this environment"
        )
