"""Who may come in through the buyer's login, and what the merchant's product is told about them.

The IdP says who the user is; it does not know what the tenant bought. So after the IdP's
answer, three things must hold (docs/protocol.md, "The buyer's login"):

- the user info's ``tenant`` is the tenant whose IdP the login went to (a user of another
  enterprise, signed in at their own IdP, must not reach this tenant's product);
- the user is authorised for this app by authSync and enabled;
- the tenant's instance is live: not frozen, expired or released, and not past its expiry.

A refusal names its reason (one of REASONS: the page explains it in the buyer's language and says
whom to ask) and stores nothing. An admitted login records the user's last login, which the pages
and the go-live checklist show.
"""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from .. import outbound
from ..extensions import db
from ..koo.signing import secret_digest
from ..storage.models import BuyerSession, Instance, KitApp, KitState, KitUser, SignedRequest, Tenant, utcnow
from ..storage.statements import insert_ignore
from ..storage.transactions import write_transaction
from . import entitlements, simulation

# Why a login was refused; the page's wording for each is in isvapp/login/views.py.
REASONS = (
    "unknown_tenant",
    "no_app",
    "tenant_mismatch",
    "unknown_user",
    "user_disabled",
    "no_instance",
    "instance_frozen",
    "instance_expired",
    "instance_released",
    "state_used",
)


class Refused(Exception):
    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Target:
    """Where a login goes: the tenant (its IdP) and the app whose credentials it uses."""

    tenant_row: int
    tenant_id: str
    tenant_code: str | None
    tenant_name: str | None
    domain_name: str | None
    instance_id: str
    app_id: str
    client_id: str
    client_secret_sealed: str | None
    handoff_url: str | None


def find_target(tenant_ref, app_id=None, instance_key=None, now=None):
    """The tenant a login URL names (its tenantCode, or its tenantId) and the app it logs in to
    (the one named, or the tenant's only app with a clientId).

    A tenant synced under several instances has a row, and apps, under each: another product of
    the merchant, or a new subscription after the old one ended. The app decides: a login uses
    one app's credentials, so it is a login to that app's product and admits to that app's
    instance, never to whichever row of the tenant came first. Among rows that hold the same app
    (a subscription renewed as a new instance), a live instance wins, then the newest row.
    ``instance_key`` pins the row a login started with, for its callback."""
    tenants = (
        db.session.execute(
            select(Tenant)
            .where(
                or_(Tenant.tenant_code == tenant_ref, Tenant.tenant_id == tenant_ref), Tenant.state == KitState.ACTIVE
            )
            .order_by(Tenant.id)
        )
        .scalars()
        .all()
    )
    if not tenants:
        raise Refused("unknown_tenant", tenant_ref)
    rows = {(t.instance_key, t.tenant_id): t for t in tenants}
    query = select(KitApp).where(
        KitApp.instance_key.in_({t.instance_key for t in tenants}),
        KitApp.state == KitState.ACTIVE,
        KitApp.client_id.is_not(None),
    )
    if app_id:
        query = query.where(KitApp.app_id == app_id)
    if instance_key:
        query = query.where(KitApp.instance_key == instance_key)
    apps = [a for a in db.session.execute(query.order_by(KitApp.id)).scalars() if (a.instance_key, a.tenant_id) in rows]
    if not apps:
        raise Refused("no_app", "no app with a clientId")
    if len({a.app_id for a in apps}) > 1:
        raise Refused("no_app", "several apps: name one with ?app=")
    instances = {
        i.instance_id: i
        for i in db.session.execute(select(Instance).where(Instance.instance_id.in_([a.instance_key for a in apps])))
        .scalars()
        .all()
    }

    def preference(app):
        instance = instances.get(app.instance_key)
        return (instance is not None and entitlements.not_live_reason(instance, now) is None, app.id)

    app = max(apps, key=preference)
    tenant = rows[(app.instance_key, app.tenant_id)]
    target = Target(
        tenant.id,
        tenant.tenant_id,
        tenant.tenant_code,
        tenant.name,
        tenant.domain_name,
        tenant.instance_key,
        app.app_id,
        app.client_id or "",
        app.client_secret_sealed,
        app.handoff_url,
    )
    db.session.rollback()  # end the read (the IdP's calls that follow may take seconds)
    return target


def admit(target, user, now=None):
    """The hand-off's facts for ``user`` (the IdP's user info), or Refused. Reads only."""
    now = now or datetime.now(UTC)
    if user.get("tenant") != target.tenant_id:
        raise Refused("tenant_mismatch", f"the IdP says tenant {user.get('tenant')!r}")
    member = db.session.execute(
        select(KitUser).where(
            KitUser.instance_key == target.instance_id,
            KitUser.tenant_id == target.tenant_id,
            KitUser.app_id == target.app_id,
            KitUser.user_name == user["userName"],
        )
    ).scalar_one_or_none()
    if member is None or member.state != KitState.ACTIVE:
        raise Refused("unknown_user", user["userName"])
    if not member.enable:
        raise Refused("user_disabled", user["userName"])
    instance = db.session.execute(
        select(Instance).where(Instance.instance_id == target.instance_id)
    ).scalar_one_or_none()
    if instance is None:
        raise Refused("no_instance", target.instance_id)
    facts = {
        "tenant": {"id": target.tenant_id, "code": target.tenant_code, "name": target.tenant_name},
        "user": {
            "userName": member.user_name,
            "name": user.get("name") or member.name,
            "role": user.get("role") or member.role,
            "organizationCode": user.get("organizationCode") or member.org_code,
        },
        "instance": entitlements.instance_facts(instance),
    }
    reason = entitlements.not_live_reason(instance, now)
    db.session.rollback()  # end the read: record_login writes in a transaction of its own
    if reason:
        raise Refused(reason, target.instance_id)
    return facts


def record_login(target, user_name, state_digest, refresh_sealed, ttl_s, now=None):
    """The user's last login, for the pages and the go-live checklist (a simulated one apart:
    domain.simulation); the login's state,
    claimed in the replay store, so that the same state (and its cookie) cannot finish a second
    login, whatever the IdP does with its codes; and the buyer's session. Returns the session's
    id, for the cookie: only its SHA-256 is kept. Refused("state_used") when the state was used."""
    now = now or utcnow()
    session_id = secrets.token_urlsafe(32)
    simulated = simulation.current()
    with write_transaction(durable=False):  # a login lost to a power cut is no order lost: log in again
        if not insert_ignore(
            SignedRequest, scope="login", token=state_digest, nonce=state_digest, fingerprint="", answer=b""
        ):
            raise Refused("state_used")
        if not simulated:  # the simulator's login is recorded apart, below: it is not a buyer's
            db.session.execute(
                update(KitUser)
                .where(
                    KitUser.instance_key == target.instance_id,
                    KitUser.tenant_id == target.tenant_id,
                    KitUser.app_id == target.app_id,
                    KitUser.user_name == user_name,
                )
                .values(last_login_at=now)
            )
        db.session.add(
            BuyerSession(
                digest=secret_digest(session_id),
                instance_key=target.instance_id,
                tenant_id=target.tenant_id,
                app_id=target.app_id,
                user_name=user_name,
                refresh_sealed=refresh_sealed,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl_s),
            )
        )
    if simulated:
        simulation.record_login(target.tenant_id, user_name)
    return session_id


@dataclass(frozen=True)
class Session:
    """A buyer's live session, read: what /login/refresh and /logout need of it."""

    id: int
    instance_key: str
    tenant_id: str
    app_id: str
    user_name: str
    refresh_sealed: str | None


def session_of(session_id, now=None):
    """The buyer's session ``session_id`` names while it lasts; None once logout ended it, past
    its end, or never made here (a cookie copied before a logout is worthless after it)."""
    if not session_id or not isinstance(session_id, str) or len(session_id) > 100:
        return None
    row = db.session.execute(
        select(
            BuyerSession.id,
            BuyerSession.instance_key,
            BuyerSession.tenant_id,
            BuyerSession.app_id,
            BuyerSession.user_name,
            BuyerSession.refresh_sealed,
        ).where(
            BuyerSession.digest == secret_digest(session_id),
            BuyerSession.ended_at.is_(None),
            BuyerSession.expires_at > (now or utcnow()),
        )
    ).first()
    db.session.rollback()  # end the read: the IdP's calls may follow
    return Session(*row) if row else None


def keep_refresh_token(session_row_id, refresh_sealed):
    """An IdP that rotates refresh tokens gave a new one: the session keeps that one."""
    with write_transaction(durable=False):
        db.session.execute(
            update(BuyerSession)
            .where(BuyerSession.id == session_row_id, BuyerSession.ended_at.is_(None))
            .values(refresh_sealed=refresh_sealed)
        )


def end_session(session_id, now=None):
    """Logout: the session ends here, and its refresh token is forgotten. True when a live
    session was ended."""
    with write_transaction(durable=False):
        ended = db.session.execute(
            update(BuyerSession)
            .where(BuyerSession.digest == secret_digest(session_id or ""), BuyerSession.ended_at.is_(None))
            .values(ended_at=now or utcnow(), refresh_sealed=None)
            .returning(BuyerSession.id)
        ).first()
    return ended is not None


def set_handoff_url(app_pk, url):
    """Where this app's signed-in buyers are sent; "" goes back to LOGIN_HANDOFF_URL. Returns the
    problem with ``url`` (nothing is changed then), or None."""
    url = (url or "").strip()
    if url and (len(url) > 2048 or not outbound.is_https_or_loopback(url)):
        return "the hand-off URL must be an https:// URL (plain http only to this host)"
    with write_transaction():
        db.session.execute(update(KitApp).where(KitApp.id == app_pk).values(handoff_url=url or None))
    return None
