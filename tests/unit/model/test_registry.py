"""The registry's pure parts (`ml_batch.model.registry`): the champion history replayed as a stack."""

from __future__ import annotations

from ml_batch.model.registry import champion_stack


def test_champion_stack_walks_back_on_repeated_rollbacks() -> None:
    history = [("promoted", 1), ("promoted", 2), ("promoted", 3), ("rollback", 2)]
    assert champion_stack(history) == [1, 2]
    assert champion_stack([*history, ("rollback", 1)]) == [1]
    assert champion_stack([*history, ("promoted", 4)]) == [1, 2, 4]
