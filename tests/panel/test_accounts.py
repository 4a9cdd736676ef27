"""Signing in (one answer for an unknown e-mail and a wrong password; limits counted in the
database, so they hold across app instances), sessions (HttpOnly, SameSite, Secure in
production; logout and password change end them), self sign-up, and invitations (single
use, expiring, withdrawable)."""

from datetime import timedelta

from fastapi.responses import Response
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fidelia.app import create_app
from fidelia.kit import clock
from fidelia.models import LoginFailure, Tenant, User
from fidelia.panel.security import SESSION, Cookies
from tests.panel.support import (
    PASSWORD,
    csrf_token,
    make_merchant,
    post,
    sign_in,
)


def attempt(client, email, password):
    token = csrf_token(client)
    return client.post(
        "/panel/login",
        data={"csrf_token": token, "email": email, "password": password},
        follow_redirects=False,
    )


def failures(db) -> int:
    with db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(LoginFailure)) or 0)


def test_unknown_email_and_wrong_password_get_the_same_answer(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    unknown = attempt(client, "nobody@shop-a.test", PASSWORD)
    wrong = attempt(client, a.owner, "wrong password")
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda html: html.replace("nobody@shop-a.test", "").replace(a.owner, "")  # noqa: E731
    assert strip(unknown.text) == strip(wrong.text)
    assert "Wrong e-mail or password." in wrong.text
    assert SESSION not in client.cookies
    assert failures(db) == 2


def test_session_cookie_is_signed_httponly_samesite(client, db, settings):
    a = make_merchant(db, "shop-a")
    answer = sign_in(client, a.owner)
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/panel" in cookie and "Secure" not in cookie  # development
    production = Cookies(settings.model_copy(update={"env": "production"}))
    response = Response()
    production.start_session(response, 1, "k")
    assert "Secure" in response.headers["set-cookie"]
    # A tampered cookie is no session.
    value = client.cookies[SESSION]
    client.cookies.set(SESSION, value[:-2] + "xx", path="/panel")
    assert client.get("/panel/team", follow_redirects=False).status_code == 303


def test_login_limits_per_account_hold_across_two_app_instances(settings, db):
    a = make_merchant(db, "shop-a")
    limited = settings.model_copy(update={"panel_login_failures_account": "3/15minutes"})
    one, two = create_app(limited), create_app(limited)
    with TestClient(one) as first, TestClient(two) as second:
        assert attempt(first, a.owner, "bad-1").status_code == 401
        assert attempt(second, a.owner, "bad-2").status_code == 401
        assert attempt(first, a.owner, "bad-3").status_code == 401
        # The limit is used up in the database: the other instance refuses too, even the
        # right password; unknown e-mails are limited the same way.
        refused = attempt(second, a.owner, PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        for _ in range(3):
            attempt(first, "ghost@shop-a.test", "x")
        assert attempt(second, "ghost@shop-a.test", "x").status_code == 429
        # Another account is not affected.
        assert attempt(first, a.cashier, PASSWORD).status_code == 303
        # The window passes: the owner can sign in again.
        clock.freeze(clock.now() + timedelta(minutes=16))
        try:
            assert attempt(second, a.owner, PASSWORD).status_code == 303
        finally:
            clock.freeze(None)
    one.state.fidelia.db.dispose()
    two.state.fidelia.db.dispose()


def test_login_limit_per_ip(settings, db):
    make_merchant(db, "shop-a")
    limited = settings.model_copy(update={"panel_login_failures_ip": "4/15minutes"})
    with TestClient(create_app(limited)) as client:
        for n in range(4):
            assert attempt(client, f"user{n}@shop-a.test", "x").status_code == 401
        assert attempt(client, "owner@shop-a.test", PASSWORD).status_code == 429


def test_logout_ends_the_session_and_password_change_ends_the_others(app, client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    with TestClient(app) as phone:
        sign_in(phone, a.owner)
        changed = post(
            client,
            "/panel/account/password",
            {"current": PASSWORD, "new": "brand new pass", "confirm": "brand new pass"},
            follow_redirects=False,
        )
        assert changed.status_code == 303
        assert client.get("/panel/team").status_code == 200  # this session goes on
        assert phone.get("/panel/team", follow_redirects=False).status_code == 303  # ended
    wrong = post(
        client,
        "/panel/account/password",
        {"current": "nope", "new": "another pass", "confirm": "another pass"},
    )
    assert wrong.status_code == 422 and "The current password is wrong." in wrong.text
    out = post(client, "/panel/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/panel/login"
    assert client.get("/panel/team", follow_redirects=False).status_code == 303
    assert attempt(client, a.owner, "brand new pass").status_code == 303


def test_sign_up_creates_a_merchant_and_its_owner(client, db):
    answer = post(
        client,
        "/panel/signup",
        {
            "shop_name": "Padaria São João",
            "email": "Dona@Padaria.test",
            "password": "pão de queijo",
            "currency": "BRL",
            "timezone": "America/Sao_Paulo",
            "locale": "pt_BR",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/panel/onboarding"
    with db.session(readonly=True) as s:
        tenant = s.scalar(select(Tenant).where(Tenant.slug == "padaria-sao-joao"))
        assert tenant is not None and tenant.currency == "BRL" and tenant.locale == "pt_BR"
        owner = s.scalar(select(User).where(User.email == "dona@padaria.test"))
        assert owner is not None and owner.role == "owner" and owner.tenant_id == tenant.id
        assert owner.password_digest.startswith("$argon2id$")
    page = client.get("/panel/onboarding")
    assert "Primeiros passos" in page.text  # the merchant's language


def test_sign_up_errors_stay_next_to_their_field_and_create_nothing(client, db):
    answer = post(
        client,
        "/panel/signup",
        {
            "shop_name": "X",
            "email": "x@x.test",
            "password": "long enough",
            "currency": "XYZ",
            "timezone": "UTC",
            "locale": "en",
        },
    )
    assert answer.status_code == 422
    assert 'id="e-currency"' in answer.text and "XYZ" in answer.text
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Tenant)) == 0
        assert s.scalar(select(func.count()).select_from(User)) == 0


def test_sign_up_can_be_turned_off(settings, db):
    closed = settings.model_copy(update={"panel_signup": False})
    with TestClient(create_app(closed)) as client:
        assert client.get("/panel/signup").status_code == 404
        token = csrf_token(client)
        answer = client.post("/panel/signup", data={"csrf_token": token, "shop_name": "A"})
        assert answer.status_code == 404
        assert "/panel/signup" not in client.get("/panel/login").text
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Tenant)) == 0


def invite(client, email: str) -> str:
    answer = post(client, "/panel/team/invitations", {"email": email})
    assert answer.status_code == 200, answer.text
    return answer.text.split("/panel/invitations/")[1].split('"')[0]


def test_invitation_is_single_use(app, client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    token = invite(client, "ana@shop-a.test")
    with TestClient(app) as ana:
        form = ana.get(f"/panel/invitations/{token}")
        assert form.status_code == 200 and "ana@shop-a.test" in form.text
        short = post(ana, f"/panel/invitations/{token}", {"password": "short"})
        assert short.status_code == 422  # the link still works after a bad password
        joined = post(
            ana,
            f"/panel/invitations/{token}",
            {"password": "ana's password"},
            follow_redirects=False,
        )
        assert joined.status_code == 303
        assert ana.get("/panel/").status_code == 200  # signed in, as a cashier
    with TestClient(app) as again:
        assert again.get(f"/panel/invitations/{token}").status_code == 410
        reuse = post(again, f"/panel/invitations/{token}", {"password": "another password"})
        assert reuse.status_code == 410
    with db.session(readonly=True) as s:
        ana_user = s.scalar(select(User).where(User.email == "ana@shop-a.test"))
        assert ana_user is not None and ana_user.role == "cashier"
        assert ana_user.tenant_id == a.tenant_id
    team = client.get("/panel/team")
    assert 'data-user="ana@shop-a.test"' in team.text


def test_invitation_expires_and_can_be_withdrawn(app, client, db, settings):
    a = make_merchant(db, "shop-a")
    sign_in(client, a.owner)
    token = invite(client, "late@shop-a.test")
    clock.freeze(clock.now() + timedelta(hours=settings.panel_invitation_hours, seconds=1))
    try:
        with TestClient(app) as late:
            assert late.get(f"/panel/invitations/{token}").status_code == 410
            expired = post(late, f"/panel/invitations/{token}", {"password": "long enough"})
            assert expired.status_code == 410
    finally:
        clock.freeze(None)
    withdrawn = post(client, f"/panel/team/invitations/{a.invitation_id}/withdraw")
    assert withdrawn.status_code == 200
    with TestClient(app) as visitor:
        assert visitor.get(f"/panel/invitations/{a.invitation_token}").status_code == 410
    assert TestClient(app).get("/panel/invitations/not-a-token").status_code == 404


def test_owner_removes_a_cashier_but_not_another_merchants(app, client, db):
    a = make_merchant(db, "shop-a")
    b = make_merchant(db, "shop-b")
    sign_in(client, a.owner)
    assert post(client, f"/panel/team/users/{b.cashier_id}/remove").status_code == 404
    with TestClient(app) as cashier:
        sign_in(cashier, a.cashier)
        assert post(client, f"/panel/team/users/{a.cashier_id}/remove").status_code == 200
        assert cashier.get("/panel/", follow_redirects=False).status_code == 303  # gone
    with db.session(readonly=True) as s:
        emails = set(s.scalars(select(User.email)))
    assert a.cashier not in emails and b.cashier in emails
