"""What a tenant or an instance is entitled to now: one reading of an instance's state, shared
by the buyer's login (which admits only a live instance) and the entitlement API the merchant's
product calls at any time (isvapp/productapi), so both say the same thing.

The API's bearer tokens are domain.apitokens'.
"""

from datetime import UTC, datetime

from sqlalchemy import select

from ..extensions import db
from ..koo.times import iso_utc
from ..storage.models import Instance, InstanceState, KitState, Tenant


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


def of_instance(instance_id, now=None, allowed=None):
    """What ``instance_id`` is entitled to; None when there is no such instance, or when
    ``allowed(product_id, key_fingerprint)`` says the asking token is not for it (to that token
    another product's instance does not exist)."""
    instance = db.session.execute(select(Instance).where(Instance.instance_id == instance_id)).scalar_one_or_none()
    if instance is None or (allowed is not None and not allowed(instance.product_id, instance.key_fingerprint)):
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


class Ambiguous(ValueError):
    """A tenant question that names no product, for a tenant with instances of several: the
    answer for one product must not be read as the answer for another."""


def of_tenant(tenant_id, product_id=None, now=None, key_fingerprint=None):
    """What ``tenant_id`` is entitled to for ``product_id``: its instances of that product (a
    tenant synced under several instances has a row under each: another product of the
    merchant, or a new subscription after the old one ended), newest first, and whether any of
    them is live. Without ``product_id`` the tenant's instances must all be of one product,
    or Ambiguous is raised. ``key_fingerprint``: only instances that key created (and those from
    before keys owned rows). None: no such tenant."""
    tenants = (
        db.session.execute(
            select(Tenant)
            .where(Tenant.tenant_id == tenant_id, Tenant.state == KitState.ACTIVE)
            .order_by(Tenant.id.desc())
        )
        .scalars()
        .all()
    )
    if not tenants:
        return None
    found = {
        row.instance_id: row
        for row in db.session.execute(
            select(Instance).where(Instance.instance_id.in_([t.instance_key for t in tenants]))
        ).scalars()
    }
    instances = [found[t.instance_key] for t in tenants if t.instance_key in found]
    if key_fingerprint:
        instances = [i for i in instances if i.key_fingerprint in (None, key_fingerprint)]
    if product_id:
        instances = [i for i in instances if i.product_id == product_id]
    elif len({i.product_id for i in instances}) > 1:
        raise Ambiguous(
            f"tenant {tenant_id} has instances of several products: name one with ?productId= "
            "(or use a token made for one product)"
        )
    listed = []
    for instance in instances:
        reason = not_live_reason(instance, now)
        listed.append({**instance_facts(instance), "live": reason is None, "reason": reason})
    chosen = next((i for i in listed if i["live"]), listed[0] if listed else None)
    newest = tenants[0]
    return {
        "tenant": {"id": newest.tenant_id, "code": newest.tenant_code, "name": newest.name},
        "productId": product_id or (chosen or {}).get("productId"),
        "instance": {k: v for k, v in chosen.items() if k not in ("live", "reason")} if chosen else None,
        "live": bool(chosen and chosen["live"]),
        "reason": chosen["reason"] if chosen else "no_instance",
        "instances": listed,
    }
