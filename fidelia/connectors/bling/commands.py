"""``fidelia bling ...``: the operator's side of the Bling connector. Like fidelia/cli.py,
each command imports what it uses inside its function, so the ``fidelia`` command starts
without the connector, its HTTP client, the tables or the web app."""

import json
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fidelia.kit.errors import DomainError

if TYPE_CHECKING:
    from fidelia.connectors.bling.client import Bling
    from fidelia.kit.db import Database
    from fidelia.models import Tenant

bling_app = typer.Typer(help="The Bling ERP connector (seed 003).", no_args_is_help=True)
TenantOpt = Annotated[str, typer.Option("--tenant", help="The merchant's slug.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@contextmanager
def _context() -> Iterator[tuple["Database", "Bling"]]:
    from fidelia.connectors.bling.client import TOKEN_CACHE_SECONDS, Bling, BlingError
    from fidelia.kit.db import Database
    from fidelia.kit.migrate import upgrade
    from fidelia.kit.settings import get_settings

    settings = get_settings()
    upgrade(settings.database_url)
    db = Database(settings.database_url, pool_size=2)
    bling = Bling(db, settings, token_cache_seconds=TOKEN_CACHE_SECONDS)
    try:
        yield db, bling
    except (DomainError, BlingError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', None) or exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        bling.close()
        db.dispose()


def _tenant(db: "Database", slug: str) -> "Tenant":
    from fidelia.tenants.service import get_by_slug

    with db.session(readonly=True) as session:
        return get_by_slug(session, slug)


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str, ensure_ascii=False))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            for k, v in value.items():
                typer.echo(f"{key}.{k}: {v}")
        else:
            typer.echo(f"{key}: {value}")


@bling_app.command("connect")
def connect(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Start connecting a merchant: open the printed link in the browser that will
    authorise at Bling (valid 10 minutes, once)."""
    from fidelia.connectors.bling import service
    from fidelia.kit.settings import get_settings
    from fidelia.models import Tenant

    with _context() as (db, _bling):
        settings = get_settings()
        binding = secrets.token_urlsafe(24)
        with db.session() as session:
            merchant = session.get_one(Tenant, _tenant(db, tenant).id)
            url = service.start_connect(session, merchant, binding, settings)
        _emit(
            {
                "open": service.begin_url(settings, url, binding),
                "authorize_url": url,
                "binding": binding,
                "redirect_uri": service.redirect_uri(settings),
            },
            as_json,
        )


@bling_app.command("status")
def status(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """The merchant's connection: company, since when, last sync, last error, import."""
    from fidelia.connectors.bling import service
    from fidelia.models import Tenant

    with _context() as (db, _bling), db.session(readonly=True) as session:
        merchant = session.get_one(Tenant, _tenant(db, tenant).id)
        _emit(service.status(session, merchant), as_json)


@bling_app.command("situations")
def situations(
    tenant: TenantOpt,
    earning: Annotated[
        str, typer.Option(help="Comma-separated situation ids that mean 'sale done'.")
    ] = "",
    cancelled: Annotated[
        str, typer.Option(help="Comma-separated situation ids that mean 'cancelled'.")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """List Bling's sales situations and the merchant's choice; --earning/--cancelled set it."""
    from fidelia.connectors.bling import service
    from fidelia.models import Tenant

    with _context() as (db, bling):
        merchant = _tenant(db, tenant)
        if earning:
            try:
                chosen = [int(s) for s in earning.split(",") if s.strip()]
                gone = [int(s) for s in cancelled.split(",") if s.strip()]
            except ValueError as exc:
                raise typer.BadParameter("situation ids are numbers") from exc
            with db.session() as session:
                found = service.set_situations(
                    session, session.get_one(Tenant, merchant.id), chosen, gone
                )
            _emit(found, as_json)
            return
        rows = service.sales_situations(db, bling, merchant)
        if as_json:
            typer.echo(json.dumps(rows, ensure_ascii=False))
            return
        for row in rows:
            mark = "earns" if row["earns"] else "cancels" if row["cancels"] else "-"
            typer.echo(f"{row['id']:>8}  {mark:<8} {row['nome']}")


@bling_app.command("import")
def run_import(
    tenant: TenantOpt,
    since: Annotated[str, typer.Option(help="YYYY-MM-DD: contacts and sales since this day.")],
    as_json: JsonOpt = False,
) -> None:
    """Import contacts, then sales, since a date (resumes an interrupted import)."""
    try:
        day = date.fromisoformat(since)
    except ValueError as exc:
        raise typer.BadParameter("--since is YYYY-MM-DD") from exc
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from fidelia.connectors.bling import imports, service
    from fidelia.models import BlingImport, Tenant

    with _context() as (db, bling):
        merchant = _tenant(db, tenant)
        with db.session() as session:
            import_id = service.start_import(session, session.get_one(Tenant, merchant.id), day)[
                "id"
            ]
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("contacts {task.fields[contacts]}  orders {task.fields[orders]}"),
            TextColumn("earned {task.fields[earned]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=as_json or not sys.stderr.isatty()) as bar:
            task = bar.add_task("importing", total=None, contacts=0, orders=0, earned=0)

            def show(job: BlingImport) -> None:
                bar.update(
                    task,
                    description=f"{job.phase} page {job.page}",
                    contacts=job.contacts,
                    orders=job.orders,
                    earned=job.earned,
                )

            job = imports.run_import(db, bling, import_id, on_page=show)
        if job is None:
            typer.echo("error: this import is being run by another process", err=True)
            raise typer.Exit(1)
        _emit(imports.progress(job), as_json)


@bling_app.command("reconcile")
def reconcile(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Look at the orders changed at Bling since the last look, now."""
    from fidelia.connectors.bling import imports

    with _context() as (db, bling):
        merchant = _tenant(db, tenant)
        seen = imports.reconcile(db, bling, merchant.id)
        _emit({"orders_looked_at": seen}, as_json)


@bling_app.command("process")
def process(as_json: JsonOpt = False) -> None:
    """Process the stored webhook events that are due (the worker does this by itself)."""
    from fidelia.connectors.bling import intake

    with _context() as (db, bling):
        total = 0
        while count := intake.process_due(db, bling, 50):
            total += count
        _emit({"events_processed": total}, as_json)


@bling_app.command("preview")
def preview(
    tenant: TenantOpt,
    order: Annotated[str, typer.Option("--order", help="The Bling order id.")],
    as_json: JsonOpt = False,
) -> None:
    """Test a reference sale: what this order would do, writing nothing."""
    from fidelia.connectors.bling import service

    with _context() as (db, bling):
        _emit(service.preview_order(db, bling, _tenant(db, tenant), order), as_json)


@bling_app.command("disconnect")
def disconnect(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Revoke the merchant's tokens at Bling and delete them."""
    from fidelia.connectors.bling import service
    from fidelia.models import Tenant

    with _context() as (db, bling), db.session() as session:
        merchant = session.get_one(Tenant, _tenant(db, tenant).id)
        _emit(service.disconnect(session, merchant, bling), as_json)


@bling_app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored token with the first of FIDELIA_ENCRYPTION_KEYS."""
    from sqlalchemy import select

    from fidelia.connectors.bling.crypto import SecretBox
    from fidelia.kit.settings import get_settings
    from fidelia.models import BlingConnection

    with _context() as (db, _bling), db.session() as session:
        box = SecretBox.from_settings(get_settings())
        count = 0
        for connection in session.scalars(select(BlingConnection).with_for_update()):
            for field in ("access_token", "refresh_token"):
                sealed = getattr(connection, field)
                if sealed:
                    setattr(connection, field, box.rotate(sealed))
                    count += 1
        typer.echo(f"re-encrypted {count} tokens")


@bling_app.command("new-key")
def new_key() -> None:
    """Print a new Fernet key for FIDELIA_ENCRYPTION_KEYS."""
    from fidelia.connectors.bling.crypto import generate_key

    typer.echo(generate_key())
