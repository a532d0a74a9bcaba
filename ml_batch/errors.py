"""Exception classes: one per failure class, each message naming the bad value and what was expected.

The CLI turns any `MlBatchError` into a one-line message and a non-zero exit code; anything else is a bug
and keeps its traceback.

Each class also says whether its failure is *deterministic*: running the same step again on the same inputs
fails the same way (a bad spec, a day that fails validation, a tampered artifact), so a retry only delays
the failure. The Airflow shim fails such a task at once instead of retrying it; everything else (an
unreachable database, a lock timeout, any exception that is not an `MlBatchError`) keeps Airflow's retries.
"""

from __future__ import annotations

from typing import ClassVar


class MlBatchError(Exception):
    """Base class of the failures ml-batch expects and reports without a traceback."""

    #: True when retrying the same step on the same inputs cannot succeed. False (retry) by default: a
    #: needless retry costs minutes, a missing one can lose a day.
    deterministic: ClassVar[bool] = False


class ConfigError(MlBatchError):
    """An environment variable or setting has a value ml-batch cannot use."""

    deterministic = True


class SpecError(MlBatchError):
    """A model spec file is missing, unreadable or invalid."""

    deterministic = True


class DatabaseError(MlBatchError):
    """The database cannot be reached, started or migrated."""

    deterministic = False  # a server restarting or a network blip: worth retrying


class TransientDatabaseError(DatabaseError):
    """A database fault (a refused or lost connection, a timeout, a serialization failure) that a library caught
    and reported only as text, e.g. GX's "could not be evaluated" (`ml_batch.db.faults`): never a data failure,
    retried like any transient fault."""


class RegistryError(MlBatchError):
    """A registry operation was refused (unknown model/version/alias, nothing to roll back to, ...)."""

    deterministic = True


class ArtifactIntegrityError(RegistryError):
    """A stored artifact fails its integrity check (sha256 or HMAC) or is unsigned; it is never unpickled."""


class FeatureSchemaMismatch(RegistryError):
    """A model version expects other features (names, order or types) than the spec provides."""


class EnvironmentMismatch(RegistryError):
    """A version was fitted under other library versions than this process's (another scikit-learn minor, or
    another major of python/numpy/scipy/pandas/joblib) and was not verified here: it is not unpickled.
    Deterministic: the same process has the same libraries on every retry."""


class VerificationFailed(RegistryError):
    """`models verify` re-scored a version's holdout sample and the scores differ from those recorded at
    training by more than the tolerance: the version stays refused in this environment."""


class CompiledScoresDiffer(VerificationFailed):
    """A version's compiled library and scikit-learn score the same rows differently (more than 1e-12): the run
    fails, nothing of it is published."""


class TrainingError(MlBatchError):
    """A training set is empty, single-class or otherwise unusable."""

    deterministic = True


class ValidationFailed(MlBatchError):
    """A batch failed validation as a whole (row count, columns, types) or quarantined too many rows.

    Its message may quote failing values of the source; `without_values` is the same message without them,
    what is stored where readers who may not see the source's values read it (`without_values()`).
    """

    deterministic = True

    def __init__(self, message: str, *, without_values: str | None = None) -> None:
        super().__init__(message)
        self.without_values = message if without_values is None else without_values


class DayIncomplete(ValidationFailed):
    """The day as a whole is not ready to publish: fewer (or many more) rows than its history leads to expect,
    or the source's readiness query says no. Running the same plan again at once changes nothing (so the CLI
    and a task's retries stop), but the day may fill: the daily DAG re-checks it for `validation.wait_for_volume`
    (`waitable`). A feature that turned NULL is a `DayIncomplete` that is not waitable."""

    def __init__(self, message: str, *, waitable: bool = True) -> None:
        super().__init__(message)
        self.waitable = waitable


class ReconcileFailed(MlBatchError):
    """One or more re-scores of a reconcile failed (each day's cause is in its report). Not deterministic: a
    retry re-checks every day, and only the days still changed are re-scored again."""


class SourceError(MlBatchError):
    """The spec's source cannot be read (missing table or column, wrong type)."""

    deterministic = True


class PublishError(MlBatchError):
    """The staged predictions failed their audit; nothing was published."""

    deterministic = True


class PublishBlocked(PublishError):
    """The swap did not get its locks in `SwapLocking.attempts` tries: a transient failure (retry later);
    nothing was published and the run's staging table is kept."""

    deterministic = False  # the lock holder ends: a retry of the same plan publishes


class RunAbandoned(MlBatchError):
    """A step was started for a run that the cleanup has already declared dead and cleaned up."""

    deterministic = True  # its staging is gone: only a new plan of the run can publish the day


class LabelJoinError(TrainingError):
    """Labels do not join their rows one to one (a key on several days without `labels.date_column`, or
    several label rows for one entity and day); raised by training and by realized performance alike."""


def is_deterministic(exc: BaseException) -> bool:
    """True when `exc` is an ml-batch failure that a retry of the same step cannot fix."""
    return isinstance(exc, MlBatchError) and exc.deterministic


def first_line(exc: BaseException) -> str:
    """The first non-empty line of what `exc` says, or its type's name when it says nothing.

    For a database error wrapped by SQLAlchemy, the driver's or server's own words (`exc.orig`), without
    SQLAlchemy's statement and parameters. The one rule for quoting an error in a log line or a message:
    it never raises, whatever the error holds (an empty message included).
    """
    inner = getattr(exc, "orig", None)
    said = inner if isinstance(inner, BaseException) else exc
    return first_line_of(str(said)) or type(said).__name__


def first_line_of(text: str) -> str:
    """The first non-empty line of `text`, stripped ("" when it has none): what a message or a run's `error`
    quotes of a multi-line text (a traceback, a statement and its bind parameters)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def without_values(exc: BaseException) -> str:
    """The first line of `exc` as readers who may not see the source's values get it (the analyst role, the
    UI's viewers: `runs.error`, a stored alert): a batch failure, also as the cause of another error (Airflow's
    fail-without-retry exception), without its failing values (`ValidationFailed.without_values`); anything
    else as `first_line`. The task log keeps the values."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ValidationFailed):
            return first_line_of(seen.without_values) or first_line(seen)
        seen = seen.__cause__
    return first_line(exc)


def summary(exc: BaseException) -> str:
    """An error as one entry of a run's `error`, on one line: an ml-batch error's first line without the
    source's values (`without_values`: its message is written to be read), anything else as `Type: first
    line` (e.g. `OperationalError: server closed the connection ...`). The traceback belongs in the log,
    never in the run's row."""
    if isinstance(exc, MlBatchError):
        return without_values(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"
