"""The model registry, in PostgreSQL: numbered versions, mutable aliases, an audit trail.

- Artifacts are joblib bytes stored in `model_versions.artifact` (bytea) with their sha256, so a version
  and its bytes are written in the same transaction and backed up with the database; no file store can
  drift from the metadata.
- Each artifact is also signed (`ml_batch.model.signing`): an HMAC-SHA256 of (model, version, bytes) keyed
  by a secret that is not in the database (`ml_batch.config.artifact_key`). Whoever can write the registry
  tables can replace the bytes and their sha256 together, but cannot compute the HMAC, so a substituted
  pickle is refused before it is unpickled (unpickling is what would run its code).
- `model_aliases` has the primary key (model_name, alias): at most one version per alias per model, enforced
  by PostgreSQL whatever callers do at the same time. Alias moves also take a per-model advisory lock so the
  audited `from_version` is always the one really replaced. The lock's key names the ml-batch schema
  (`ml_batch.db.locks.key`), so two installations in two schemas of one database never wait for each other.
- Metrics and audit details are stored JSON-safe (`ml_batch.jsonvalues.json_safe`): a metric that is no
  finite number (NaN, an infinity) is null.
- Every alias move writes a `model_events` row (who, when, from, to, why).
- Loading checks the sha256 (corruption), then the HMAC (substitution), both *before* unpickling
  (`signing.verify_artifact`), and the feature schema against the spec (`schema.check_feature_schema`)
  before returning. Versions without
  an HMAC (registered before migration 0004) are refused: nothing can vouch for their bytes.
- Each version records the PostgreSQL type of each source column it reads (`model_versions.source_types`,
  from `ml_batch.db.spec_check.source_column_types`): a scoring plan names a column that changed type since.
- Each version records the Python and library versions it was fitted with (`model_versions.environment`,
  `ml_batch.model.environment.current`). Loading it under another scikit-learn minor, or another major of
  python/numpy/scipy/pandas/joblib, is refused (`EnvironmentMismatch`, naming each library and both versions)
  before unpickling, unless `ml-batch models verify` re-scored it in a matching environment
  (`verified_environments`, `ml_batch.model.verify`). A version registered before migration 0013 has no
  recorded environment: it loads, with one warning per process. scikit-learn's `InconsistentVersionWarning`
  at unpickling (a verified environment) is logged, once per unpickling, never swallowed.
- A process unpickles a version at most once: every load fetches and verifies the bytes as above, and only
  then looks up the pipeline unpickled earlier from the same (model, version, artifact sha256).
- A version may carry its estimator compiled to a shared library, signed like the artifact (`model.compiled`).
- sklearn and joblib are imported by the functions that need them, so metadata calls stay light.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ml_batch.config import artifact_key
from ml_batch.db import locks
from ml_batch.db.tables import CHALLENGER as CHALLENGER  # the aliases live with the table; named here too
from ml_batch.db.tables import CHAMPION, model_aliases, model_events, model_versions
from ml_batch.errors import RegistryError
from ml_batch.jsonvalues import json_safe
from ml_batch.model import environment
from ml_batch.model.environment import VerifiedEnvironment
from ml_batch.model.history import champion_stack as champion_stack  # a pure replay, named here too
from ml_batch.model.provenance import code_version
from ml_batch.model.schema import check_feature_schema, check_pipeline_schema
from ml_batch.model.signing import key_id, sign, sign_library, verify_artifact
from ml_batch.spec import Spec

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)


# The audit events that move an alias.
_ALIAS_MOVES = ("promoted", "rollback", "alias_removed")
_META_COLUMNS = [c for c in model_versions.c
                 if c.name not in ("artifact", "artifact_hmac", "reference_profile", "holdout_sample",
                                   "compiled_library", "compiled_hmac")]
# Verified, unpickled pipelines of this process by (model, version, artifact sha256): champion and challenger
# of a model or two, so a few entries; the oldest goes first.
_LOADED: dict[tuple[str, int, str], Any] = {}
_LOADED_MAX = 4


@dataclass(frozen=True)
class ModelVersion:
    """A registered version's metadata (never the artifact bytes)."""

    model_name: str
    version: int
    artifact_sha256: str
    artifact_key_id: str | None
    artifact_size: int
    feature_schema: list[dict[str, str]]
    task: str
    estimator: str
    params: dict[str, Any]
    train_start: dt.date | None
    train_end: dt.date | None
    holdout_start: dt.date | None
    holdout_end: dt.date | None
    n_train: int | None
    n_holdout: int | None
    metrics: dict[str, float]
    code_version: str
    spec_sha256: str
    source: str
    created_by: str
    created_at: dt.datetime
    tags: dict[str, Any]
    n_excluded: int | None = None
    exclusions: dict[str, Any] | None = None
    environment: dict[str, str] | None = None
    verified_environments: list[dict[str, Any]] = field(default_factory=list)
    # The source column types it was trained or registered on (`ml_batch.db.spec_check.source_column_types`);
    # None for a version registered before migration 0014.
    source_types: dict[str, str] | None = None
    # A multiclass version's class names in probability order, and its rows per class ({"train"|"holdout": ...}).
    classes: list[str] | None = None
    class_counts: dict[str, dict[str, int]] | None = None
    compiled: dict[str, Any] | None = None  # what compiling found (`ml_batch.model.compiled`); None: not tried
    aliases: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The metadata as JSON (days and times as ISO text), as the CLI prints it and the DAG returns it."""
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class AliasMove:
    """The outcome of a promotion or rollback."""

    model_name: str
    alias: str
    from_version: int | None
    to_version: int
    changed: bool


@dataclass(frozen=True)
class LoadedModel:
    """A verified, unpickled version ready to score."""

    info: ModelVersion
    pipeline: Pipeline


@dataclass(frozen=True)
class NewVersion:
    """What `register` needs besides the pipeline: where it came from and how it scored."""

    metrics: dict[str, float]
    source: str = "trained"
    window: dict[str, str] = field(default_factory=dict)
    n_train: int | None = None
    n_holdout: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    # The training window's rows left out because scoring would quarantine them (`ml_batch.model.validity`).
    n_excluded: int | None = None
    exclusions: dict[str, Any] | None = None
    # A few holdout rows' features and their scores at training, which `models verify` re-scores.
    holdout_sample: dict[str, Any] | None = None
    # Source column types at training or registration (`spec_check`), compared by every scoring plan.
    source_types: dict[str, str] | None = None
    classes: list[str] | None = None  # multiclass only: `training.class_names` and the rows per class
    class_counts: dict[str, dict[str, int]] | None = None
    compiled_library: bytes | None = None  # `ml_batch.model.compiled`'s library, signed at insert like the artifact
    compiled: dict[str, Any] | None = None


def serialize(pipeline: Pipeline) -> bytes:
    """joblib bytes of a pipeline."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer, compress=3)
    return buffer.getvalue()


def register(engine: sa.Engine, spec: Spec, pipeline: Pipeline, new: NewVersion, *, actor: str) -> ModelVersion:
    """Store `pipeline` as the next version of `spec.name`, signed, and audit it.

    Args:
        engine: The ml-batch database.
        spec: The model's spec (the pipeline must fit its features: `check_pipeline_schema`).
        pipeline: A fitted sklearn Pipeline.
        new: Its metrics, source, window, row counts, tags and drift reference.
        actor: Who registers it (recorded).

    Returns:
        The new version.
    """
    check_pipeline_schema(spec, pipeline)
    key = artifact_key()
    artifact = serialize(pipeline)
    sha, library = hashlib.sha256(artifact).hexdigest(), new.compiled_library
    with engine.begin() as conn:
        _lock_model(conn, spec.name)
        version = _next_version(conn, spec.name)
        conn.execute(model_versions.insert().values(
            model_name=spec.name, version=version, artifact=artifact, artifact_sha256=sha,
            artifact_hmac=sign(key, spec.name, version, artifact), artifact_key_id=key_id(key),
            artifact_size=len(artifact), created_by=actor, **_described(spec, new), compiled_library=library,
            compiled_hmac=None if library is None else sign_library(key, spec.name, version, library),
        ))
        _audit(conn, spec.name, "registered", None, None, version, actor,
               f"{new.source} version", {"sha256": sha, "metrics": new.metrics, **new.window})
    logger.info("registered %s version %d (%d bytes, sha256 %s)", spec.name, version, len(artifact), sha[:12])
    return get_version(engine, spec.name, version)


def _next_version(conn: sa.Connection, model_name: str) -> int:
    latest = conn.execute(
        sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model_name == model_name)
    ).scalar_one()
    return int(latest or 0) + 1


def _described(spec: Spec, new: NewVersion) -> dict[str, Any]:
    """The `model_versions` columns that describe a new version: spec, window, counts, metrics, provenance."""
    window = {k: dt.date.fromisoformat(v) for k, v in new.window.items() if k != "as_of"}
    return {
        "feature_schema": spec.feature_schema, "task": spec.model.task, "estimator": spec.model.estimator,
        "params": spec.model.params, "train_start": window.get("train_start"), "train_end": window.get("train_end"),
        "holdout_start": window.get("holdout_start"), "holdout_end": window.get("holdout_end"),
        "n_train": new.n_train, "n_holdout": new.n_holdout, "metrics": json_safe(new.metrics),
        "code_version": code_version(), "spec_sha256": spec.sha256(), "source": new.source, "tags": new.tags,
        "reference_profile": new.profile, "n_excluded": new.n_excluded, "exclusions": new.exclusions,
        "holdout_sample": new.holdout_sample, "source_types": new.source_types, "classes": new.classes,
        "class_counts": new.class_counts, "compiled": new.compiled,
        # the stored bytes are joblib whatever the source; skops' version is recorded for registered files
        "environment": environment.current(skops=new.source == "registered"),
    }


def get_version(engine: sa.Engine, model_name: str, version: int | str) -> ModelVersion:
    """A version by number, or by alias (`champion`, `challenger`, ...)."""
    with engine.connect() as conn:
        number = _resolve(conn, model_name, version)
        row = conn.execute(
            sa.select(*_META_COLUMNS).where(
                model_versions.c.model_name == model_name, model_versions.c.version == number
            )
        ).mappings().one()
        aliases = _aliases_by_version(conn, model_name).get(number, [])
    return ModelVersion(**row, aliases=aliases)


def list_versions(engine: sa.Engine, model_name: str | None = None) -> list[ModelVersion]:
    """All versions (of one model, or of every model), newest first within a model."""
    stmt = sa.select(*_META_COLUMNS).order_by(model_versions.c.model_name, model_versions.c.version.desc())
    if model_name is not None:
        stmt = stmt.where(model_versions.c.model_name == model_name)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
        aliases = conn.execute(sa.select(model_aliases)).mappings().all()
    by_key: dict[tuple[str, int], list[str]] = {}
    for alias in aliases:
        by_key.setdefault((alias["model_name"], alias["version"]), []).append(alias["alias"])
    return [ModelVersion(**row, aliases=sorted(by_key.get((row["model_name"], row["version"]), []))) for row in rows]


def aliases(engine: sa.Engine, model_name: str) -> dict[str, int]:
    """alias → version for one model."""
    with engine.connect() as conn:
        return _aliases_by_alias(conn, model_name)


def tagged_version(engine: sa.Engine, model_name: str, tags: dict[str, Any]) -> ModelVersion | None:
    """The newest version whose tags include every item of `tags` (such as the DAG run that registered it)."""
    with engine.connect() as conn:
        number = conn.execute(
            sa.select(sa.func.max(model_versions.c.version)).where(
                model_versions.c.model_name == model_name, model_versions.c.tags.contains(tags))
        ).scalar_one()
    return None if number is None else get_version(engine, model_name, number)


def add_verified_environment(engine: sa.Engine, model_name: str, version: int, entry: VerifiedEnvironment, *,
                             actor: str, details: dict[str, Any]) -> None:
    """Append `entry` to a version's `verified_environments` and audit it ("verified"), in one transaction."""
    with engine.begin() as conn:
        _lock_model(conn, model_name)
        column = model_versions.c.verified_environments
        conn.execute(
            model_versions.update()
            .where(model_versions.c.model_name == model_name, model_versions.c.version == version)
            .values(verified_environments=column.concat(sa.cast([json_safe(entry.as_dict())], column.type)))
        )
        _audit(conn, model_name, "verified", None, None, version, actor,
               f"re-scored {entry.rows} holdout rows under {environment.describe(entry.environment)}", details)


def reference_profile(engine: sa.Engine, model_name: str, version: int) -> dict[str, Any] | None:
    """The drift reference stored with a version at registration (None for versions registered without one)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(model_versions.c.reference_profile).where(
                model_versions.c.model_name == model_name, model_versions.c.version == version
            )
        ).scalar_one_or_none()


def champion_on_day(engine: sa.Engine, model: str, day: dt.date) -> int:
    """The version that was champion at the end of `day` (UTC), from the alias audit trail.

    Every move of the champion alias is replayed: the last one before the end of the day decides, whether a
    promotion, a rollback or the alias's removal (after which there was no champion).
    """
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    with engine.connect() as conn:
        last = conn.execute(
            sa.select(model_events.c.event, model_events.c.from_version, model_events.c.to_version)
            .where(
                model_events.c.model_name == model,
                model_events.c.alias == CHAMPION,
                model_events.c.event.in_(_ALIAS_MOVES),
                model_events.c.created_at < end,
            )
            .order_by(model_events.c.id.desc())
            .limit(1)
        ).first()
    if last is None:
        raise RegistryError(f"model {model!r} had no champion at the end of {day} (UTC)")
    if last.event == "alias_removed":
        raise RegistryError(
            f"model {model!r} had no champion at the end of {day} (UTC): the champion alias (version "
            f"{last.from_version}) was removed before then; pass an explicit version to score that day"
        )
    return int(last.to_version)


def record_event(
    engine: sa.Engine, model_name: str, event: str, *, actor: str, reason: str,
    from_version: int | None = None, to_version: int | None = None, alias: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an audit event that is not an alias move (e.g. a gate decision)."""
    with engine.begin() as conn:
        _audit(conn, model_name, event, alias, from_version, to_version, actor, reason, details or {})


def events(engine: sa.Engine, model_name: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest audit events of a model, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(model_events)
            .where(model_events.c.model_name == model_name)
            .order_by(model_events.c.id.desc())
            .limit(limit)
        ).mappings().all()
    return [dict(row) for row in rows]


def find_event(engine: sa.Engine, model_name: str, event: str, details: dict[str, Any]) -> dict[str, Any] | None:
    """The newest `event` of a model whose details include every item of `details`, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(model_events)
            .where(model_events.c.model_name == model_name, model_events.c.event == event,
                   model_events.c.details.contains(details))
            .order_by(model_events.c.id.desc())
            .limit(1)
        ).mappings().first()
    return dict(row) if row else None


def alias_history(engine: sa.Engine, model_name: str, alias: str) -> list[dict[str, Any]]:
    """Every move of `alias` (promotions, rollbacks, removals), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(model_events)
            .where(model_events.c.model_name == model_name, model_events.c.alias == alias,
                   model_events.c.event.in_(_ALIAS_MOVES))
            .order_by(model_events.c.id)
        ).mappings().all()
    return [dict(row) for row in rows]


def promote(
    engine: sa.Engine, model_name: str, version: int, *, alias: str = CHAMPION, actor: str, reason: str
) -> AliasMove:
    """Point `alias` at `version` (audited). Promoting the version the alias already has changes nothing."""
    with engine.begin() as conn:
        _lock_model(conn, model_name)
        _require_version(conn, model_name, version)
        current = _current(conn, model_name, alias)
        if current == version:
            return AliasMove(model_name, alias, current, version, changed=False)
        _set_alias(conn, model_name, alias, version, actor)
        _audit(conn, model_name, "promoted", alias, current, version, actor, reason, {})
    logger.info("%s: %s moved from %s to %d by %s (%s)", model_name, alias, current, version, actor, reason)
    return AliasMove(model_name, alias, current, version, changed=True)


def remove_alias(engine: sa.Engine, model_name: str, alias: str, *, actor: str, reason: str) -> int | None:
    """Remove `alias` (audited); returns the version it pointed at, None when it was not set."""
    with engine.begin() as conn:
        _lock_model(conn, model_name)
        current = _current(conn, model_name, alias)
        if current is None:
            return None
        conn.execute(
            model_aliases.delete().where(model_aliases.c.model_name == model_name, model_aliases.c.alias == alias)
        )
        _audit(conn, model_name, "alias_removed", alias, current, None, actor, reason, {})
    return current


def rollback(engine: sa.Engine, model_name: str, *, actor: str, reason: str) -> AliasMove:
    """Move `champion` back to the champion before the current one (audited).

    The champion history is replayed from the audit trail as a stack (a promotion pushes, a rollback
    pops), so repeated rollbacks walk further back (3 → 2 → 1) instead of toggling between two versions.
    """
    with engine.begin() as conn:
        _lock_model(conn, model_name)
        current = _current(conn, model_name, CHAMPION)
        if current is None:
            raise RegistryError(f"model {model_name!r} has no champion to roll back")
        history = conn.execute(
            sa.select(model_events.c.event, model_events.c.to_version)
            .where(
                model_events.c.model_name == model_name,
                model_events.c.alias == CHAMPION,
                model_events.c.event.in_(["promoted", "rollback"]),
            )
            .order_by(model_events.c.id)
        ).all()
        stack = champion_stack([(event, version) for event, version in history])
        previous = [v for v in stack if v != current]
        if not previous:
            raise RegistryError(
                f"model {model_name!r}: champion is version {current} and there is no earlier champion to roll back to"
            )
        target = previous[-1]
        _set_alias(conn, model_name, CHAMPION, target, actor)
        _audit(conn, model_name, "rollback", CHAMPION, current, target, actor, reason, {})
    logger.info("%s: champion rolled back from %d to %d by %s (%s)", model_name, current, target, actor, reason)
    return AliasMove(model_name, CHAMPION, current, target, changed=True)


def load(engine: sa.Engine, spec: Spec, version: int | str = CHAMPION, *,
         refuse_other_environment: bool = True) -> LoadedModel:
    """Fetch, verify (sha256, HMAC, feature schema, then environment) and unpickle a version of `spec.name`.

    The unpickling happens at most once per process and (model, version, artifact sha256): see the module doc.

    Args:
        engine: The ml-batch database.
        spec: The model's spec, whose features the version must expect.
        version: A version number, or an alias (`champion` by default).
        refuse_other_environment: Refuse a version fitted under other library versions (see the module doc).
            Only `ml_batch.model.verify` turns it off: re-scoring such a version is how it gets verified.

    Returns:
        The version's metadata and its pipeline.

    Raises:
        ArtifactIntegrityError: The bytes are not the ones registered and signed (nothing was unpickled).
        FeatureSchemaMismatch: The version expects other features than the spec's.
        EnvironmentMismatch: The version was fitted under other library versions and not verified under
            these (nothing was unpickled).
        RegistryError: No such model, version or alias.
    """
    with engine.connect() as conn:
        number = _resolve(conn, spec.name, version)
        row = conn.execute(
            sa.select(model_versions.c.artifact, model_versions.c.artifact_sha256, model_versions.c.artifact_hmac,
                      model_versions.c.artifact_key_id).where(
                model_versions.c.model_name == spec.name, model_versions.c.version == number
            )
        ).one()
    artifact = bytes(row.artifact)
    verify_artifact(spec.name, number, artifact, row.artifact_sha256, row.artifact_hmac, row.artifact_key_id)
    info = get_version(engine, spec.name, number)
    check_feature_schema(spec, info.feature_schema, f"version {number}")
    if refuse_other_environment:
        environment.require_loadable(info.model_name, info.version, info.environment, info.verified_environments)
    return LoadedModel(info=info, pipeline=_unpickled_once(info, artifact))


def _unpickled_once(info: ModelVersion, artifact: bytes) -> Any:
    """The pipeline of verified bytes (`verify_artifact` passed): unpickled once per process and sha256.

    scikit-learn's `InconsistentVersionWarning` (a version verified under another scikit-learn) is logged
    once per unpickling, with the distinct messages joined; other warnings are passed on as they were.
    """
    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    key = (info.model_name, info.version, info.artifact_sha256)
    pipeline = _LOADED.get(key)
    if pipeline is not None:
        logger.info("model %s version %d: verified; unpickled earlier in this process", info.model_name,
                    info.version)
        return pipeline
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        pipeline = joblib.load(io.BytesIO(artifact))
    inconsistent = sorted({str(w.message) for w in caught if issubclass(w.category, InconsistentVersionWarning)})
    if inconsistent:
        logger.warning("model %s version %d unpickled under other library versions than it was pickled with "
                       "(verified environments: %d): %s", info.model_name, info.version,
                       len(info.verified_environments), " | ".join(inconsistent))
    for w in caught:
        if not issubclass(w.category, InconsistentVersionWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    while len(_LOADED) >= _LOADED_MAX:
        del _LOADED[next(iter(_LOADED))]
    _LOADED[key] = pipeline
    return pipeline


# -- internals ---------------------------------------------------------------------------------------------
def _lock_model(conn: sa.Connection, model_name: str) -> None:
    # Serialises version numbering and alias moves per model of this schema; released at commit/rollback.
    locks.xact_lock(conn, locks.key("model", model_name, schema=locks.schema_of(conn)))


def _resolve(conn: sa.Connection, model_name: str, version: int | str) -> int:
    if isinstance(version, int) or (isinstance(version, str) and version.isdigit()):
        number = int(version)
        _require_version(conn, model_name, number)
        return number
    current = _current(conn, model_name, version)
    if current is None:
        known = sorted(_aliases_by_alias(conn, model_name))
        if not _model_exists(conn, model_name):
            raise RegistryError(f"model {model_name!r} has no registered versions")
        raise RegistryError(
            f"model {model_name!r} has no alias {version!r} (aliases set: {', '.join(known) or 'none'})"
        )
    return current


def _model_exists(conn: sa.Connection, model_name: str) -> bool:
    return conn.execute(
        sa.select(sa.literal(1)).where(model_versions.c.model_name == model_name).limit(1)
    ).first() is not None


def _require_version(conn: sa.Connection, model_name: str, version: int) -> None:
    found = conn.execute(
        sa.select(model_versions.c.version).where(
            model_versions.c.model_name == model_name, model_versions.c.version == version
        )
    ).first()
    if found is None:
        versions = conn.execute(
            sa.select(model_versions.c.version)
            .where(model_versions.c.model_name == model_name)
            .order_by(model_versions.c.version)
        ).scalars().all()
        known = ", ".join(map(str, versions)) or "none"
        raise RegistryError(f"model {model_name!r} has no version {version} (versions: {known})")


def _current(conn: sa.Connection, model_name: str, alias: str) -> int | None:
    return conn.execute(
        sa.select(model_aliases.c.version).where(
            model_aliases.c.model_name == model_name, model_aliases.c.alias == alias
        )
    ).scalar_one_or_none()


def _aliases_by_alias(conn: sa.Connection, model_name: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(model_aliases.c.alias, model_aliases.c.version).where(model_aliases.c.model_name == model_name)
    ).all()
    return {alias: version for alias, version in rows}


def _aliases_by_version(conn: sa.Connection, model_name: str) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    for alias, version in sorted(_aliases_by_alias(conn, model_name).items()):
        result.setdefault(version, []).append(alias)
    return result


def _set_alias(conn: sa.Connection, model_name: str, alias: str, version: int, actor: str) -> None:
    from sqlalchemy.dialects.postgresql import insert

    stmt = insert(model_aliases).values(model_name=model_name, alias=alias, version=version, set_by=actor)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[model_aliases.c.model_name, model_aliases.c.alias],
            set_={"version": stmt.excluded.version, "set_by": stmt.excluded.set_by, "set_at": sa.func.now()},
        )
    )


def _audit(conn: sa.Connection, model_name: str, event: str, alias: str | None, from_version: int | None,
           to_version: int | None, actor: str, reason: str, details: dict[str, Any]) -> None:
    # Details are JSON-safe by the one rule: a number that is no finite number is stored as null.
    conn.execute(
        model_events.insert().values(
            model_name=model_name, event=event, alias=alias, from_version=from_version,
            to_version=to_version, actor=actor, reason=reason, details=json_safe(details),
        )
    )


