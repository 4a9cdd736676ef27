"""The Rewards screen: list (search, filter, count, pages), create every type, edit (the row
in place: past redemptions keep their points and value), disable/enable; errors next to
their field with nothing saved; another merchant's ids are not found; every change audited."""

import re

from sqlalchemy import func, select

from fidelia.models import AuditEntry, Customer, Redemption, Reward
from fidelia.rewards.service import create_reward
from tests.panel.support import make_merchant, post, sign_in, tenant_of

FIELD_ERRORS = re.compile(r'<small class="error" id="e-([a-z_]+)">([^<]+)</small>')


def rewards_of(db, tenant_id):
    with db.session(readonly=True) as session:
        return list(
            session.scalars(select(Reward).where(Reward.tenant_id == tenant_id).order_by(Reward.id))
        )


def audit_of(db, tenant_id, action):
    with db.session(readonly=True) as session:
        return list(
            session.scalars(
                select(AuditEntry).where(
                    AuditEntry.tenant_id == tenant_id, AuditEntry.action == action
                )
            )
        )


def form(**values):
    base = {
        "title": "Free coffee",
        "description": "",
        "reward_type": "custom",
        "points": "10",
        "value": "",
        "min_purchase": "",
        "max_share_percent": "",
        "cumulative": "yes",
        "stock": "",
        "external_product_id": "",
        "product_name": "",
        "product_mode": "fixed",
        "product_max_units": "",
    }
    return {**base, **values}


def test_create_every_type_and_see_it_in_the_public_catalogue(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    cases = [
        form(title="Free coffee"),
        form(title="5 off", reward_type="fixed", value="5.00", min_purchase="20", stock="3"),
        form(
            title="10%",
            reward_type="percent",
            value="12.5",
            max_share_percent="50",
            cumulative="no",
        ),
        form(title="Cashback", reward_type="cashback", points="", value="2"),
        form(
            title="Croissant",
            reward_type="product",
            value="",
            product_mode="gift",
            external_product_id="SKU-9",
            product_name="Croissant",
            product_max_units="2",
        ),
        form(
            title="Cake price",
            reward_type="product",
            value="3.50",
            product_mode="final_price",
            external_product_id="CAKE",
        ),
    ]
    for data in cases:
        answer = post(client, "/panel/rewards", data, follow_redirects=False)
        assert answer.status_code == 303, (data["title"], answer.text[-2000:])
    found = {r.title: r for r in rewards_of(db, a.tenant_id)}
    assert len(found) == 6
    assert (found["5 off"].value, found["5 off"].min_purchase, found["5 off"].stock) == (
        500,
        2000,
        3,
    )
    assert found["10%"].value == 1250 and found["10%"].max_share_percent == 50
    assert found["10%"].cumulative is False
    assert found["Cashback"].points_required == 0 and found["Cashback"].value == 200
    croissant = found["Croissant"]
    assert (
        croissant.external_product_id,
        croissant.product_discount_mode,
        croissant.product_max_units,
        croissant.value,
    ) == ("SKU-9", "gift", 2, 0)
    assert (found["Cake price"].product_discount_mode, found["Cake price"].value) == (
        "final_price",
        350,
    )
    public = client.get("/api/v1/redimir/comercio/shop-a").json()
    assert {p["titulo"] for p in public["promociones"]} == set(found)
    created = audit_of(db, a.tenant_id, "reward.create")
    assert len(created) == 6 and created[0].actor_label == a.owner
    assert created[1].after["value"] == 500


def test_errors_stay_next_to_their_field_and_nothing_is_saved(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    for data, field in (
        (form(title=" "), "title"),
        (form(points="0"), "points"),
        (form(points="ten"), "points"),
        (form(reward_type="percent", value="150"), "value"),
        (form(reward_type="fixed", value="abc"), "value"),
        (form(max_share_percent="120"), "max_share_percent"),
        (form(stock="-1"), "stock"),
        (form(min_purchase="1.234"), "min_purchase"),
        (form(reward_type="product", value="1", product_mode="fixed"), "external_product_id"),
        (form(external_product_id="SKU"), "reward_type"),
        (
            form(
                reward_type="product", external_product_id="X", product_max_units="5000", value="1"
            ),
            "product_max_units",
        ),
    ):
        answer = post(client, "/panel/rewards", data)
        assert answer.status_code == 422, data
        errors = dict(FIELD_ERRORS.findall(answer.text))
        assert set(errors) == {field}, (data, errors)
        assert "--" not in errors[field]  # no CLI option names in the panel
    assert rewards_of(db, a.tenant_id) == []
    assert audit_of(db, a.tenant_id, "reward.create") == []


def test_edit_changes_the_row_in_place_and_keeps_past_redemptions(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    tenant = tenant_of(db, a.tenant_id)
    with db.session() as session:
        reward = create_reward(
            session, tenant, title="Old", points=10, reward_type="fixed", value="5"
        )
        customer = Customer(program_id=tenant.program_id, tenant_id=tenant.id)
        session.add(customer)
        session.flush()
        session.add(
            Redemption(
                program_id=tenant.program_id,
                tenant_id=tenant.id,
                customer_id=customer.id,
                reward_id=reward.id,
                points=10,
                value=500,
                origin="pin",
                external_code="R-1",
            )
        )
        reward_id = reward.id
    sign_in(client, a.owner)
    page = client.get(f"/panel/rewards/{reward_id}")
    assert 'value="5.00"' in page.text and 'value="Old"' in page.text
    answer = post(
        client,
        f"/panel/rewards/{reward_id}",
        form(title="New", reward_type="percent", points="20", value="15"),
        follow_redirects=False,
    )
    assert answer.status_code == 303
    [saved] = rewards_of(db, a.tenant_id)
    assert (saved.id, saved.title, saved.reward_type, saved.points_required, saved.value) == (
        reward_id,
        "New",
        "percent",
        20,
        1500,
    )
    with db.session(readonly=True) as session:
        past = session.scalar(select(Redemption).where(Redemption.reward_id == reward_id))
        assert (past.points, past.value, past.status) == (10, 500, "done")
    [entry] = audit_of(db, a.tenant_id, "reward.update")
    assert entry.before == {"title": "Old", "type": "fixed", "points": 10, "value": 500}
    assert entry.after == {"title": "New", "type": "percent", "points": 20, "value": 1500}
    # A refused edit changes nothing.
    refused = post(client, f"/panel/rewards/{reward_id}", form(title="X", points="-3"))
    assert refused.status_code == 422
    assert rewards_of(db, a.tenant_id)[0].title == "New"


def test_disable_and_enable(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    with db.session() as session:
        reward_id = create_reward(session, tenant_of(db, a.tenant_id), title="Tea", points=5).id
    sign_in(client, a.owner)
    assert (
        post(client, f"/panel/rewards/{reward_id}/disable", follow_redirects=False).status_code
        == 303
    )
    assert rewards_of(db, a.tenant_id)[0].active is False
    assert client.get("/api/v1/redimir/comercio/shop-a").json()["promociones"] == []
    assert "Disabled" in client.get("/panel/rewards?status=disabled").text
    assert f'data-reward="{reward_id}"' not in client.get("/panel/rewards?status=active").text
    post(client, f"/panel/rewards/{reward_id}/enable")
    assert rewards_of(db, a.tenant_id)[0].active is True
    assert [e.after for e in audit_of(db, a.tenant_id, "reward.disable")] == [{"active": False}]
    assert len(audit_of(db, a.tenant_id, "reward.enable")) == 1


def test_search_count_and_pages(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    tenant = tenant_of(db, a.tenant_id)
    with db.session() as session:
        for n in range(25):
            create_reward(session, tenant, title=f"Coffee {n:02d}", points=n + 1)
        create_reward(session, tenant, title="Cake 100% off_", points=3)
    sign_in(client, a.owner)
    first = client.get("/panel/rewards").text
    assert "26 rewards" in first and "page 1 of 2" in first
    assert first.count('data-reward="') == 20
    second = client.get("/panel/rewards?page_number=2").text
    assert second.count('data-reward="') == 6
    found = client.get("/panel/rewards?q=coffee+2").text
    assert "5 rewards" in found  # Coffee 20 to 24
    assert "1 reward" in client.get("/panel/rewards?q=100%25+off_").text
    assert "0 rewards" in client.get("/panel/rewards?q=50%25").text  # % is a character


def test_another_merchants_reward_is_not_found(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    b = make_merchant(db, "shop-b", locale="en")
    with db.session() as session:
        theirs = create_reward(session, tenant_of(db, b.tenant_id), title="B's", points=5).id
    sign_in(client, a.owner)
    assert client.get(f"/panel/rewards/{theirs}").status_code == 404
    assert post(client, f"/panel/rewards/{theirs}", form()).status_code == 404
    assert post(client, f"/panel/rewards/{theirs}/disable").status_code == 404
    assert rewards_of(db, b.tenant_id)[0].active is True
    with db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0
