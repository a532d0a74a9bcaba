"""A profile entry's null share: the one rule the plan's null-share check and the drift checks share."""

from __future__ import annotations

import pytest

from ml_batch.model.reference import entry_null_share


def test_a_numeric_entry_gives_its_null_share_and_a_categorical_one_its_missing_frequency() -> None:
    assert entry_null_share({"type": "numeric", "null_share": 0.02, "sample": [1.0]}) == 0.02
    assert entry_null_share({"type": "categorical", "frequencies": {"a": 0.9, "__missing__": 0.1}}) == 0.1
    assert entry_null_share({"type": "categorical", "frequencies": {"a": 1.0}}) == 0.0


def test_a_numeric_entry_without_its_null_share_is_an_error_naming_the_field() -> None:
    with pytest.raises(KeyError, match="null_share"):
        entry_null_share({"type": "numeric"})
