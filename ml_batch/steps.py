"""Typed results of the pipeline's steps, with one (de)serialisation for Airflow's XCom.

A step result is a frozen pydantic model: its fields are checked by mypy where it is built and by pydantic
where it is read back (an unknown or missing key is an error naming it, never a silently different copy), and
`to_xcom` / `from_xcom` are the only way it becomes plain JSON and back (dates as ISO text).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class StepResult(BaseModel):
    """Base of every step result: frozen, strict about its keys, JSON in and out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_xcom(self) -> dict[str, Any]:
        """The result as plain JSON (what a task returns, and what the CLI prints with --json)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Self:
        """The result back from `to_xcom`'s JSON; a missing or unknown key raises, naming it."""
        return cls.model_validate(data)
