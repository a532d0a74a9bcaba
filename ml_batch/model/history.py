"""The champion's history replayed from the registry's audit trail (pure)."""

from __future__ import annotations


def champion_stack(history: list[tuple[str, int | None]]) -> list[int]:
    """Replay champion moves: `promoted` pushes its version, `rollback` pops the top (pure)."""
    stack: list[int] = []
    for event, version in history:
        if event == "promoted" and version is not None:
            stack.append(version)
        elif event == "rollback":
            if stack:
                stack.pop()
            if version is not None and (not stack or stack[-1] != version):
                stack.append(version)
    return stack
