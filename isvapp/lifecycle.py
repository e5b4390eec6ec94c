"""The instance state machine and idempotency, shared by every protocol generation.

Every function here runs inside the caller's :func:`db.write_transaction` (one short transaction
per callback: claim, change state, store the answer). Functions return the answer's bytes: for a
repeat of an idempotent request that is the stored first answer, byte for byte.

Idempotency is claimed with INSERT ... ON CONFLICT DO NOTHING on a UNIQUE key, never by
check-then-insert, so concurrent repeats on several workers or hosts cannot both create.
"""
import hashlib
import json
import uuid
from types import SimpleNamespace

from sqlalchemy import select

from . import credentials, jobs, vault
from .db import insert_ignore
from .extensions import db
from .koo import codes
from .koo.codes import KooError
from .koo.envelope import envelope
from .koo.fieldcrypto import encrypt_field
from .models import Answer, Conflict, DetailsState, Event, Instance, InstanceState, Nonce, utcnow


_INSERT_INSTANCE = Instance.__table__.insert()
_INSERT_EVENT = Event.__table__.insert()
# Every column, with its plain default: what a freshly inserted row holds.
_INSTANCE_BLANK = {c.name: (c.default.arg if c.default is not None and c.default.is_scalar else None)
                   for c in Instance.__table__.columns}


# --- guards --------------------------------------------------------------------------------

def claim_nonce(scope, nonce):
    """Refuse a nonce seen before (000001); it is stored only if the whole transaction commits."""
    if not insert_ignore(Nonce, scope=scope, nonce=nonce, seen_at=utcnow()):
        raise KooError(codes.AUTH_FAILED, "nonce has been used before (replayed request)")


def request_digest(fields):
    """What makes two requests 'the same payload': the business fields, not businessId or signatures."""
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _claim(key, activity, digest, instance_id=None):
    """Claim an idempotency key. Returns None when claimed now, else the stored first answer.

    A repeat whose payload differs is still answered with the first answer (the marketplace must
    see one consistent truth) and recorded as a conflict for the merchant to look at.
    """
    if insert_ignore(Answer, key=key, activity=activity, request_digest=digest,
                     instance_id=instance_id, created_at=utcnow()):
        return None
    first = db.session.execute(select(Answer).where(Answer.key == key)).scalar_one()
    if first.request_digest != digest:
        db.session.add(Conflict(key=key, activity=activity, instance_id=first.instance_id,
                                first_digest=first.request_digest, request_digest=digest))
    return first.body


def _store(key, body, instance_id=None):
    db.session.execute(Answer.__table__.update().where(Answer.key == key)
                       .values(body=body, instance_id=instance_id))
    return body


# Events after which a G2 order's details are fetched from the order-query API (§5.1).
FETCH_AFTER = {"created", "upgraded", "renewed", "trial_converted", "renewal_cancelled"}


def emit(kind, instance, **payload):
    """Record a lifecycle event and its jobs in the same transaction as the state change."""
    event_id = record_event(kind, instance.instance_id, instance.order_id, payload)
    if kind in FETCH_AFTER and instance.generation in ("G2", "LIC2"):
        jobs.enqueue("fetch_order", event_id, instance_id=instance.instance_id, payload={
            "order_id": payload.get("order_id") or instance.order_id,
            "order_line_id": payload.get("order_line_id") or instance.order_line_id})


def record_event(kind, instance_id, order_id, payload):
    """Write an event (Kit syncs have no instance row) and the job that runs its provisioning hook."""
    event_id = str(uuid.uuid4())
    db.session.execute(_INSERT_EVENT, dict(event_id=event_id, kind=kind, instance_id=instance_id or None,
                                           order_id=order_id or None, payload=payload or None))
    jobs.enqueue("provision", event_id, instance_id=instance_id or None)
    return event_id


def live_instance(instance_id):
    instance = db.session.execute(
        select(Instance).where(Instance.instance_id == instance_id)).scalar_one_or_none()
    if instance is None:
        raise KooError(codes.INSTANCE_NOT_FOUND, f"instance {instance_id} does not exist")
    if instance.state == InstanceState.RELEASED:
        raise KooError(codes.INSTANCE_NOT_FOUND, f"instance {instance_id} has been released")
    return instance


# --- keys ------------------------------------------------------------------------------------

def order_key(order_id, order_line_id=None, product_id=None, pay_per_use=False):
    """The newInstance idempotency key (project rule): the order line; without one, the order,
    or (order, product) for pay-per-use, where one order carries several billing items."""
    if order_line_id:
        return f"newInstance|{order_id}|{order_line_id}"
    if pay_per_use and product_id:
        return f"newInstance|{order_id}|product:{product_id}"
    return f"newInstance|{order_id}"


# --- activities ------------------------------------------------------------------------------

def new_instance(settings, *, key, digest, business_id, attrs, render):
    """Create the instance for an order line once; every repeat gets the first answer.

    ``attrs`` are Instance columns from the request; ``render(instance)`` builds the answer
    bytes in the caller's generation's shape. instanceId = the first request's businessId.
    """
    stored = _claim(key, "newInstance", digest)
    if stored is not None:
        return stored
    instance_id = business_id
    if db.session.execute(select(Instance.id).where(Instance.instance_id == instance_id)).first():
        instance_id = uuid.uuid4().hex  # a reused businessId must not merge two orders
    login = credentials.initial_credentials(settings, instance_id, attrs.get("order_id"))
    values = dict(instance_id=instance_id, state=InstanceState.ACTIVE,
                  front_end_url=login["front_end_url"], admin_url=login["admin_url"],
                  admin_user=login["admin_user"], memo=login["memo"],
                  admin_password_sealed=vault.seal(settings.secret_key, login["admin_password"]), **attrs)
    # A Core INSERT, not an ORM object: this runs while holding the database's write lock, and
    # the unit of work cost more than the statement (profiled). ``instance`` is the row's values.
    db.session.execute(_INSERT_INSTANCE, values)
    instance = SimpleNamespace(**{**_INSTANCE_BLANK, **values})
    emit("created", instance, details=instance.details_state)
    return _store(key, render(instance), instance.instance_id)


def refresh_instance(*, instance_id, order_id, order_line_id, scene, expire_time, product_id=None,
                     digest, render=None):
    """Renewal, trial-to-formal, or a cancelled renewal period: the new expiry is the marketplace's.

    ``render(instance)`` builds the answer when it carries more than the envelope (a license).
    """
    key = f"refreshInstance|{instance_id}|{order_id}|{order_line_id or ''}|{scene}"
    instance = live_instance(instance_id)
    stored = _claim(key, "refreshInstance", digest, instance_id)
    if stored is not None:
        return stored
    previous = instance.expire_time
    instance.expire_time = expire_time.replace(tzinfo=None)
    if product_id:
        instance.product_id = product_id
    if scene == "TRIAL_TO_FORMAL":
        instance.trial = False
    if instance.state == InstanceState.EXPIRED and scene != "UNSUBSCRIBE_RENEWAL_PERIOD":
        instance.state = InstanceState.ACTIVE
    emit({"RENEWAL": "renewed", "TRIAL_TO_FORMAL": "trial_converted",
          "UNSUBSCRIBE_RENEWAL_PERIOD": "renewal_cancelled"}.get(scene, "renewed"), instance,
         order_id=order_id, order_line_id=order_line_id, scene=scene,
         expire_time=instance.expire_time.isoformat(),
         previous_expire_time=previous.isoformat() if previous else None)
    return _store(key, render(instance) if render else envelope(), instance_id)


def once(*, key, activity, digest, instance_id, make):
    """Run ``make()`` (-> answer bytes) once per key; every repeat gets the first answer."""
    stored = _claim(key, activity, digest, instance_id)
    if stored is not None:
        return stored
    return _store(key, make(), instance_id)


def set_frozen(*, instance_id, frozen):
    """FREEZE / UNFREEZE; naturally idempotent, so a repeat changes nothing and emits nothing."""
    instance = live_instance(instance_id)
    target = InstanceState.FROZEN if frozen else InstanceState.ACTIVE
    if frozen and instance.state != InstanceState.FROZEN or not frozen and instance.state == InstanceState.FROZEN:
        instance.state = target
        emit("frozen" if frozen else "unfrozen", instance)
    return envelope()


def expire_instance(*, instance_id, order_id=None):
    """G1 expiry: the instance stops serving until renewed; idempotent."""
    instance = live_instance(instance_id)
    if instance.state == InstanceState.ACTIVE:
        instance.state = InstanceState.EXPIRED
        emit("expired", instance, order_id=order_id)
    return envelope()


def upgrade_instance(*, instance_id, order_id, order_line_id, digest, attrs=None):
    """An upgrade order was paid: same instanceId, new specification (fetched with the order)."""
    key = f"upgradeInstance|{instance_id}|{order_id}|{order_line_id or ''}"
    instance = live_instance(instance_id)
    stored = _claim(key, "upgradeInstance", digest, instance_id)
    if stored is not None:
        return stored
    for name, value in (attrs or {}).items():
        setattr(instance, name, value)
    if instance.details_state != DetailsState.INLINE:
        instance.details_state = DetailsState.PENDING
    emit("upgraded", instance, order_id=order_id, order_line_id=order_line_id)
    return _store(key, envelope(), instance_id)


def release_instance(*, instance_id, order_id=None):
    """Release keeps the row (state RELEASED); releasing again succeeds, an unknown id is 000003."""
    instance = db.session.execute(
        select(Instance).where(Instance.instance_id == instance_id)).scalar_one_or_none()
    if instance is None:
        raise KooError(codes.INSTANCE_NOT_FOUND, f"instance {instance_id} does not exist")
    if instance.state != InstanceState.RELEASED:
        instance.state = InstanceState.RELEASED
        instance.released_at = utcnow()
        emit("released", instance, order_id=order_id)
    return envelope()


def find_instances(instance_ids):
    """The instances among ``instance_ids`` that exist, in the order asked."""
    rows = db.session.execute(select(Instance).where(Instance.instance_id.in_(instance_ids))).scalars()
    found = {row.instance_id: row for row in rows}
    return [found[i] for i in instance_ids if i in found]


# --- answer pieces shared by the generations ---------------------------------------------------

def app_info(settings, instance, encrypted=True):
    """The buyer's login for appInfo; userName/password AES-encrypted with the Key unless told not to."""
    user = instance.admin_user or ""
    password = vault.unseal(settings.secret_key, instance.admin_password_sealed) if instance.admin_password_sealed else ""
    if encrypted:
        user = encrypt_field(settings.access_key, user, settings.encrypt_type)
        password = encrypt_field(settings.access_key, password, settings.encrypt_type)
    return {"frontEndUrl": instance.front_end_url, "adminUrl": instance.admin_url,
            "userName": user, "password": password, "memo": instance.memo or None}
