"""Exception classes: one per failure class, each message naming the bad value and what was expected.

The CLI turns any `MlBatchError` into a one-line message and a non-zero exit code; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class MlBatchError(Exception):
    """Base class of the failures ml-batch expects and reports without a traceback."""


class ConfigError(MlBatchError):
    """An environment variable or setting has a value ml-batch cannot use."""


class SpecError(MlBatchError):
    """A model spec file is missing, unreadable or invalid."""


class DatabaseError(MlBatchError):
    """The database cannot be reached, started or migrated."""


class RegistryError(MlBatchError):
    """A registry operation was refused (unknown model/version/alias, nothing to roll back to, ...)."""


class ArtifactIntegrityError(RegistryError):
    """A stored artifact's bytes do not hash to the sha256 recorded when it was registered."""


class FeatureSchemaMismatch(RegistryError):
    """A model version expects other features (names, order or types) than the spec provides."""


class TrainingError(MlBatchError):
    """A training set is empty, single-class or otherwise unusable."""


class ValidationFailed(MlBatchError):
    """A batch failed validation as a whole (row count, columns, types) or quarantined too many rows."""


class SourceError(MlBatchError):
    """The spec's source cannot be read (missing table or column, wrong type)."""


class PublishError(MlBatchError):
    """The staged predictions failed their audit; nothing was published."""
