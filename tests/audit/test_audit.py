"""The audit log: changes made through the panel and the CLI are recorded with who, when,
what, before and after, in the change's transaction; nothing in it can be edited."""

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from fidelia.audit.service import entries
from fidelia.models import AuditEntry
from tests.panel.support import make_merchant, post, sign_in
from tests.test_cli import create_tenant, one_json, runner


def log(db, tenant_id=None):
    with db.session(readonly=True) as session:
        return [
            (e.actor_kind, e.actor_label, e.action, e.target_id, e.before, e.after)
            for e in reversed(entries(session, tenant_id))
        ]


def test_a_panel_change_records_who_and_the_values(client, db):
    shop = make_merchant(db, "shop-a", locale="en")
    sign_in(client, shop.owner)
    post(client, "/panel/program", {"points_per_pin": "7"})
    ((kind, who, action, _, before, after),) = log(db, shop.tenant_id)
    assert (kind, who, action) == ("user", shop.owner, "setting.change")
    assert (before, after) == ({"points_per_pin": "1"}, {"points_per_pin": "7"})


def test_an_unchanged_or_refused_form_records_nothing(client, db):
    shop = make_merchant(db, "shop-a", locale="en")
    sign_in(client, shop.owner)
    post(client, "/panel/program", {"pin_lifetime_minutes": "0"})  # refused
    post(client, "/panel/program", {"points_per_pin": "1"})  # no change
    assert log(db, shop.tenant_id) == []


def test_cli_changes_are_recorded_without_secrets(database_url, tmp_path, db):
    fidelia = runner(database_url, tmp_path)
    created = create_tenant(fidelia, "cafe")
    fidelia("tenant", "set", "cafe", "points_per_pin", "3")
    key = one_json(fidelia("apikey", "create", "--tenant", "cafe", "--json"))
    fidelia("apikey", "revoke", key["api_key"])
    fidelia("export", "customers", "--tenant", "cafe", "--from", "2026-01-01")
    rows = log(db, created["id"])
    assert [r[2] for r in rows] == [
        "tenant.create",
        "apikey.create",
        "setting.change",
        "apikey.create",
        "apikey.revoke",
        "export.download",
    ]
    assert rows[5][3:] == (
        "customers",
        None,
        {"export": "customers", "from": "2026-01-01", "to": None, "decimal_comma": False},
    )
    assert all(kind == "cli" and "@" in who for kind, who, *_ in rows)
    assert rows[2][4:] == ({"points_per_pin": 1}, {"points_per_pin": 3})
    assert rows[4][3] == key["token"]
    assert key["api_key"] not in str(rows)


def test_nothing_in_the_log_can_be_edited(client, db):
    shop = make_merchant(db, "shop-a", locale="en")
    sign_in(client, shop.owner)
    post(client, "/panel/program", {"points_per_pin": "7"})
    for statement in ("UPDATE audit_log SET actor_label = 'nobody'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError), db.session() as session:
            session.execute(text(statement))
    with db.session(readonly=True) as session:
        assert session.scalar(select(AuditEntry.actor_label)) == shop.owner
