"""The ``fidelia`` command: operators' tool and our acceptance checks' entry point."""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from fidelia.kit.db import Database
from fidelia.kit.errors import DomainError
from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import get_settings

app = typer.Typer(help="Fidelia: a multi-tenant loyalty platform.", no_args_is_help=True)
tenant_app = typer.Typer(help="Merchants and their settings.", no_args_is_help=True)
apikey_app = typer.Typer(help="Merchant API credentials.", no_args_is_help=True)
reward_app = typer.Typer(help="Rewards (promociones).", no_args_is_help=True)
group_app = typer.Typer(help="Merchant groups sharing one balance.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(reward_app, name="reward")
app.add_typer(group_app, name="group")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@contextmanager
def transaction() -> Iterator[Session]:
    """Migrate if needed, then one transaction; domain errors exit 1 with the message."""
    url = get_settings().database_url
    upgrade(url)
    db = Database(url, pool_size=1)
    try:
        with db.session() as session:
            yield session
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


def emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        for key, value in data.items():
            typer.echo(f"{key}: {value}")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    upgrade(get_settings().database_url)
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="Web processes.")] = 1,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the outbox worker inside.")
    ] = True,
) -> None:
    """Serve the web API, with the outbox worker inside unless --no-worker."""
    import uvicorn

    upgrade(get_settings().database_url)
    os.environ["FIDELIA_EMBEDDED_WORKER"] = "1" if worker else "0"
    os.environ.setdefault("FIDELIA_PUBLIC_URL", f"http://{host}:{port}")
    get_settings.cache_clear()
    uvicorn.run(
        "fidelia.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@app.command("worker")
def run_worker() -> None:
    """Run an outbox worker on its own (scale-out: several may run at once on PostgreSQL)."""
    from fidelia.messaging.channels import senders_for
    from fidelia.messaging.worker import Worker

    settings = get_settings()
    upgrade(settings.database_url)
    db = Database(settings.database_url, pool_size=2)
    typer.echo("outbox worker running; Ctrl-C to stop")
    try:
        Worker(
            db, senders_for(settings), settings.worker_batch_size, settings.outbox_max_attempts
        ).run_forever(settings.worker_poll_seconds)
    except KeyboardInterrupt:
        pass


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    currency: Annotated[str, typer.Option()] = "USD",
    timezone: Annotated[str, typer.Option()] = "UTC",
    locale: Annotated[str, typer.Option()] = "es",
    min_purchase: Annotated[str, typer.Option("--min-purchase")] = "0",
    as_json: JsonOpt = False,
) -> None:
    """Create a merchant and its first API key."""
    from fidelia.tenants.service import create_tenant, issue_api_key

    with transaction() as session:
        tenant = create_tenant(
            session,
            slug=slug,
            name=name,
            currency=currency,
            timezone=timezone,
            locale=locale,
            min_purchase=min_purchase,
        )
        key = issue_api_key(session, tenant)
        data = {
            "id": tenant.id,
            "slug": tenant.slug,
            "name": tenant.name,
            "api_key": key.api_key,
            "token": key.token,
        }
    emit(data, as_json)


@tenant_app.command("set")
def tenant_set(slug: str, key: str, value: str) -> None:
    """Change one setting (currency, timezone, locale, min_purchase, pin_lifetime_minutes,
    points_per_pin, verification_window_minutes, bot_number)."""
    from fidelia.tenants.service import set_setting, settings_of

    with transaction() as session:
        tenant = set_setting(session, slug, key, value)
        shown = settings_of(tenant)[key]
    typer.echo(f"{slug}: {key} = {shown}")


@tenant_app.command("show")
def tenant_show(slug: str, as_json: JsonOpt = False) -> None:
    """A merchant and its settings."""
    from fidelia.tenants.service import get_by_slug, settings_of

    with transaction() as session:
        tenant = get_by_slug(session, slug)
        data = {"id": tenant.id, "slug": tenant.slug, "name": tenant.name, **settings_of(tenant)}
    emit(data, as_json)


@apikey_app.command("create")
def apikey_create(tenant: Annotated[str, typer.Option()], as_json: JsonOpt = False) -> None:
    """Issue a new API key (the secret is shown once)."""
    from fidelia.tenants.service import get_by_slug, issue_api_key

    with transaction() as session:
        key = issue_api_key(session, get_by_slug(session, tenant))
        data = {
            "tenant": tenant,
            "tenant_id": key.tenant_id,
            "api_key": key.api_key,
            "token": key.token,
        }
    emit(data, as_json)


@apikey_app.command("revoke")
def apikey_revoke(key: str) -> None:
    """Revoke an API key (by its secret or its public token)."""
    from fidelia.tenants.service import revoke_api_key

    with transaction() as session:
        revoke_api_key(session, key)
    typer.echo("revoked")


@reward_app.command("create")
def reward_create(
    tenant: Annotated[str, typer.Option()],
    title: Annotated[str, typer.Option()],
    points: Annotated[int | None, typer.Option(help="Points it costs (not for cashback).")] = None,
    description: Annotated[str, typer.Option()] = "",
    reward_type: Annotated[
        str, typer.Option("--type", help="custom | fixed | percent | cashback | product")
    ] = "custom",
    value: Annotated[
        str | None, typer.Option(help="Discount (currency), percentage, or cashback minimum.")
    ] = None,
    min_purchase: Annotated[str | None, typer.Option("--min-purchase")] = None,
    max_share: Annotated[
        int | None, typer.Option("--max-share", help="At most this % of the purchase.")
    ] = None,
    cumulative: Annotated[
        bool, typer.Option("--cumulative/--no-cumulative", help="Combinable with other discounts.")
    ] = True,
    stock: Annotated[int | None, typer.Option(help="How many can be redeemed in all.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a reward customers buy with points."""
    from fidelia.rewards.service import create_reward
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        reward = create_reward(
            session,
            get_by_slug(session, tenant),
            title=title,
            points=points,
            description=description,
        )
        data = {
            "id": reward.id,
            "tenant": tenant,
            "title": reward.title,
            "points": reward.points_required,
        }
    emit(data, as_json)


@group_app.command("create")
def group_create(
    slug: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    tenant: Annotated[list[str], typer.Option(help="A member merchant (repeat).")],
    as_json: JsonOpt = False,
) -> None:
    """Group merchants so they share one balance (each must have no customers yet)."""
    from fidelia.tenants.service import create_group

    with transaction() as session:
        group = create_group(session, slug=slug, name=name, tenant_slugs=tenant)
        data = {"id": group.id, "slug": group.slug, "name": group.name, "tenants": tenant}
    emit(data, as_json)


@app.command()
def demo() -> None:
    """Create the demo merchant 'cafe-demo' with a reward if missing; print a fresh key."""
    from sqlalchemy import select

    from fidelia.models import Tenant
    from fidelia.rewards.service import create_reward
    from fidelia.tenants.service import create_tenant, issue_api_key

    settings = get_settings()
    with transaction() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == "cafe-demo"))
        if tenant is None:
            tenant = create_tenant(
                session,
                slug="cafe-demo",
                name="Café Demo",
                currency="CRC",
                timezone="America/Costa_Rica",
            )
            tenant.points_per_pin = 10  # one visit buys the demo reward: the whole loop in one go
            create_reward(
                session,
                tenant,
                title="Café gratis",
                points=10,
                description="Un café americano de cortesía",
            )
        key = issue_api_key(session, tenant)
    base = settings.public_url.rstrip("/")
    typer.echo(
        f"""
Demo merchant: cafe-demo (id {tenant.id})
API key (shown once): {key.api_key}

  Web:        {base}/
  API docs:   {base}/docs
  Simulator:  {base}/simulator

Try it:
  curl -s -X POST -H 'X-API-Key: {key.api_key}' {base}/api/v1/integraciones/pin/generar
  # send the PIN from the simulator page, give a name, then:
  curl -s {base}/api/v1/redimir/puntos/%2B50688887777
"""
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
