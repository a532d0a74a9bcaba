"""`ml-batch db ...`: start, migrate, show and stop the database; grant the analyst and UI roles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ml_batch.cli.common import (
    JsonOpt,
    db_app,
    load_settings,
    mask_url,
    open_engine,
    out,
    print_json,
    step,
)

if TYPE_CHECKING:
    from ml_batch.ops.grants import AnalystGrants


# -- db ----------------------------------------------------------------------------------------------------
@db_app.command("up")
def db_up(as_json: JsonOpt = False) -> None:
    """Start the embedded server if needed (unless ML_BATCH_DATABASE_URL is set) and apply migrations."""
    from ml_batch.db.engine import make_engine, resolve_url
    from ml_batch.db.migrate import upgrade

    settings = load_settings()
    with step("starting PostgreSQL and applying migrations", as_json):
        revision = upgrade(make_engine(settings), settings.schema)
    url = resolve_url(settings)
    data = {"url": mask_url(url), "schema": settings.schema, "migration": revision,
            "embedded": settings.database_url is None, "home": str(settings.home)}
    if as_json:
        print_json(data)
    else:
        kind = "embedded" if data["embedded"] else "external"
        out.print(f"database up ({kind}): {data['url']}  schema {settings.schema} at migration {revision}")


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply ml-batch's migrations (what `db up` does; the name the schema check's message gives)."""
    db_up(as_json)


@db_app.command("url")
def db_url(
    show_password: Annotated[bool, typer.Option("--show-password", help="Print the password too.")] = False,
) -> None:
    """Print the SQLAlchemy URL in use (the password is masked unless --show-password)."""
    from ml_batch.db.engine import resolve_url

    url = resolve_url(load_settings(), start=False)
    out.print(url if show_password else mask_url(url), soft_wrap=True, highlight=False)


@db_app.command("down")
def db_down() -> None:
    """Stop the embedded server (an external ML_BATCH_DATABASE_URL server is never touched)."""
    from ml_batch.db.engine import embedded_server

    settings = load_settings()
    if settings.database_url:
        out.print("ML_BATCH_DATABASE_URL is set: that server is not managed by ml-batch, nothing stopped")
        return
    stopped = embedded_server(settings).stop()
    out.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@db_app.command("grant-analyst")
def db_grant_analyst(
    role: Annotated[str, typer.Argument(help="An existing PostgreSQL role (create it with LOGIN first).")],
    as_json: JsonOpt = False,
) -> None:
    """Grant ROLE read-only access to predictions and monitoring; nothing on artifacts or raw quarantined rows.

    SELECT on every model's predictions table and `_latest` view, runs, drift, performance, alerts and the
    registry's metadata (not the artifact bytes), and on quarantine without `row_data`. Idempotent; run it
    again after adding a model. See docs/analysts.md.
    """
    from ml_batch.ops.grants import grant_analyst
    from ml_batch.spec_folder import load_specs

    settings = load_settings()
    engine = open_engine(settings)
    with step(f"granting {role} read access", as_json):
        granted = grant_analyst(engine, settings.schema, load_specs(settings.specs_dir).values(), role)
    _print_grants(granted, "grant-analyst", "", as_json)


@db_app.command("grant-ui")
def db_grant_ui(
    role: Annotated[str, typer.Argument(help="An existing PostgreSQL role (create it with LOGIN first).")],
    as_json: JsonOpt = False,
) -> None:
    """Grant ROLE what ml-batch's pages read: the analyst's grants plus the stored reports (drift, GX results).

    The pages read through ROLE when the Airflow connection `ml_batch_ui` (or ML_BATCH_UI_DATABASE_URL) names
    it; an editor's raw quarantined rows are read as the owner. Idempotent; run it again after adding a model.
    See docs/operations.md.
    """
    from ml_batch.ops.grants import grant_ui
    from ml_batch.spec_folder import load_specs

    settings = load_settings()
    engine = open_engine(settings)
    with step(f"granting {role} the pages' read access", as_json):
        granted = grant_ui(engine, settings.schema, load_specs(settings.specs_dir).values(), role)
    _print_grants(granted, "grant-ui", " and stored reports", as_json)


def _print_grants(granted: AnalystGrants, command: str, extra: str, as_json: bool) -> None:
    """What a grant command granted: its JSON, or one line and one per predictions table not created yet."""
    if as_json:
        print_json(granted.as_dict())
        return
    out.print(f"{granted.role}: USAGE on {', '.join(granted.schemas)}; SELECT on {len(granted.tables)} tables and "
              f"views{extra}; column by column {', '.join(granted.columns)} (no artifact bytes, no quarantined "
              "row_data)", soft_wrap=True, highlight=False)
    for table in granted.skipped:
        out.print(f"{table} does not exist yet (the model never published): run {command} again later",
                  soft_wrap=True, highlight=False)
