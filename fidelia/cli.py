"""The ``fidelia`` command: operators' tool and our acceptance checks' entry point.

Each command imports what it uses inside its function: the suite and the operators start
this command as a process many times, and loading the settings, SQLAlchemy, Alembic, the
tables or the web app for ``--help`` or a command that needs none of them is most of its
start (tests/test_cli.py checks that importing this module loads none of them)."""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fidelia.kit.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from fidelia.kit.db import Database
    from fidelia.kit.settings import Settings

app = typer.Typer(help="Fidelia: a multi-tenant loyalty platform.", no_args_is_help=True)
tenant_app = typer.Typer(help="Merchants and their settings.", no_args_is_help=True)
apikey_app = typer.Typer(help="Merchant API credentials.", no_args_is_help=True)
reward_app = typer.Typer(help="Rewards (promociones).", no_args_is_help=True)
group_app = typer.Typer(help="Merchant groups sharing one balance.", no_args_is_help=True)
voucher_app = typer.Typer(help="Vouchers (assets).", no_args_is_help=True)
rule_app = typer.Typer(help="Earning rules for behavioural events.", no_args_is_help=True)
segment_app = typer.Typer(help="Member segments.", no_args_is_help=True)
deal_app = typer.Typer(help="Deals: automatic promotions.", no_args_is_help=True)
member_app = typer.Typer(help="Members (customers).", no_args_is_help=True)
user_app = typer.Typer(help="Panel accounts: owners, cashiers, operators.", no_args_is_help=True)
message_app = typer.Typer(help="Automatic messages to customers.", no_args_is_help=True)
template_app = typer.Typer(
    help="WhatsApp templates (approved by Meta) per automatic message.", no_args_is_help=True
)
voucher_rule_app = typer.Typer(
    help="Vouchers by rule: every N of spend, or after the Nth purchase.", no_args_is_help=True
)
jobs_app = typer.Typer(
    help="Scheduled jobs, for cron (the worker also runs them).", no_args_is_help=True
)
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(reward_app, name="reward")
app.add_typer(group_app, name="group")
app.add_typer(voucher_app, name="voucher")
app.add_typer(rule_app, name="rule")
app.add_typer(segment_app, name="segment")
app.add_typer(deal_app, name="deal")
app.add_typer(member_app, name="member")
app.add_typer(user_app, name="user")
app.add_typer(jobs_app, name="jobs")
app.add_typer(message_app, name="message")
message_app.add_typer(template_app, name="template")
voucher_app.add_typer(voucher_rule_app, name="rule")
rollups_app = typer.Typer(help="The dashboard's daily rollups.", no_args_is_help=True)
app.add_typer(rollups_app, name="rollups")

from fidelia.connectors.bling.commands import bling_app  # noqa: E402

app.add_typer(bling_app, name="bling")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def runnable_settings() -> "Settings":
    """The settings, or exit 1 saying what production refuses (no traceback): `serve` and
    `worker` do not start on development secrets, the simulator or no SMS/SMTP."""
    from pydantic import ValidationError

    from fidelia.kit.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            typer.echo(f"error: refusing to start: {message}", err=True)
        raise typer.Exit(1) from exc


@contextmanager
def database() -> Iterator["Database"]:
    """Migrate if needed, then the configured database (one connection), disposed of after."""
    from fidelia.kit.db import Database
    from fidelia.kit.migrate import upgrade
    from fidelia.kit.settings import get_settings

    url = get_settings().database_url
    upgrade(url)
    db = Database(url, pool_size=1)
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def transaction() -> Iterator["Session"]:
    """Migrate if needed, then one transaction; domain errors exit 1 with the message."""
    with database() as db:
        try:
            with db.session() as session:
                yield session
        except DomainError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from exc


def _audit(
    session: "Session",
    action: str,
    target_type: str,
    target_id: object,
    tenant_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Record a change made from the command line in the audit log (never a secret)."""
    from fidelia.audit.service import cli_actor, record

    record(
        session,
        cli_actor(),
        action,
        target_type,
        target_id,
        tenant_id=tenant_id,
        before=before,
        after=after,
    )


def emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str, ensure_ascii=False))
    else:
        for key, value in data.items():
            if isinstance(value, dict):  # nested (the doors of a credential): one line each
                emit({f"{key}.{k}": v for k, v in value.items()}, False)
            else:
                typer.echo(f"{key}: {value}")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from fidelia.kit.migrate import upgrade
    from fidelia.kit.settings import get_settings

    upgrade(get_settings().database_url)
    typer.echo("database is up to date")


@app.command()
def check(as_json: JsonOpt = False) -> None:
    """Verify the ledger invariants of the database (read only); exit 1 with a report
    when one fails: balances against entries, balance_after chains, lots, PIN credits,
    redemptions and orders against their entries, idempotency answers, the outbox."""
    from fidelia.kit.settings import get_settings
    from fidelia.ops.check import check_database

    try:
        settings = get_settings()
        report = check_database(
            settings.database_url, timedelta(seconds=settings.outbox_lease_seconds)
        )
    except Exception as exc:  # unreachable or not migrated: say so, not a traceback
        typer.echo(f"error: cannot check the database: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(report.as_dict()) if as_json else report.render())
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="Web processes.")] = 1,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the outbox worker inside.")
    ] = True,
    with_demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo merchant first and print its key.")
    ] = False,
) -> None:
    """Serve the web API, with the outbox worker inside unless --no-worker."""
    import socket

    import uvicorn

    from fidelia.kit.migrate import upgrade
    from fidelia.kit.settings import get_settings

    try:  # a busy port fails here, before anything is printed or created
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        typer.echo(
            f"error: cannot listen on {host}:{port} ({exc.strerror}); "
            "choose another port: make run PORT=8001 (or fidelia serve --port 8001)",
            err=True,
        )
        raise typer.Exit(1) from exc
    os.environ.setdefault("FIDELIA_PUBLIC_URL", f"http://{host}:{port}")
    get_settings.cache_clear()
    upgrade(runnable_settings().database_url)
    if with_demo:
        demo()
    os.environ["FIDELIA_EMBEDDED_WORKER"] = "1" if worker else "0"
    os.environ["FIDELIA_GC_FREEZE"] = "1"  # in each web process, as it starts serving
    get_settings.cache_clear()
    from fidelia.ops import logging as ops_logging
    from fidelia.ops.metrics import prepare_multiprocess

    settings = get_settings()
    ops_logging.configure(
        ops_logging.format_for(settings.env, settings.log_format), settings.log_level
    )
    if workers > 1:
        prepare_multiprocess()
    if workers > 1 and not get_settings().redis_url:
        typer.echo(
            f"warning: {workers} web processes without FIDELIA_REDIS_URL: throughput limits "
            "(requests per second/minute) are counted per process, so each allows its own "
            "quota. Limits that protect customers (PIN guesses, code sends and attempts) are "
            "counted in the database and hold anyway.",
            err=True,
        )
    uvicorn.run(
        "fidelia.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        log_config=None,  # every line goes through fidelia/ops/logging.py (JSON in production)
        access_log=False,
        proxy_headers=False,  # the app applies FIDELIA_TRUSTED_PROXIES itself
    )


@app.command("worker")
def run_worker() -> None:
    """Run a worker on its own: stored WhatsApp messages, the outbox, periodic jobs
    (scale-out: several may run at once on PostgreSQL)."""
    from fidelia.connectors.bling.jobs import BlingJobs
    from fidelia.customers.standing import CatalogCache
    from fidelia.kit.db import Database
    from fidelia.kit.migrate import upgrade
    from fidelia.messaging.bot import Bot
    from fidelia.messaging.channels import senders_for
    from fidelia.messaging.worker import Worker
    from fidelia.ops import gcfreeze
    from fidelia.ops import jobs as ops_jobs
    from fidelia.ops import logging as ops_logging
    from fidelia.ops import metrics as ops_metrics

    settings = runnable_settings()
    ops_logging.configure(
        ops_logging.format_for(settings.env, settings.log_format), settings.log_level
    )
    ops_metrics.install_error_counter()
    upgrade(settings.database_url)
    db = Database(settings.database_url, pool_size=2)
    ops_metrics.STARTS.labels("worker").inc()
    typer.echo("worker running; Ctrl-C to stop")
    try:
        worker = Worker(
            db,
            ops_jobs.instrument(senders_for(settings)),
            settings.worker_batch_size,
            settings.outbox_max_attempts,
            timedelta(seconds=settings.outbox_lease_seconds),
            jobs=BlingJobs.for_settings(db, settings),
            bot=Bot(settings, CatalogCache(settings.tenant_cache_seconds)),
        )
        gcfreeze.freeze()  # what it built, out of the collector's walks (fidelia/ops/gcfreeze.py)
        worker.run_forever(settings.worker_poll_seconds)
    except KeyboardInterrupt:
        pass


@app.command()
def doctor(
    web: Annotated[int, typer.Option(help="Web processes that will run (all machines).")] = 2,
    workers: Annotated[int, typer.Option(help="Outbox workers that will run.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Check a production configuration (the environment `fidelia serve` would read): say
    what is missing or unsafe; exit 1 when anything is an error."""
    from fidelia.ops.doctor import diagnose

    findings = diagnose(web, workers)
    errors = [f for f in findings if f.level == "error"]
    if as_json:
        typer.echo(json.dumps({"ok": not errors, "findings": [f.__dict__ for f in findings]}))
    else:
        for finding in sorted(findings, key=lambda f: ("error", "warning", "ok").index(f.level)):
            typer.echo(finding.render())
        typer.echo(f"{len(errors)} error(s)" if errors else "ready for production")
    raise typer.Exit(1 if errors else 0)


@app.command("backup")
def backup_command(path: Annotated[str, typer.Argument(help="Where to write the backup.")]) -> None:
    """Back up the database while it serves: SQLite's online backup (one consistent file),
    or pg_dump's custom format on PostgreSQL (docs/operations.md, "Backups")."""
    from pathlib import Path

    from fidelia.kit.settings import get_settings
    from fidelia.ops.backup import BackupError, backup

    try:
        written = backup(get_settings().database_url, Path(path))
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"backup written to {written} ({written.stat().st_size} bytes)")


@app.command("restore")
def restore_command(
    path: Annotated[str, typer.Argument(help="A file made by `fidelia backup`.")],
    force: Annotated[bool, typer.Option(help="Replace a database that is not empty.")] = False,
) -> None:
    """Load a backup into the configured database (servers stopped); then `fidelia check`."""
    from pathlib import Path

    from fidelia.kit.settings import get_settings
    from fidelia.ops.backup import BackupError, restore

    try:
        restore(get_settings().database_url, Path(path), force=force)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("restored; run `fidelia migrate` if this code is newer, then `fidelia check`")


def doors(token: str, api_key: str) -> dict[str, dict[str, str]]:
    """Which value goes in which field, in each door's own words (tenants.service.doors)."""
    from fidelia.tenants.service import doors as door_fields

    return door_fields(token, api_key)


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
        _audit(session, "tenant.create", "tenant", tenant.id, tenant.id, after={"slug": slug})
        _audit(session, "apikey.create", "api_key", key.token, tenant.id)
        data = {
            "id": tenant.id,
            "slug": tenant.slug,
            "name": tenant.name,
            "api_key": key.api_key,
            "token": key.token,
            "doors": doors(key.token, key.api_key),
        }
    emit(data, as_json)


def _settings_help() -> str:
    from fidelia.tenants.setting_help import SETTING_HELP

    lines = [f"{key} ({unit}): {text}" for key, (unit, text) in SETTING_HELP.items()]
    return "Change one setting. KEY is one of:\n\n" + "\n\n".join(lines)


@tenant_app.command("set", help=_settings_help())
def tenant_set(slug: str, key: str, value: str) -> None:
    from fidelia.tenants.service import get_by_slug, set_setting, settings_of

    with transaction() as session:
        before = settings_of(get_by_slug(session, slug)).get(key)
        tenant = set_setting(session, slug, key, value)
        shown = settings_of(tenant)[key]
        _audit(session, "setting.change", "setting", key, tenant.id, {key: before}, {key: shown})
    typer.echo(f"{slug}: {key} = {shown}")


@tenant_app.command("list")
def tenant_list(as_json: JsonOpt = False) -> None:
    """Every merchant: id, slug, name, currency, program (one JSON object a line with --json)."""
    from sqlalchemy import select

    from fidelia.models import Tenant

    with transaction() as session:
        rows = [
            {
                "id": t.id,
                "slug": t.slug,
                "name": t.name,
                "currency": t.currency,
                "program_id": t.program_id,
            }
            for t in session.scalars(select(Tenant).order_by(Tenant.id))
        ]
    _table(rows, as_json, ("id", "slug", "name", "currency", "program_id"))


def _table(rows: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...]) -> None:
    """Rows as aligned columns, or one JSON object a line."""
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str, ensure_ascii=False))
        return
    cells = [[str(row[c]) if row[c] is not None else "-" for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@tenant_app.command("show")
def tenant_show(slug: str, as_json: JsonOpt = False) -> None:
    """A merchant and its settings."""
    from fidelia.tenants.service import get_by_slug, settings_of

    with transaction() as session:
        tenant = get_by_slug(session, slug)
        data = {"id": tenant.id, "slug": tenant.slug, "name": tenant.name, **settings_of(tenant)}
    emit(data, as_json)


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option()],
    name: Annotated[str | None, typer.Option(help="A label: where the key is used.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new API key (the secret is shown once)."""
    from fidelia.tenants.service import get_by_slug, issue_api_key

    with transaction() as session:
        key = issue_api_key(session, get_by_slug(session, tenant), name)
        _audit(session, "apikey.create", "api_key", key.token, key.tenant_id)
        data = {
            "tenant": tenant,
            "tenant_id": key.tenant_id,
            "api_key": key.api_key,
            "token": key.token,
            "doors": doors(key.token, key.api_key),
        }
    emit(data, as_json)


@apikey_app.command("list")
def apikey_list(tenant: Annotated[str, typer.Option()], as_json: JsonOpt = False) -> None:
    """The merchant's API keys: public token, the key's last characters, created, revoked."""
    from fidelia.tenants.service import api_keys_of, get_by_slug

    with transaction() as session:
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "token": k.token,
                "api_key": f"fk_live_…{k.hint}",
                "created_at": k.created_at.isoformat(timespec="seconds"),
                "last_used_at": k.last_used_at.isoformat(timespec="seconds")
                if k.last_used_at
                else None,
                "revoked_at": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
            }
            for k in api_keys_of(session, get_by_slug(session, tenant))
        ]
    columns = ("id", "name", "token", "api_key", "created_at", "last_used_at", "revoked_at")
    _table(rows, as_json, columns)


@apikey_app.command("revoke")
def apikey_revoke(key: str) -> None:
    """Revoke an API key (by its secret or its public token)."""
    from sqlalchemy import select

    from fidelia.kit.security import digest
    from fidelia.models import ApiKey
    from fidelia.tenants.service import revoke_api_key

    with transaction() as session:
        revoke_api_key(session, key)
        row = session.scalar(
            select(ApiKey).where((ApiKey.token == key) | (ApiKey.secret_digest == digest(key)))
        )
        if row is not None:
            _audit(session, "apikey.revoke", "api_key", row.token, row.tenant_id)
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
    external_product_id: Annotated[
        str | None,
        typer.Option("--external-product-id", help="product: the POS's own id of the product."),
    ] = None,
    product_name: Annotated[
        str | None, typer.Option("--product-name", help="product: the name the POS shows.")
    ] = None,
    product_discount_mode: Annotated[
        str | None,
        typer.Option(
            "--product-discount-mode",
            help="product: percent | fixed (amount off) | final-price | gift (default fixed).",
        ),
    ] = None,
    product_discount_value: Annotated[
        str | None,
        typer.Option(
            "--product-discount-value",
            help="product: the percentage (percent), the amount off (fixed) or the price "
            "(final-price); none for gift.",
        ),
    ] = None,
    product_max_units: Annotated[
        int | None,
        typer.Option("--product-max-units", help="product: units per redemption (default 1)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a reward customers buy with points."""
    from fidelia.kit.errors import InvalidInput
    from fidelia.rewards.service import ProductOptions, create_reward
    from fidelia.tenants.service import get_by_slug

    product = ProductOptions(
        external_product_id=external_product_id,
        name=product_name,
        mode=product_discount_mode,
        value=product_discount_value,
        max_units=product_max_units,
    )
    with transaction() as session:
        if reward_type == "product" and not (external_product_id or "").strip():
            # Other doors may keep product rewards without it; a POS cannot apply one.
            raise InvalidInput(
                "A product reward needs --external-product-id (the POS's product id)."
            )
        reward = create_reward(
            session,
            get_by_slug(session, tenant),
            title=title,
            points=points,
            description=description,
            reward_type=reward_type,
            value=value,
            min_purchase=min_purchase,
            max_share_percent=max_share,
            cumulative=cumulative,
            stock=stock,
            product=product,
        )
        data = {
            "id": reward.id,
            "tenant": tenant,
            "title": reward.title,
            "points": reward.points_required,
            "type": reward.reward_type,
        }
        _audit(session, "reward.create", "reward", reward.id, reward.tenant_id, after=data)
        if reward.reward_type == "product":
            data["product"] = {
                "external_product_id": reward.external_product_id,
                "name": reward.product_name,
                "discount_mode": reward.product_discount_mode,
                "max_units": reward.product_max_units,
            }
    emit(data, as_json)


@reward_app.command("list")
def reward_list(tenant: Annotated[str, typer.Option()], as_json: JsonOpt = False) -> None:
    """The merchant's rewards, disabled ones too."""
    from decimal import Decimal

    from fidelia.rewards.service import all_rewards
    from fidelia.tenants.service import get_by_slug, money_text

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        rows = [
            {
                "id": r.id,
                "title": r.title,
                "type": r.reward_type,
                "points": r.points_required,
                "value": f"{Decimal(r.value).scaleb(-2):f}%"
                if r.reward_type == "percent"
                else money_text(r.value, merchant.currency),
                "stock": r.stock,
                "active": r.active,
            }
            for r in all_rewards(session, merchant)
        ]
    _table(rows, as_json, ("id", "title", "type", "points", "value", "stock", "active"))


@reward_app.command("disable")
def reward_disable(reward_id: int, tenant: Annotated[str, typer.Option()]) -> None:
    """Stop offering a reward (it can be enabled again; past redemptions are kept)."""
    from fidelia.rewards.service import set_active
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        set_active(session, merchant, reward_id, False)
        _audit(session, "reward.disable", "reward", reward_id, merchant.id, after={"active": False})
    typer.echo(f"reward {reward_id} disabled")


@reward_app.command("enable")
def reward_enable(reward_id: int, tenant: Annotated[str, typer.Option()]) -> None:
    """Offer a disabled reward again."""
    from fidelia.rewards.service import set_active
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        set_active(session, merchant, reward_id, True)
        _audit(session, "reward.enable", "reward", reward_id, merchant.id, after={"active": True})
    typer.echo(f"reward {reward_id} enabled")


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
        _audit(session, "group.create", "program", group.id, None, after=data)
    emit(data, as_json)


def _customer_by(
    session: "Session",
    tenant: Any,
    phone: str | None,
    cpf: str | None,
    email: str | None,
    customer_id: int | None,
) -> Any:
    """The customer named on the command line (one of phone, CPF, e-mail, id)."""
    from fidelia.customers.service import by_contact
    from fidelia.kit.errors import InvalidInput, NotFound
    from fidelia.models import Customer

    given = [v for v in (phone, cpf, email, customer_id) if v is not None]
    if len(given) != 1:
        raise InvalidInput(
            "Name the customer with exactly one of --customer-phone, --customer-cpf, "
            "--customer-email, --customer-id."
        )
    if customer_id is None:
        kind = "phone" if phone is not None else "cpf" if cpf is not None else "email"
        return by_contact(session, tenant, kind, str(given[0]))
    customer = session.get(Customer, customer_id)
    if customer is None or customer.program_id != tenant.program_id:
        raise NotFound("No such customer at this merchant.", code="CUSTOMER_NOT_FOUND")
    return customer


CustomerPhone = Annotated[str | None, typer.Option("--customer-phone")]
CustomerCpf = Annotated[str | None, typer.Option("--customer-cpf")]
CustomerEmail = Annotated[str | None, typer.Option("--customer-email")]
CustomerId = Annotated[int | None, typer.Option("--customer-id")]


@voucher_app.command("create")
def voucher_create(
    tenant: Annotated[str, typer.Option()],
    code: Annotated[str | None, typer.Option(help="Your own code; generated when omitted.")] = None,
    customer_phone: CustomerPhone = None,
    customer_cpf: CustomerCpf = None,
    customer_email: CustomerEmail = None,
    customer_id: CustomerId = None,
    campaign: Annotated[str | None, typer.Option()] = None,
    value: Annotated[str, typer.Option(help="Worth this much (currency).")] = "0",
    benefit: Annotated[str, typer.Option(help="Or what it gives, in words.")] = "",
    uses: Annotated[int, typer.Option(help="How many times it validates.")] = 1,
    valid_until: Annotated[
        str | None,
        typer.Option(
            "--valid-until", help="YYYY-MM-DD (end of that day, merchant time) or ISO 8601."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a voucher to a customer or a campaign."""
    from fidelia.kit.money import to_minor
    from fidelia.tenants.service import get_by_slug, money_text
    from fidelia.vouchers.service import issue, state_of

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        customer = None
        if any(v is not None for v in (customer_phone, customer_cpf, customer_email, customer_id)):
            customer = _customer_by(
                session, merchant, customer_phone, customer_cpf, customer_email, customer_id
            )
        voucher = issue(
            session,
            merchant,
            code=code,
            customer=customer,
            campaign=campaign,
            value=to_minor(value, merchant.currency),
            benefit=benefit,
            max_uses=uses,
            valid_until=_end_of(valid_until, merchant.timezone) if valid_until else None,
        )
        data = {
            "id": voucher.id,
            "code": voucher.code,
            "customer_id": voucher.customer_id,
            "value": money_text(voucher.value, merchant.currency),
            "uses": voucher.max_uses,
            "valid_until": voucher.valid_until.isoformat() if voucher.valid_until else None,
            "status": state_of(voucher),
        }
        _audit(session, "voucher.create", "voucher", voucher.id, merchant.id, after=data)
    emit(data, as_json)


def _end_of(raw: str, timezone: str) -> Any:
    """'2026-12-31' -> the end of that day in the merchant's zone; ISO datetimes as given."""
    from datetime import date, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from fidelia.kit.errors import InvalidInput

    try:
        if len(raw) == 10:
            return datetime.combine(
                date.fromisoformat(raw) + timedelta(days=1), time(0), ZoneInfo(timezone)
            )
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"Not a date: {raw!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


@voucher_app.command("validate")
def voucher_validate(
    tenant: Annotated[str, typer.Option()], code: str, as_json: JsonOpt = False
) -> None:
    """Validate a voucher at the counter (manual validation): it counts one use."""
    from fidelia.tenants.service import get_by_slug
    from fidelia.vouchers.service import state_of, validate

    with transaction() as session:
        voucher = validate(session, get_by_slug(session, tenant), code, reference="cli")
        data = {
            "code": voucher.code,
            "uses": voucher.uses,
            "max_uses": voucher.max_uses,
            "status": state_of(voucher),
        }
        _audit(session, "voucher.validate", "voucher", voucher.id, voucher.tenant_id, after=data)
    emit(data, as_json)


@rule_app.command("create")
def rule_create(
    tenant: Annotated[str, typer.Option()],
    event: Annotated[str, typer.Option(help="Event type: visit, signup, referral, review, ...")],
    points: Annotated[int, typer.Option()],
    per_day: Annotated[
        int | None, typer.Option("--per-day", help="At most this many a day.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Points for an event type: '5 points per visit, at most one a day' is
    `rule create --event visit --points 5 --per-day 1`."""
    from fidelia.events.service import create_rule
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        rule = create_rule(session, get_by_slug(session, tenant), event, points, per_day)
        data = {
            "id": rule.id,
            "event": rule.event_type,
            "points": rule.points,
            "per_day": rule.max_per_day,
        }
        _audit(session, "rule.create", "earning_rule", rule.id, rule.tenant_id, after=data)
    emit(data, as_json)


@segment_app.command("create")
def segment_create(
    tenant: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    rule: Annotated[
        str,
        typer.Option(help='JSON, e.g. {"event_type": "visit", "min_count": 3, "within_days": 30}'),
    ],
    as_json: JsonOpt = False,
) -> None:
    """A segment of members, by events, tags and balance."""
    from fidelia.events.segments import create_segment
    from fidelia.kit.errors import InvalidInput
    from fidelia.tenants.service import get_by_slug

    try:
        parsed = json.loads(rule)
    except ValueError as exc:
        typer.echo(f"error: --rule is not JSON: {exc}", err=True)
        raise typer.Exit(1) from exc
    with transaction() as session:
        if not isinstance(parsed, dict):
            raise InvalidInput("--rule is a JSON object.")
        segment = create_segment(session, get_by_slug(session, tenant), name, parsed)
        data = {"id": segment.id, "name": segment.name, "rule": segment.rule}
        _audit(session, "segment.create", "segment", segment.id, segment.tenant_id, after=data)
    emit(data, as_json)


@deal_app.command("create")
def deal_create(
    tenant: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    deal_type: Annotated[str, typer.Option("--type", help="percent | fixed | points")],
    value: Annotated[str, typer.Option(help="Percentage, currency amount, or bonus points.")],
    segment: Annotated[
        int | None, typer.Option(help="Only for members of this segment id.")
    ] = None,
    min_total: Annotated[str, typer.Option("--min-total")] = "0",
    item: Annotated[
        str | None, typer.Option(help="Only when the basket has this item code.")
    ] = None,
    department: Annotated[str | None, typer.Option(help="Only on this department's items.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """An automatic promotion applied to matching transactions."""
    from fidelia.events.deals import create_deal
    from fidelia.kit.errors import InvalidInput
    from fidelia.kit.money import to_minor
    from fidelia.rewards.service import parse_percent
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        if deal_type == "percent":
            amount = parse_percent(value)
        elif deal_type == "fixed":
            amount = to_minor(value, merchant.currency)
        elif deal_type == "points" and value.isdigit():
            amount = int(value)
        else:
            raise InvalidInput("--type is percent, fixed or points (points take a whole number).")
        deal = create_deal(
            session,
            merchant,
            name=name,
            discount_type=deal_type,
            value=amount,
            segment_id=segment,
            min_total=to_minor(min_total, merchant.currency),
            item_code=item,
            department_code=department,
        )
        data = {
            "id": deal.id,
            "name": deal.name,
            "type": deal.discount_type,
            "segment": deal.segment_id,
        }
        _audit(session, "deal.create", "deal", deal.id, deal.tenant_id, after=data)
    emit(data, as_json)


@member_app.command("erase")
def member_erase(
    tenant: Annotated[str, typer.Option()],
    customer_phone: CustomerPhone = None,
    customer_cpf: CustomerCpf = None,
    customer_email: CustomerEmail = None,
    customer_id: CustomerId = None,
) -> None:
    """Erase a member's personal data on request (GDPR); the ledger stays, anonymous."""
    from fidelia.customers.profile import erase
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        customer = _customer_by(
            session, merchant, customer_phone, customer_cpf, customer_email, customer_id
        )
        erase(session, merchant, customer)
        erased = customer.id
        # The log keeps the fact and the id, never the personal data that was erased.
        _audit(session, "customer.erase", "customer", erased, merchant.id)
    typer.echo(f"customer {erased} erased")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="owner | cashier | operator")],
    tenant: Annotated[
        str | None, typer.Option(help="The merchant's slug (not for operators).")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Generated and printed when omitted.")
    ] = None,
    locale: Annotated[
        str | None, typer.Option(help="Panel language (es, pt_BR, en); else the merchant's.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a panel account: `user create --tenant S --email E --role owner`."""
    import secrets

    from fidelia.kit import passwords
    from fidelia.kit.settings import get_settings
    from fidelia.tenants.service import get_by_slug
    from fidelia.users.service import create_user

    passwords.configure(get_settings().password_hashing)
    chosen = password or secrets.token_urlsafe(12)
    with transaction() as session:
        merchant = get_by_slug(session, tenant) if tenant else None
        user = create_user(
            session, email=email, password=chosen, role=role, tenant=merchant, locale=locale
        )
        data = {"id": user.id, "email": user.email, "role": user.role, "tenant": tenant}
        _audit(
            session,
            "user.create",
            "user",
            user.id,
            merchant.id if merchant else None,
            after={"email": user.email, "role": user.role},
        )
        if password is None:
            data["password"] = chosen
    emit(data, as_json)


@user_app.command("list")
def user_list(
    tenant: Annotated[str | None, typer.Option(help="Only this merchant's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Panel accounts: id, e-mail, role, merchant, last sign-in."""
    from sqlalchemy import select

    from fidelia.models import Tenant
    from fidelia.tenants.service import get_by_slug
    from fidelia.users.service import all_users, users_of

    with transaction() as session:
        found = users_of(session, get_by_slug(session, tenant).id) if tenant else all_users(session)
        slugs = dict(session.execute(select(Tenant.id, Tenant.slug)).tuples().all())
        rows = [
            {
                "id": u.id,
                "email": u.email,
                "role": u.role,
                "tenant": slugs.get(u.tenant_id) if u.tenant_id else None,
                "last_login_at": u.last_login_at.isoformat(timespec="seconds")
                if u.last_login_at
                else None,
            }
            for u in found
        ]
    _table(rows, as_json, ("id", "email", "role", "tenant", "last_login_at"))


@jobs_app.command("birthdays")
def jobs_birthdays() -> None:
    """Give today's birthday gifts (idempotent; the worker runs it every minute too)."""
    from fidelia.vouchers import birthdays

    with database() as db:
        typer.echo(f"{birthdays.run(db)} birthday gift(s) issued")


@jobs_app.command("expire")
def jobs_expire() -> None:
    """Expire points and cashback past their validity (idempotent: once per lot; the worker
    runs it every minute too). Run it at least hourly from cron without a worker."""
    from fidelia.ledger import expiry

    with database() as db:
        typer.echo(f"{expiry.run(db)} lot(s) expired")


@jobs_app.command("messages")
def jobs_messages() -> None:
    """Send due 'points expiring' reminders and 'come back' messages (idempotent; the
    worker runs it every minute too)."""
    from fidelia.messaging import automations

    with database() as db:
        counts = automations.run(db)
        typer.echo(", ".join(f"{count} {event}" for event, count in counts.items()))


@template_app.command("set")
def template_set(
    tenant: Annotated[str, typer.Option()],
    event: Annotated[
        str,
        typer.Option(help="benefit_earned | voucher_issued | points_expiring | come_back"),
    ],
    name: Annotated[str, typer.Option(help="The template's name, as approved by Meta.")],
    language: Annotated[str, typer.Option(help="Its language code: pt_BR, es, en_US ...")],
    params: Annotated[
        str,
        typer.Option(
            help="Body parameters {{1}}, {{2}} ... in order, comma-separated: merchant, name, "
            "balance, and per event earned, points, cashback | code, value, valid_until | "
            "expiring, date | days."
        ),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Map an automatic message to an approved WhatsApp template (sent outside the
    24-hour window; inside it the message goes as plain text)."""
    from fidelia.messaging.templates import set_template
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        template = set_template(
            session, get_by_slug(session, tenant), event, name, language, params.split(",")
        )
        data = {
            "event": template.event,
            "name": template.name,
            "language": template.language,
            "params": ",".join(template.params),
        }
    emit(data, as_json)


@template_app.command("list")
def template_list(tenant: Annotated[str, typer.Option()], as_json: JsonOpt = False) -> None:
    """The merchant's template per automatic message."""
    from fidelia.messaging.templates import templates_of
    from fidelia.tenants.service import get_by_slug

    with transaction() as session:
        rows = [
            {
                "event": t.event,
                "name": t.name,
                "language": t.language,
                "params": ",".join(t.params),
            }
            for t in templates_of(session, get_by_slug(session, tenant))
        ]
    _table(rows, as_json, ("event", "name", "language", "params"))


@voucher_rule_app.command("create")
def voucher_rule_create(
    tenant: Annotated[str, typer.Option()],
    value: Annotated[str, typer.Option(help="The voucher's value (currency).")],
    every_spend: Annotated[
        str | None, typer.Option("--every-spend", help="A voucher every this much spent.")
    ] = None,
    every_purchases: Annotated[
        int | None,
        typer.Option("--every-purchases", help="A voucher every this many purchases."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Only at the first threshold (after the Nth).")
    ] = False,
    benefit: Annotated[str, typer.Option(help="What it gives, in words.")] = "",
    valid_days: Annotated[
        int, typer.Option("--valid-days", help="Days the voucher is valid (0: no end).")
    ] = 30,
    as_json: JsonOpt = False,
) -> None:
    """A voucher earned by sales: `--every-spend 200 --value 10` or
    `--every-purchases 5 --once --value 15`. Counts sales from now on; validated by hand
    at the counter (`voucher validate`)."""
    from fidelia.kit.errors import InvalidInput
    from fidelia.kit.money import to_minor
    from fidelia.tenants.service import get_by_slug
    from fidelia.vouchers.rules import create_rule

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        if (every_spend is None) == (every_purchases is None):
            raise InvalidInput("Give exactly one of --every-spend and --every-purchases.")
        rule = create_rule(
            session,
            merchant,
            kind="spend" if every_spend is not None else "purchases",
            threshold=to_minor(every_spend, merchant.currency)
            if every_spend is not None
            else int(every_purchases or 0),
            value=to_minor(value, merchant.currency),
            benefit=benefit,
            valid_days=valid_days,
            repeat=not once,
        )
        data = _rule_row(rule, merchant.currency)
    emit(data, as_json)


def _rule_row(rule: Any, currency: str) -> dict[str, Any]:
    from fidelia.tenants.service import money_text

    return {
        "id": rule.id,
        "kind": rule.kind,
        "every": money_text(rule.threshold, currency) if rule.kind == "spend" else rule.threshold,
        "value": money_text(rule.value, currency),
        "benefit": rule.benefit or None,
        "valid_days": rule.valid_days,
        "repeat": rule.repeat,
        "active": rule.active,
    }


@voucher_rule_app.command("list")
def voucher_rule_list(tenant: Annotated[str, typer.Option()], as_json: JsonOpt = False) -> None:
    """The merchant's voucher rules."""
    from fidelia.tenants.service import get_by_slug
    from fidelia.vouchers.rules import rules_of

    with transaction() as session:
        merchant = get_by_slug(session, tenant)
        rows = [_rule_row(r, merchant.currency) for r in rules_of(session, merchant)]
    _table(rows, as_json, ("id", "kind", "every", "value", "valid_days", "repeat", "active"))


@rollups_app.command("rebuild")
def rollups_rebuild(
    tenant: Annotated[str | None, typer.Option(help="Only this merchant (slug).")] = None,
) -> None:
    """Recompute the daily rollups from the ledger, PINs, customers and redemptions (all
    merchants, or one), then fold in what came since; the worker keeps them up to date."""
    from fidelia.rollups import service as rollups
    from fidelia.tenants.service import get_by_slug

    with database() as db:
        try:
            tenant_id = None
            if tenant is not None:
                with db.session(readonly=True) as session:
                    tenant_id = get_by_slug(session, tenant).id
            typer.echo(f"rollups rebuilt from {rollups.rebuild(db, tenant_id)} row(s)")
        except DomainError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from exc


@app.command("export")
def export(
    kind: Annotated[str, typer.Argument(help="customers, ledger, redemptions, orders or vouchers")],
    tenant: Annotated[str, typer.Option(help="The merchant (slug).")],
    since: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (merchant's zone).")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    decimal_comma: Annotated[
        bool, typer.Option("--decimal-comma", help="Amounts with a decimal comma, ';' between.")
    ] = False,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
) -> None:
    """Write a CSV export (UTF-8 with BOM), streamed in constant memory."""
    from fidelia.exports import service as exports
    from fidelia.tenants.service import get_by_slug

    with database() as db:
        try:
            with db.session(readonly=True) as session:
                merchant = get_by_slug(session, tenant)
                session.expunge(merchant)
            options = exports.Options(
                exports.parse_day(since, "--from"), exports.parse_day(until, "--to"), decimal_comma
            )
            chunks = exports.rows(db, merchant, kind, options)
            with db.session() as session:
                _audit(
                    session,
                    "export.download",
                    "export",
                    kind,
                    merchant.id,
                    after=exports.described(kind, options),
                )
            target = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
            try:
                for chunk in chunks:
                    target.write(chunk.encode("utf-8"))
            finally:
                if output:
                    target.close()
                else:
                    target.flush()
        except DomainError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from exc


@app.command()
def demo() -> None:
    """Create the demo merchant 'cafe-demo' with a reward if missing, and print its API key
    (the same key on every run: it is derived from FIDELIA_SECRET_KEY)."""
    from sqlalchemy import select

    from fidelia.kit.settings import get_settings
    from fidelia.models import Tenant
    from fidelia.rewards.service import create_reward
    from fidelia.tenants.service import create_tenant, derived_api_key
    from fidelia.users.service import demo_owner

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
        key = derived_api_key(session, tenant, settings.secret_key, "demo")
        owner_email, owner_password = demo_owner(session, tenant, settings.secret_key)
    base = settings.public_url.rstrip("/")
    shown = owner_password or "(changed since; `fidelia user create` makes another owner)"
    typer.echo(
        f"""
Demo merchant: cafe-demo (id {tenant.id})
  API key:    {key.api_key}
  API token:  {key.token}   (POS door: Basic token:key; REST v2: api_key/api_secret)
  Database:   {settings.database_url}
  CLI:        .venv/bin/fidelia --help   (finds the same database from any folder)

  Web:        {base}/
  Panel:      {base}/panel/   owner login: {owner_email} / {shown}
  API docs:   {base}/docs
  Simulator:  {base}/simulator

Try it:
  KEY={key.api_key}
  curl -s -X POST -H "X-API-Key: $KEY" {base}/api/v1/integraciones/pin/generar
  # send the PIN from the simulator page (your profile name is your name), then:
  curl -s {base}/api/v1/redimir/puntos/%2B50688887777
"""
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
