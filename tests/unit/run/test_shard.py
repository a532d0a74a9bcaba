"""What a shard stages for a multiclass model: every class's probability as a jsonb object in COPY's binary
format, exactly the scored floats."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ml_batch.run.shard import class_scores_jsonb


def _decoded(array) -> list[dict]:
    values = array.to_pylist()
    assert all(value[:1] == b"\x01" for value in values), "jsonb's binary format: version byte 1, then the text"
    return [json.loads(value[1:].decode()) for value in values]


def test_each_row_is_an_object_of_every_class_with_the_exact_float() -> None:
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(4), size=500)
    scores[0] = [1 / 3, 1 / 3, 1 / 3 - 1e-17, 5e-324]  # awkward floats: many digits, a subnormal
    classes = ["billing", "other", "sales", "technical"]
    rows = _decoded(class_scores_jsonb(scores, classes))
    assert [list(row) for row in rows] == [classes] * 500
    assert np.array_equal(np.array([[row[c] for c in classes] for row in rows]), scores), "round-trips exactly"


def test_class_names_are_json_escaped_and_non_finite_values_are_strings() -> None:
    scores = np.array([[math.nan, 0.5, 0.5], [math.inf, -math.inf, 0.0]])
    classes = ['say "hi"', "back\\slash", "naïve"]
    rows = _decoded(class_scores_jsonb(scores, classes))
    assert rows == [{'say "hi"': "NaN", "back\\slash": 0.5, "naïve": 0.5},
                    {'say "hi"': "Infinity", "back\\slash": "-Infinity", "naïve": 0.0}]


def test_no_rows_give_no_values() -> None:
    assert len(class_scores_jsonb(np.empty((0, 3)), ["a", "b", "c"])) == 0


def test_compiled_threads_keep_scoring_threads_within_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_batch.run import shard

    monkeypatch.setattr(shard, "available_cores", lambda: 8)
    assert shard.compiled_threads(1, 8) == 1 and shard.compiled_threads(1, 2) == 4
    assert shard.compiled_threads(4, 2) == 1  # 4 parallel shards share 8 cores: 2 each, 2 scoring threads
