"""Panel accounts: owners and cashiers of a merchant, platform operators; sign-in with
limits counted in the database; invitations; self sign-up (a merchant and its owner).

Roles: ``owner`` (everything of their merchant), ``cashier`` (the counter screens) and
``operator`` (platform staff, no merchant). Passwords are argon2id digests
(``kit/passwords.py``). A failed sign-in answers the same whether the e-mail exists or not.
"""

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import parse as parse_limit
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.documents import normalize_email
from fidelia.kit.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from fidelia.kit.passwords import dummy_digest, hash_password, verify_password
from fidelia.kit.security import digest
from fidelia.kit.settings import Settings
from fidelia.models import Invitation, LoginFailure, Tenant, User
from fidelia.tenants.service import create_tenant, validate_locale

ROLES = ("owner", "cashier", "operator")
MERCHANT_ROLES = ("owner", "cashier")


class SignInRefused(DomainError):
    """Unknown e-mail or wrong password: one answer for both."""

    status = 401
    code = "SIGN_IN_REFUSED"


class SignInThrottled(DomainError):
    status = 429
    code = "TOO_MANY_ATTEMPTS"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvitationUnusable(DomainError):
    """Expired, used or withdrawn: the link no longer works."""

    status = 410
    code = "INVITATION_UNUSABLE"


@dataclass(frozen=True)
class LoginPolicy:
    account_limit: int = 5
    ip_limit: int = 30
    window: timedelta = timedelta(minutes=15)
    ip_window: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings) -> "LoginPolicy":
        account = parse_limit(settings.panel_login_failures_account)
        ip = parse_limit(settings.panel_login_failures_ip)
        return cls(
            account_limit=account.amount,
            ip_limit=ip.amount,
            window=timedelta(seconds=account.get_expiry()),
            ip_window=timedelta(seconds=ip.get_expiry()),
        )


# -- accounts -------------------------------------------------------------------------------


def _email(raw: str) -> str:
    return normalize_email(raw)


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: str,
    tenant: Tenant | None,
    locale: str | None = None,
) -> User:
    return _insert_user(session, email, hash_password(password), role, tenant, locale)


def _insert_user(
    session: Session,
    email: str,
    password_digest: str,
    role: str,
    tenant: Tenant | None,
    locale: str | None,
) -> User:
    if role not in ROLES:
        raise InvalidInput(f"A role is one of {', '.join(ROLES)}.", code="INVALID_ROLE")
    if role == "operator" and tenant is not None:
        raise InvalidInput("An operator belongs to no merchant.", code="INVALID_ROLE")
    if role != "operator" and tenant is None:
        raise InvalidInput("An owner or cashier belongs to a merchant.", code="INVALID_ROLE")
    address = _email(email)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict("An account with this e-mail already exists.", code="EMAIL_TAKEN")
    user = User(
        tenant_id=tenant.id if tenant else None,
        email=address,
        password_digest=password_digest,
        role=role,
        locale=validate_locale(locale) if locale else None,
        session_key=secrets.token_hex(16),
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such account.", code="USER_NOT_FOUND")
    return user


def users_of(session: Session, tenant_id: int) -> list[User]:
    """The merchant's accounts, owners first."""
    query = select(User).where(User.tenant_id == tenant_id).order_by(User.role.desc(), User.id)
    return list(session.scalars(query))


def all_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def _failures(session: Session, since: datetime, **where: str) -> int:
    query = select(func.count()).select_from(LoginFailure).where(LoginFailure.created_at > since)
    for column, value in where.items():
        query = query.where(getattr(LoginFailure, column) == value)
    return int(session.scalar(query) or 0)


def authenticate(session: Session, email: str, password: str, ip: str, policy: LoginPolicy) -> User:
    """The account behind ``email`` and ``password``, or SignInRefused (the same for an
    unknown e-mail). Failures are rows, counted per e-mail typed (since that account's last
    sign-in) and per client address; past either limit every attempt is refused with
    SignInThrottled until the window frees, even with the right password. Concurrent
    attempts are counted as they commit, so a burst may pass the limit by its own size."""
    at = now()
    address = (email or "").strip().lower()[:254]
    user = session.scalar(select(User).where(User.email == address)) if address else None
    since = at - policy.window
    if user is not None and user.last_login_at is not None:
        since = max(since, user.last_login_at)
    if (
        _failures(session, since, email=address) >= policy.account_limit
        or _failures(session, at - policy.ip_window, ip=ip) >= policy.ip_limit
    ):
        minutes = max(1, int(min(policy.window, policy.ip_window).total_seconds() // 60))
        raise SignInThrottled(
            "Too many failed sign-ins; try again later.", retry_after=minutes * 60
        )
    if not verify_password(user.password_digest if user else dummy_digest(), password or ""):
        session.add(LoginFailure(email=address, ip=ip[:64], created_at=at))
        session.flush()
        raise SignInRefused("Wrong e-mail or password.")
    assert user is not None
    user.last_login_at = at
    session.flush()
    return user


def change_password(session: Session, user_id: int, current: str, new: str) -> User:
    """A new password, after the current one; every other session of the account ends."""
    user = get_user(session, user_id)
    if not verify_password(user.password_digest, current):
        raise InvalidInput("The current password is wrong.", code="WRONG_PASSWORD")
    user.password_digest = hash_password(new)
    user.session_key = secrets.token_hex(16)
    session.flush()
    return user


def set_locale(session: Session, user_id: int, locale: str | None) -> User:
    user = get_user(session, user_id)
    user.locale = validate_locale(locale) if locale else None
    session.flush()
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """Sign out everywhere: the cookies carry the old session key."""
    get_user(session, user_id).session_key = secrets.token_hex(16)
    session.flush()


def remove_user(session: Session, tenant_id: int, user_id: int) -> None:
    """Remove a cashier of this merchant (another merchant's account is not found)."""
    user = session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant_id))
    if user is None:
        raise NotFound("No such account at this merchant.", code="USER_NOT_FOUND")
    if user.role != "cashier":
        raise Forbidden("Only cashiers can be removed here.", code="NOT_A_CASHIER")
    session.delete(user)
    session.flush()


# -- invitations ----------------------------------------------------------------------------


def invite(
    session: Session,
    tenant_id: int,
    email: str,
    created_by: int | None,
    hours: int,
    role: str = "cashier",
) -> tuple[Invitation, str]:
    """A single-use invitation; returns it and its token (shown once, kept as a digest)."""
    if role not in MERCHANT_ROLES:
        raise InvalidInput("An invitation is for an owner or a cashier.", code="INVALID_ROLE")
    address = _email(email)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict("An account with this e-mail already exists.", code="EMAIL_TAKEN")
    token = secrets.token_urlsafe(24)
    at = now()
    invitation = Invitation(
        tenant_id=tenant_id,
        email=address,
        role=role,
        token_digest=digest(token),
        created_by=created_by,
        created_at=at,
        expires_at=at + timedelta(hours=hours),
    )
    session.add(invitation)
    session.flush()
    return invitation, token


def invitation_for(session: Session, token: str) -> Invitation:
    """The invitation of a link, while it can still be accepted."""
    invitation = session.scalar(select(Invitation).where(Invitation.token_digest == digest(token)))
    if invitation is None:
        raise NotFound("This invitation link is not valid.", code="INVITATION_NOT_FOUND")
    if invitation.used_at or invitation.revoked_at or invitation.expires_at <= now():
        raise InvitationUnusable("This invitation has expired or was already used.")
    return invitation


def accept_invitation(
    session: Session, token: str, password: str, locale: str | None = None
) -> User:
    """Create the invited account. The invitation is taken by a conditional UPDATE, so two
    acceptances of one link racing end with one account."""
    invitation = invitation_for(session, token)
    password_digest = hash_password(password)  # a bad password leaves the link usable
    at = now()
    taken = session.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > at,
        )
        .values(used_at=at)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise InvitationUnusable("This invitation has expired or was already used.")
    tenant = session.get_one(Tenant, invitation.tenant_id)
    return _insert_user(session, invitation.email, password_digest, invitation.role, tenant, locale)


def pending_invitations(session: Session, tenant_id: int) -> list[Invitation]:
    """Invitations that can still be accepted, newest first."""
    query = (
        select(Invitation)
        .where(
            Invitation.tenant_id == tenant_id,
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now(),
        )
        .order_by(Invitation.id.desc())
    )
    return list(session.scalars(query))


def withdraw_invitation(session: Session, tenant_id: int, invitation_id: int) -> None:
    invitation = session.scalar(
        select(Invitation).where(Invitation.id == invitation_id, Invitation.tenant_id == tenant_id)
    )
    if invitation is None:
        raise NotFound("No such invitation at this merchant.", code="INVITATION_NOT_FOUND")
    if invitation.revoked_at is None and invitation.used_at is None:
        invitation.revoked_at = now()
    session.flush()


# -- sign-up --------------------------------------------------------------------------------


def slug_for(session: Session, name: str) -> str:
    """A free merchant slug from its name: 'Café Dos Irmãos' -> 'cafe-dos-irmaos' (-2...)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:60].strip("-") or "shop"
    slug, n = base, 1
    while session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


def sign_up(
    session: Session,
    *,
    shop_name: str,
    email: str,
    password: str,
    currency: str,
    timezone: str,
    locale: str,
) -> User:
    """A new merchant and its owner, in one transaction."""
    address = _email(email)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict("An account with this e-mail already exists.", code="EMAIL_TAKEN")
    password_digest = hash_password(password)  # a bad password creates no merchant
    tenant = create_tenant(
        session,
        slug=slug_for(session, shop_name),
        name=shop_name,
        currency=currency,
        timezone=timezone,
        locale=locale,
    )
    return _insert_user(session, address, password_digest, "owner", tenant, None)


# -- the demo -------------------------------------------------------------------------------


def derived_password(secret_key: str, label: str) -> str:
    """A password derived from the server's secret: the same on every start (the demo)."""
    seed = hmac.new(secret_key.encode(), f"panel-password:{label}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(seed.digest()).decode()[:16]


def demo_owner(session: Session, tenant: Tenant, secret_key: str) -> tuple[str, str | None]:
    """The demo merchant's owner login, created when missing: (e-mail, password), the
    password None when the owner changed it since."""
    email = f"owner@{tenant.slug}.local"
    password = derived_password(secret_key, email)
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        create_user(session, email=email, password=password, role="owner", tenant=tenant)
        return email, password
    return email, password if verify_password(user.password_digest, password) else None
