"""What a tenant or an instance is entitled to now: one reading of an instance's state, shared
by the buyer's login (which admits only a live instance) and the entitlement API the merchant's
product calls at any time (isvapp/productapi), so both say the same thing.

The API's bearer tokens live here too: made on the pages, shown once, kept only as SHA-256
(a 256-bit random token needs no slow hash: nobody can guess one to test against it), and
revoked by a click.
"""

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from ..extensions import db
from ..koo.signing import secret_digest
from ..koo.times import iso_utc
from ..storage.models import ApiToken, Instance, InstanceState, KitState, Tenant, utcnow
from ..storage.transactions import write_transaction

TOKEN_PREFIX = "isvapp_"
USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


def _aware(moment):
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def not_live_reason(instance, now=None):
    """Why ``instance`` gives no entitlement now ("instance_released", "instance_frozen",
    "instance_expired"), or None when it is live. Past its expiry counts as expired even before
    the marketplace's expireInstance or freeze arrives."""
    now = now or datetime.now(UTC)
    expires = _aware(instance.expire_time)
    if instance.state == InstanceState.RELEASED:
        return "instance_released"
    if instance.state == InstanceState.FROZEN:
        return "instance_frozen"
    if instance.state == InstanceState.EXPIRED or (expires is not None and expires <= now):
        return "instance_expired"
    return None


def instance_facts(instance):
    """The instance as the assertion and the API show it (text only)."""
    expires = _aware(instance.expire_time)
    return {
        "id": instance.instance_id,
        "state": instance.state,
        "expireTime": iso_utc(expires),
        "productId": instance.product_id,
        "skuCode": instance.sku_code,
    }


def of_instance(instance_id, now=None):
    instance = db.session.execute(select(Instance).where(Instance.instance_id == instance_id)).scalar_one_or_none()
    if instance is None:
        return None
    reason = not_live_reason(instance, now)
    return {
        "instance": {
            **instance_facts(instance),
            "chargingMode": instance.charging_mode,
            "testFlag": instance.test_flag,
        },
        "live": reason is None,
        "reason": reason,
    }


def of_tenant(tenant_id, now=None):
    tenant = db.session.execute(
        select(Tenant)
        .where(Tenant.tenant_id == tenant_id, Tenant.state == KitState.ACTIVE)
        .order_by(Tenant.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if tenant is None:
        return None
    found = of_instance(tenant.instance_key, now)
    return {
        "tenant": {"id": tenant.tenant_id, "code": tenant.tenant_code, "name": tenant.name},
        **(found or {"instance": None, "live": False, "reason": "no_instance"}),
    }


# --- the API's tokens ----------------------------------------------------------------------------


def create_token(name):
    """A new token named ``name``: returned once, never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        db.session.add(
            ApiToken(
                name=(name or "").strip()[:100] or "token",
                digest=secret_digest(token),
                hint=token[: len(TOKEN_PREFIX) + 4],
            )
        )
    return token


def revoke_token(token_id):
    with write_transaction():
        db.session.execute(
            update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
        )


def tokens():
    return db.session.execute(select(ApiToken).order_by(ApiToken.id.desc())).scalars().all()


def token_allowed(token):
    """True for a token made here and not revoked (and its use noted, at most once a minute)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return False
    row = db.session.execute(
        select(ApiToken.id, ApiToken.last_used_at).where(
            ApiToken.digest == secret_digest(token), ApiToken.revoked_at.is_(None)
        )
    ).first()
    db.session.rollback()
    if row is None:
        return False
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > USED_EVERY:
        with write_transaction(durable=False):
            db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return True
