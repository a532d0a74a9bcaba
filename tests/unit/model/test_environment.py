"""The environment rule (`ml_batch.model.environment`): which library versions may load a version's pickle."""

from __future__ import annotations

import platform

import pytest
import sklearn

from ml_batch.errors import EnvironmentMismatch, is_deterministic
from ml_batch.model.environment import VerifiedEnvironment, current, mismatches, refusal

FITTED = {"python": "3.11.7", "scikit-learn": "1.5.2", "numpy": "1.26.4", "scipy": "1.13.1", "pandas": "2.2.3",
          "joblib": "1.4.2"}


def _with(**changes: str) -> dict[str, str]:
    return {**FITTED, **{name.replace("_", "-"): version for name, version in changes.items()}}


def test_current_names_python_and_every_library_with_their_installed_versions() -> None:
    here = current()
    assert here["python"] == platform.python_version()
    assert here["scikit-learn"] == sklearn.__version__
    assert set(here) == {"python", "scikit-learn", "numpy", "scipy", "pandas", "joblib"}
    assert "skops" in current(skops=True) and "skops" not in here


def test_the_same_environment_and_patch_releases_load() -> None:
    assert mismatches(FITTED, FITTED) == []
    assert mismatches(FITTED, _with(scikit_learn="1.5.0", numpy="1.26.0", python="3.11.2")) == []


def test_a_scikit_learn_minor_is_refused_naming_both_versions() -> None:
    assert mismatches(FITTED, _with(scikit_learn="1.6.1")) == ["scikit-learn 1.5.2 (this process has 1.6.1)"]
    assert mismatches(FITTED, _with(scikit_learn="2.5.2")) == ["scikit-learn 1.5.2 (this process has 2.5.2)"]


@pytest.mark.parametrize("library", ["python", "numpy", "scipy", "pandas", "joblib"])
def test_other_libraries_are_refused_on_a_major_only(library: str) -> None:
    major, minor, *_ = FITTED[library].split(".")
    assert mismatches(FITTED, {**FITTED, library: f"{major}.{int(minor) + 1}.0"}) == []
    assert mismatches(FITTED, {**FITTED, library: f"{int(major) + 1}.0.0"}) == [
        f"{library} {FITTED[library]} (this process has {int(major) + 1}.0.0)"]


def test_every_refused_library_is_named_and_a_missing_one_too() -> None:
    here = {k: v for k, v in _with(scikit_learn="1.6.0", numpy="2.0.0").items() if k != "scipy"}
    assert mismatches(FITTED, here) == ["scikit-learn 1.5.2 (this process has 1.6.0)",
                                        "numpy 1.26.4 (this process has 2.0.0)",
                                        "scipy 1.13.1 (not installed in this process)"]


def test_libraries_the_record_lacks_and_skops_are_not_compared() -> None:
    assert mismatches({"scikit-learn": "1.5.2"}, _with(numpy="9.0")) == []
    assert mismatches({**FITTED, "skops": "0.10.0"}, {**FITTED, "skops": "1.0.0"}) == []


def test_prerelease_versions_compare_by_their_release_numbers() -> None:
    assert mismatches(FITTED, _with(scikit_learn="1.5.dev0")) == []
    assert mismatches(FITTED, _with(scikit_learn="1.6.0rc1")) == ["scikit-learn 1.5.2 (this process has 1.6.0rc1)"]


def test_a_matching_verified_environment_lifts_the_refusal_by_the_same_rule() -> None:
    here = _with(scikit_learn="1.6.1")
    verified_patch = VerifiedEnvironment(_with(scikit_learn="1.6.0"), "2026-12-02T00:00:00+00:00", "a", 0.0, 500)
    verified_other = VerifiedEnvironment(_with(scikit_learn="1.7.0"), "2026-12-02T00:00:00+00:00", "a", 0.0, 500)
    assert refusal(FITTED, [], here) == ["scikit-learn 1.5.2 (this process has 1.6.1)"]
    assert refusal(FITTED, [verified_other], here) == ["scikit-learn 1.5.2 (this process has 1.6.1)"]
    assert refusal(FITTED, [verified_other, verified_patch], here) == []
    assert refusal(None, [], here) == []


def test_verified_environments_round_trip_as_stored() -> None:
    entry = VerifiedEnvironment(FITTED, "2026-12-02T10:00:00+00:00", "alice", 1.5e-12, 500)
    assert VerifiedEnvironment.from_dict(entry.as_dict()) == entry


def test_the_refusal_is_deterministic_so_airflow_does_not_retry_it() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from ml_batch.airflow.tasks import fail_fast

    @fail_fast
    def load() -> None:
        raise EnvironmentMismatch("model 'toy' version 1 was fitted with scikit-learn 1.5.2")

    assert is_deterministic(EnvironmentMismatch("x"))
    with pytest.raises(AirflowFailException, match=r"\(EnvironmentMismatch: deterministic, not retried\)"):
        load()
