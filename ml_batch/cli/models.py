"""`ml-batch specs check`, `ml-batch train` and `ml-batch models ...`: specs, training and the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ml_batch.cli.common import (
    JsonOpt,
    ModelOpt,
    app,
    day_option,
    find_spec,
    load_settings,
    models_app,
    open_engine,
    out,
    print_json,
    specs_app,
    step,
)
from ml_batch.tasks import DEFAULT_METRIC

if TYPE_CHECKING:
    from ml_batch.config import Settings
    from ml_batch.spec_folder import SpecScan


# -- specs -------------------------------------------------------------------------------------------------
@specs_app.command("check")
def specs_check(
    db: Annotated[bool, typer.Option(
        "--db", help="Also check each valid spec against the database: its tables or queries exist and return "
                     "every column it names, with usable types, and no feature column holds only NULLs.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate every spec in the specs folder; every file is reported, and any problem exits with code 1."""
    from ml_batch.errors import SpecError
    from ml_batch.spec_folder import scan_specs

    settings = load_settings()
    scan = scan_specs(settings.specs_dir)
    problems = _db_problems(scan, settings, as_json) if db and scan.specs else {}
    bad = len(scan.errors) + sum(1 for found in problems.values() if found)
    if as_json:
        print_json({
            "ok": bad == 0,
            "specs": {name: {"file": str(scan.paths.get(name) or ""), "spec": spec.model_dump(mode="json"),
                             **({"problems": problems.get(name, [])} if db else {})}
                      for name, spec in scan.specs.items()},
            "errors": [{"file": str(error.path), "message": error.message} for error in scan.errors],
        })
    else:
        _print_check(scan, problems, db, settings.specs_dir)
    if bad:
        checked = len(scan.specs) + len(scan.errors)
        raise SpecError(f"{bad} of {checked} spec files in {settings.specs_dir} have problems (listed above)")


def _db_problems(scan: SpecScan, settings: Settings, quiet: bool) -> dict[str, list[str]]:
    """Each valid spec's problems against the database (`ml_batch.db.spec_check`), as lines."""
    from ml_batch.db.spec_check import check_spec_db

    engine = open_engine(settings)
    with step("checking the specs against the database", quiet):
        return {name: [str(problem) for problem in check_spec_db(engine, spec, origin=scan.paths.get(name))]
                for name, spec in scan.specs.items()}


def _print_check(scan: SpecScan, problems: dict[str, list[str]], db: bool, specs_dir: Path) -> None:
    """`ok  name: ...` per good spec and `error  <line>` per problem, in file order."""
    entries: list[tuple[str, list[str]]] = [(str(error.path), [f"error  {error.message}"]) for error in scan.errors]
    for name, spec in scan.specs.items():
        found = problems.get(name, [])
        summary = (f"ok  {name}: {len(spec.features)} features, source {spec.source.table or 'query'}, "
                   f"predictions {spec.predictions.table}" + ("; fits the database" if db else ""))
        entries.append((str(scan.paths.get(name) or name), [f"error  {line}" for line in found] or [summary]))
    for _, lines in sorted(entries):
        for line in lines:
            out.print(line, soft_wrap=True, highlight=False, markup=False)
    if not entries:
        out.print(f"no spec files in {specs_dir}")


# -- train -------------------------------------------------------------------------------------------------
@app.command("train")
def train_cmd(
    model: ModelOpt,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Use labels known on this day (default today).")]
    = None,
    promote: Annotated[bool, typer.Option("--promote", help="Run the gate and promote if it passes.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a new version on the labels known on --as-of and register it.

    The spec is first checked against the database (`ml_batch.db.spec_check`): a mistake in it is one
    `error:` line naming the spec file, the field and the column.
    """
    from ml_batch.promotion.retrain import train_and_register
    from ml_batch.spec_folder import read_spec

    settings = load_settings()
    pinned = read_spec(settings.specs_dir, model)
    spec = pinned.spec
    day = day_option(as_of, "--as-of")
    engine = open_engine(settings)
    with step(f"training {model} as of {day}", as_json):
        outcome = train_and_register(engine, spec, day, actor=settings.user, promote=promote,
                                     spec_file=pinned.path)
    if as_json:
        print_json(outcome.as_dict())
        return
    v = outcome.version
    out.print(f"registered {model} version {v.version}: {spec.training.metric} "
              f"{v.metrics.get(spec.training.metric)} on holdout {v.holdout_start}..{v.holdout_end} "
              f"({v.n_train} train / {v.n_holdout} holdout rows)")
    if v.classes is not None:
        out.print(f"classes: {classes_text(v.classes, v.class_counts)}", soft_wrap=True, highlight=False,
                  markup=False)
    if outcome.decision is not None:
        verdict = "promoted to champion" if outcome.promoted else "not promoted"
        out.print(f"gate: {verdict}: {outcome.decision.reason}")


# -- models ------------------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Registered versions with their aliases, holdout metric, excluded training rows and scikit-learn."""
    from ml_batch.model import registry
    from ml_batch.model.validity import excluded_text

    versions = registry.list_versions(open_engine(), model)
    if as_json:
        print_json([v.as_dict() for v in versions])
        return
    table = Table("model", "version", "aliases", "metric", "holdout", "excluded", "scikit-learn", "source",
                  "created", "by")
    for v in versions:
        shown = (DEFAULT_METRIC["multiclass"],) if v.classes is not None else (DEFAULT_METRIC["binary"],
                                                                                 DEFAULT_METRIC["regression"])
        metric = next(iter(k for k in shown if k in v.metrics), None)
        score = f"{metric} {v.metrics[metric]:.4f}" if metric and v.metrics[metric] is not None else "-"
        table.add_row(v.model_name, str(v.version), ",".join(v.aliases) or "-", score,
                      f"{v.holdout_start}..{v.holdout_end}", excluded_text(v.n_excluded, v.exclusions),
                      (v.environment or {}).get("scikit-learn", "not recorded"), v.source,
                      f"{v.created_at:%Y-%m-%d %H:%M}", v.created_by)
    out.print(table if versions else "no registered versions")
    for v in versions:
        if v.classes is not None:
            out.print(f"{v.model_name} version {v.version} classes: {classes_text(v.classes, v.class_counts)}",
                      soft_wrap=True, highlight=False, markup=False)


def classes_text(classes: list[str], counts: dict[str, dict[str, int]] | None) -> str:
    """A multiclass version's classes in its order, each with its rows in each recorded part of its window:
    `billing (train 812, holdout 270), other (...)` (a registered version records its holdout's only)."""
    counts = counts or {}

    def one(name: str) -> str:
        parts = [f"{part} {counts[part][name]}" for part in ("train", "holdout") if name in (counts.get(part) or {})]
        return f"{name} ({', '.join(parts)})" if parts else name

    return ", ".join(one(name) for name in classes)


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Option("--version", help="Version number or alias.")] = "champion",
    as_json: JsonOpt = False,
) -> None:
    """One version in full, plus the model's recent audit events."""
    from ml_batch.model import registry
    from ml_batch.model.compiled import describe

    engine = open_engine()
    info = registry.get_version(engine, model, version)
    history = registry.events(engine, model, limit=20)
    if as_json:
        print_json({"version": info.as_dict(), "events": history})
        return
    table = Table("field", "value", show_header=False)
    for key, value in info.as_dict().items():
        if key in ("classes", "class_counts") and info.classes is None:
            continue  # binary and regression versions have none
        if key == "classes":
            table.add_row(key, classes_text(info.classes or [], info.class_counts))
            continue
        if key == "compiled":
            table.add_row("scoring path", describe(info.compiled))
            continue
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    out.print(table)
    events = Table("when", "event", "alias", "from", "to", "by", "why", title="audit trail (newest first)")
    for e in history:
        events.add_row(f"{e['created_at']:%Y-%m-%d %H:%M:%S}", e["event"], e["alias"] or "-",
                       str(e["from_version"] or "-"), str(e["to_version"] or "-"), e["actor"], e["reason"])
    out.print(events)


@models_app.command("promote")
def models_promote(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="champion or challenger.")] = "champion",
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "manual promotion",
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version (audited)."""
    from ml_batch.model import registry

    settings = load_settings()
    move = registry.promote(open_engine(settings), model, version, alias=alias, actor=settings.user, reason=reason)
    _print_move(move, as_json)


@models_app.command("rollback")
def models_rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "manual rollback",
    as_json: JsonOpt = False,
) -> None:
    """Move champion back to the previous champion (audited)."""
    from ml_batch.model import registry

    settings = load_settings()
    move = registry.rollback(open_engine(settings), model, actor=settings.user, reason=reason)
    _print_move(move, as_json)


@models_app.command("register")
def models_register(
    model: ModelOpt,
    artifact: Annotated[Path, typer.Option(
        "--artifact", help="skops file (skops.io.dump) of a fitted sklearn Pipeline; pickle/joblib files are "
                           "refused, since loading them runs any code they contain.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Evaluate on the holdout known on this day.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a pipeline trained outside ml-batch (a skops file holding only trusted types), after schema
    and holdout checks; it is signed like a trained version."""
    from ml_batch.promotion.artifacts import register_artifact
    from ml_batch.spec_folder import read_spec

    settings = load_settings()
    pinned = read_spec(settings.specs_dir, model)
    spec = pinned.spec
    day = day_option(as_of, "--as-of")
    version = register_artifact(open_engine(settings), spec, artifact, day, actor=settings.user,
                                spec_file=pinned.path)
    if as_json:
        print_json(version.as_dict())
        return
    out.print(f"registered {model} version {version.version} from {artifact}: "
              f"{spec.training.metric} {version.metrics.get(spec.training.metric)} on holdout "
              f"{version.holdout_start}..{version.holdout_end}")
    if version.classes is not None:
        out.print(f"classes: {classes_text(version.classes, version.class_counts)}", soft_wrap=True,
                  highlight=False, markup=False)


@models_app.command("verify")
def models_verify(
    model: ModelOpt,
    version: Annotated[str, typer.Option("--version", help="Version number or alias (e.g. champion).")],
    tolerance: Annotated[float, typer.Option(
        "--tolerance", min=0.0, help="Largest absolute score difference accepted.")] = 1e-9,
    as_json: JsonOpt = False,
) -> None:
    """Re-score VERSION's stored holdout sample under this environment's libraries and compare with the scores
    recorded at training; if they match, record this environment as verified, so the version loads here."""
    from ml_batch.model.environment import describe
    from ml_batch.model.verify import verify_version

    settings = load_settings()
    spec = find_spec(settings, model)
    engine = open_engine(settings)
    with step(f"verifying {model} version {version}", as_json):
        result = verify_version(engine, spec, version, actor=settings.user, tolerance=tolerance)
    if as_json:
        print_json(result.as_dict())
        return
    out.print(f"verified {model} version {result.version}: {result.rows} holdout rows re-scored under "
              f"{describe(result.environment)}, max abs difference {result.max_abs_diff:.3g} (tolerance "
              f"{result.tolerance:g}); it loads in this environment", highlight=False, soft_wrap=True)


def _print_move(move: Any, as_json: bool) -> None:
    if as_json:
        print_json(move.__dict__)
    elif not move.changed:
        out.print(f"{move.model_name}: {move.alias} is already version {move.to_version}; nothing changed")
    else:
        out.print(f"{move.model_name}: {move.alias} moved from {move.from_version or '-'} to {move.to_version}")
