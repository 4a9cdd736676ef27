"""The role matrix, drawn from the app's own route list: every panel route (new ones too)
is asked by an anonymous visitor, the merchant's owner and cashier, a platform operator and
another merchant's owner, and each answer must match the role dependency the route declares
(auth.OwnerDep, CounterDep, OperatorDep, ViewerDep or public). Every state-changing route
also refuses a request without its CSRF token."""

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fidelia.app import create_app
from fidelia.kit.settings import Settings
from fidelia.models import Invitation, User
from fidelia.panel.auth import public
from fidelia.panel.web import panel_routes
from tests.panel.support import (
    Merchant,
    add_samples,
    make_merchant,
    make_operator,
    post,
    sign_in,
)

# Collected from an app that never connects (its engine is lazy): every route there is.
_APP = create_app(
    Settings(_env_file=None, database_url=f"sqlite:///{tempfile.gettempdir()}/never.db")  # type: ignore[call-arg]
)
ROUTES = sorted(
    (path, method)
    for path, methods, _route in panel_routes(_APP)
    for method in methods
    if method != "HEAD"
)
PUBLIC = "public"


def access_of(dependant: Dependant) -> list[Any]:
    """The access declarations (role tuples or PUBLIC) anywhere in a route's dependencies."""
    found: list[Any] = []
    for dep in dependant.dependencies:
        if dep.call is public:
            found.append(PUBLIC)
        elif hasattr(dep.call, "roles"):
            found.append(dep.call.roles)
        found.extend(access_of(dep))
    return found


def declared(path: str, method: str, app: Any) -> Any:
    route = next(r for p, methods, r in panel_routes(app) if p == path and method in methods)
    access = set(access_of(route.dependant))
    assert len(access) == 1, (
        f"{method} {path} must declare exactly one access (OwnerDep, CounterDep, OperatorDep, "
        f"ViewerDep or Depends(public)); found {access or 'none'}"
    )
    return access.pop()


def sample_path(path: str, a: Merchant) -> str:
    """Ids of merchant A in the path: another merchant's owner must get 404 for them."""
    samples = {
        "{token}": a.invitation_token,
        "{invitation_id}": str(a.invitation_id),
        "{user_id}": str(a.cashier_id),
        "{customer_id}": str(a.customer_id),
        "{pin_id}": str(a.pin_id),
        **a.samples,
        "{message_id}": str(a.message_id),
        "{merchant_id}": str(a.tenant_id),
    }
    for name, value in samples.items():
        path = path.replace(name, value)
    assert "{" not in path, f"add a sample of merchant A for the parameter in {path}"
    return path


def counts(db: Any) -> tuple[int, int]:
    with db.session(readonly=True) as s:
        return (
            int(s.scalar(select(func.count()).select_from(User)) or 0),
            int(s.scalar(select(func.count()).select_from(Invitation)) or 0),
        )


@pytest.fixture
def visitors(app: Any, db: Any) -> Iterator[tuple[dict[str, TestClient], Merchant]]:
    a = make_merchant(db, "shop-a", records=True)
    add_samples(db, a)
    b = make_merchant(db, "shop-b")
    staff = make_operator(db)
    clients = {
        name: TestClient(app) for name in ("anonymous", "cashier", "operator", "other", "owner")
    }
    for client in clients.values():
        client.__enter__()
    sign_in(clients["cashier"], a.cashier)
    sign_in(clients["operator"], staff)
    sign_in(clients["other"], b.owner)
    sign_in(clients["owner"], a.owner)  # last: its own actions may change A's data
    yield clients, a
    for client in clients.values():
        client.__exit__(None, None, None)


@pytest.mark.parametrize(("path", "method"), ROUTES, ids=[f"{m} {p}" for p, m in ROUTES])
def test_role_matrix(app, db, visitors, path, method):
    clients, a = visitors
    access = declared(path, method, app)
    url = sample_path(path, a)
    has_ids = url != path
    for name, client in clients.items():
        if method == "GET":
            answer = client.get(url, follow_redirects=False)
        else:
            answer = post(client, url, {}, follow_redirects=False)
        where = f"{method} {path} as {name}: {answer.status_code}"
        location = answer.headers.get("location", "")
        if access == PUBLIC:
            assert answer.status_code != 403 and not location.startswith("/panel/login?"), where
            assert answer.status_code < 500, where
            continue
        roles = access or ("owner", "cashier", "operator")
        role = {"cashier": "cashier", "operator": "operator"}.get(name, "owner")
        if name == "anonymous":
            assert answer.status_code == 303 and location.startswith("/panel/login"), where
        elif role not in roles:
            assert answer.status_code == 403, where
            assert 'data-code="ROLE_FORBIDDEN"' in answer.text, where
        elif name == "other" and has_ids:
            assert answer.status_code == 404, where
        else:
            assert answer.status_code in (200, 204, 303, 422), where


POSTS = [(p, m) for p, m in ROUTES if m == "POST"]


@pytest.mark.parametrize(("path", "method"), POSTS, ids=[p for p, _m in POSTS])
def test_every_action_refuses_a_request_without_its_csrf_token(app, db, visitors, path, method):
    clients, a = visitors
    url = sample_path(path, a)
    before = counts(db)
    owner = clients["owner"]
    for headers, data in (
        ({}, {}),
        ({}, {"csrf_token": "forged"}),
        ({"X-CSRF-Token": "forged"}, {}),
    ):
        answer = owner.post(url, data=data, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, f"{path}: {answer.status_code}"
        assert 'data-code="CSRF_REFUSED"' in answer.text
    assert counts(db) == before  # nothing changed


def test_htmx_requests_send_the_token_in_a_header(client, db):
    a = make_merchant(db, "shop-a")
    sign_in(client, a.owner)
    page = client.get("/panel/team")
    token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    answer = client.post(
        "/panel/team/invitations",
        data={"email": "htmx@shop-a.test"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert "/panel/invitations/" in answer.text
