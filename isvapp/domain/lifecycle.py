"""The instance state machine and idempotency, shared by every protocol generation.

Every function here runs inside the caller's :func:`transactions.write_transaction` (one short transaction
per callback: claim, change state, store the answer). A prepared newInstance's usual case runs in
a :func:`db.lean_write_transaction` (no ORM session); what needs the session calls
:func:`db.session_required` first, and the transaction is then done again on the session.
Functions return the answer's bytes: for a repeat of an idempotent request that is the stored
first answer, byte for byte.

Idempotency is claimed with INSERT ... ON CONFLICT DO NOTHING on a UNIQUE key, never by
check-then-insert, so concurrent repeats on several workers or hosts cannot both create.
"""

import hashlib
import json
import os
import time
import uuid
from types import SimpleNamespace
from typing import NamedTuple

from sqlalchemy import select

from ..background import jobs
from ..extensions import db
from ..koo import codes, oddities
from ..koo.codes import KooError
from ..koo.envelope import envelope
from ..koo.fieldcrypto import encrypt_field
from ..koo.generations import Generation
from ..koo.signing import key_fingerprint
from ..storage import vault
from ..storage.models import Answer, Conflict, DetailsState, Event, Instance, InstanceState, Job, utcnow
from ..storage.statements import Write, bind_insert, bind_query, bind_write, insert_ignore, run_bound
from ..storage.transactions import session_required
from . import credentials, simulation

_INSTANCE_STATE = "SELECT state FROM instances WHERE instance_id = :instance_id"
_INSTANCE_OWNER = "SELECT key_fingerprint FROM instances WHERE instance_id = :instance_id"
_FIRST_ANSWER = 'SELECT instance_id, request_digest, body FROM answers WHERE "key" = :key'
# Every column, with its plain default: what a freshly inserted row holds.
_INSTANCE_BLANK = {
    c.name: (
        c.default.arg  # type: ignore[attr-defined]
        if c.default is not None and c.default.is_scalar
        else None
    )  # a scalar default is a ScalarElementColumnDefault, which has .arg
    for c in Instance.__table__.columns
}


# --- guards --------------------------------------------------------------------------------

# Made once: json.dumps with any argument builds a new encoder per call (every newInstance digests).
_DIGEST_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def request_digest(fields):
    """What makes two requests 'the same payload': the business fields, not businessId or signatures."""
    text = _DIGEST_ENCODER.encode(fields)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


ORDER_CLAIM = "order"  # a plan's claim of an order line's idempotency key
INSTANCE_CLAIM = "instance"  # ... and of its businessId as the new instance's id


def _answer_row(key, activity, digest, instance_id=None, body=None):
    """The claim of an idempotency key: ``body``, when the answer is known before the claim, is
    stored with it (one statement, not an INSERT and an UPDATE)."""
    return Write(
        Answer,
        dict(
            key=key, activity=activity, request_digest=digest, instance_id=instance_id, body=body, created_at=utcnow()
        ),
        claim=ORDER_CLAIM,
    )


def _claim(key, activity, digest, instance_id=None, claim=None):
    """Claim an idempotency key (``claim``: its :func:`_answer_row`, made before the lock). Returns
    None when claimed now, else the first answer's row.

    A repeat whose payload differs is still answered with the first answer (the marketplace must
    see one consistent truth) and recorded as a conflict for the merchant.
    """
    if run_bound(bind_write(claim or _answer_row(key, activity, digest, instance_id))) is not None:
        return None
    # Core statements on the transaction's own connection, so a repeat (the marketplace's retries
    # come in storms) is answered in a lean transaction as well.
    row = run_bound(bind_query(_FIRST_ANSWER, key=key))
    first = SimpleNamespace(instance_id=row[0], request_digest=row[1], body=None if row[2] is None else bytes(row[2]))
    if first.request_digest != digest:
        run_bound(
            bind_insert(
                Conflict,
                dict(
                    key=key,
                    activity=activity,
                    instance_id=first.instance_id,
                    first_digest=first.request_digest,
                    request_digest=digest,
                ),
            )
        )
    return first


def _store(key, body, instance_id=None):
    session_required()
    db.session.execute(Answer.__table__.update().where(Answer.key == key).values(body=body, instance_id=instance_id))
    return body


# Events after which a G2 order's details are fetched from the order-query API (§5.1).
FETCH_AFTER = {"created", "upgraded", "renewed", "trial_converted", "renewal_cancelled", "renewal_changed"}


def emit(kind, instance, **payload):
    """Record a lifecycle event and its jobs in the same transaction as the state change."""
    for write in _event_writes(kind, instance, payload)[1]:
        run_bound(bind_write(write))


def _event_writes(kind, instance, payload):
    """An instance's event and its jobs, as writes (run now by :func:`emit`, or later, under the
    lock, by a prepared newInstance): the order is fetched again after the events that change it."""
    more = []
    if kind in FETCH_AFTER and Generation(instance.generation).fetches_order_details:
        order = {
            "order_id": payload.get("order_id") or instance.order_id,
            "order_line_id": payload.get("order_line_id") or instance.order_line_id,
        }
        more.append(("fetch_order", order_query(order)))
    return _bind_event(kind, instance.instance_id, instance.order_id, payload, more)


def order_query(payload):
    """A fetch_order job's payload: a simulated request's order is marked, since the marketplace
    never saw it (domain.orderdetails asks at most once, and never counts it against the API)."""
    return {**payload, "simulated": True} if simulation.current() else payload


def record_event(kind, instance_id, order_id, payload, more_jobs=()):
    """Write an event (Kit syncs have no instance row) and its jobs; returns the event id."""
    event_id, writes = _bind_event(kind, instance_id, order_id, payload, more_jobs)
    for write in writes:
        run_bound(bind_write(write))
    return event_id


def time_ordered_id(now_ms=None):
    """A UUID in version 7's layout (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Why not uuid4: an event id is a key in two unique indexes (events, and the jobs keyed by the
    event), and random keys land on a different index page for every row. A merchant's tables only
    grow, and each new row then reads and writes a page that is rarely in cache; ids that grow with
    time are appended where the last one went (measured in bench/NOTES.md, "Time-ordered ids").
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    value = (ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | rand & (1 << 62) - 1
    return str(uuid.UUID(int=value))


def _bind_event(kind, instance_id, order_id, payload, more_jobs=()):
    """The event row and, in one statement, its jobs: the provisioning hook's, and ``more_jobs``
    ((kind, payload) pairs, keyed by the event too). Returns (event id, the two writes)."""
    event_id = time_ordered_id()
    event = Write(
        Event,
        dict(
            event_id=event_id,
            kind=kind,
            instance_id=instance_id or None,
            order_id=order_id or None,
            payload=payload or None,
        ),
    )
    queued = Write(
        Job,
        [jobs.job_row("provision", event_id, None, instance_id or None)]
        + [jobs.job_row(job_kind, event_id, job_payload, instance_id or None) for job_kind, job_payload in more_jobs],
        ignore=True,
    )
    return event_id, [event, queued]


# --- key ownership ----------------------------------------------------------------------------


class Owner(NamedTuple):
    """Who asks: the fingerprint of the key that verified the request. An instance another key
    created is, to this one, an instance that does not exist (docs/protocol.md, "Key ownership");
    a row from before keys owned rows (None) is everyone's, and ``shared`` (the setting
    KOO_SHARE_INSTANCES_ACROSS_KEYS, for a key rotation) makes every row everyone's."""

    fingerprint: str | None
    shared: bool = False

    def may_use(self, row_fingerprint):
        return self.shared or row_fingerprint is None or row_fingerprint == self.fingerprint


def owner(settings, kit=False):
    """The Owner of a request: ``settings`` as the request's Signed carries them (access_key, or
    kit_access_key for Kit, is the key that verified it)."""
    return Owner(
        key_fingerprint(settings.kit_access_key if kit else settings.access_key), settings.share_instances_across_keys
    )


def _owned_elsewhere(instance_id, asking):
    """Whether the instance exists and belongs to another key than ``asking`` (None: nobody asks,
    an internal caller). A Core read, so a lean transaction can run it."""
    if asking is None or asking.shared or not instance_id:
        return False
    row = run_bound(bind_query(_INSTANCE_OWNER, instance_id=instance_id))
    return row is not None and not asking.may_use(row[0])


def find_instance(instance_id, asking=None):
    """The instance, or None when there is none, or when it belongs to another key than ``asking``."""
    session_required()
    instance = db.session.execute(select(Instance).where(Instance.instance_id == instance_id)).scalar_one_or_none()
    if instance is not None and asking is not None and not asking.may_use(instance.key_fingerprint):
        return None
    return instance


def live_instance(instance_id, debug=False, asking=None):
    """The instance an activity acts on; unknown, another key's or released is 000003 for a real call.

    A debugging call (testFlag=1) on an instance that is not there gets None and a note: the
    Seller Console debugs with made-up and earlier rounds' ids, and a debugging flow must not
    fail on what it cannot have known (the activity then answers success and changes nothing).
    """
    instance = find_instance(instance_id, asking)
    if instance is not None and instance.state != InstanceState.RELEASED:
        return instance
    return _missing(instance_id, debug, released=instance is not None)


def _missing(instance_id, debug, released=False):
    """The answer to an instance that is not there: None and a note for a debugging call, else 000003."""
    if debug:
        if released:
            oddities.note(
                "debugging call: instance %(instance)s has been released; answered success, nothing changed",
                instance=instance_id,
            )
        else:
            oddities.note(
                "debugging call: instance %(instance)s does not exist; answered success, nothing changed",
                instance=instance_id,
            )
        return None
    missing = "has been released" if released else "does not exist"
    raise KooError(codes.INSTANCE_NOT_FOUND, f"instance {instance_id} {missing}")


# --- keys ------------------------------------------------------------------------------------


def idempotency_key(*parts):
    """An idempotency key: its parts joined with ``|``, each part's ``\\`` and ``|`` escaped with
    a ``\\``, so two different lists of parts never make one key (``a|b`` + ``c`` is not ``a`` +
    ``b|c``). A key whose parts hold neither character is the text it was before the escaping
    (docs/protocol.md, "Idempotency keys"): stored keys keep matching their retries."""
    return "|".join(str(part).replace("\\", "\\\\").replace("|", "\\|") for part in parts)


def order_key(order_id, order_line_id=None, product_id=None, pay_per_use=False):
    """The newInstance idempotency key (project rule): the order line; without one, the order,
    or (order, product) for pay-per-use, where one order carries several billing items."""
    if order_line_id:
        return idempotency_key("newInstance", order_id, order_line_id)
    if pay_per_use and product_id:
        return idempotency_key("newInstance", order_id, f"product:{product_id}")
    return idempotency_key("newInstance", order_id)


def own_order_key(key, fingerprint):
    """The order key of a key that finds the order ids taken by another key's instance (another
    product's order with the same ids, or the same product's from before a rotation without
    KOO_SHARE_INSTANCES_ACROSS_KEYS): an instance of its own, never the other key's."""
    return key + "|" + idempotency_key("key", fingerprint or "")


# --- activities ------------------------------------------------------------------------------


class NewInstancePlan(NamedTuple):
    """A newInstance decided before the write lock is taken: the row, the answer (None when
    rendering it stores something), and every write the usual case makes. The caller hands
    :attr:`writes` to storage (plans.run_plan), which runs them under the lock in one call (issue
    17: the lock is the one thing the workers queue for); when a claim is taken there (a repeated
    order, a reused businessId), :func:`new_instance` decides what then."""

    key: str
    digest: str
    attrs: dict
    instance: SimpleNamespace  # the row as inserted
    values: dict
    body: bytes | None
    claim: Write  # the order line's answer row, with the answer
    insert: Write  # the instance
    created: list  # its "created" event and that event's jobs

    @property
    def writes(self):
        return [self.claim, self.insert, *self.created]


def prepare_new_instance(settings, *, key, digest, business_id, attrs, render):
    """The plan for a newInstance (credentials made, password sealed, answer rendered, writes
    decided); ``render`` None when the answer may only be made once the order is claimed."""
    instance, values, body = _new_instance_row(settings, business_id, attrs, render)
    return NewInstancePlan(
        key,
        digest,
        attrs,
        instance,
        values,
        body,
        claim=_answer_row(key, "newInstance", digest, instance.instance_id, body),
        insert=Write(Instance, values, claim=INSTANCE_CLAIM),
        created=_event_writes("created", instance, {"details": instance.details_state})[1],
    )


def new_instance(
    settings, *, render, prepared=None, key=None, digest=None, business_id=None, attrs=None, render_writes=False
):
    """Create the instance for an order line once; every repeat gets the first answer.

    ``attrs`` are Instance columns from the request; ``render(instance)`` builds the answer
    bytes in the caller's generation's shape. instanceId = the first request's businessId.
    ``render_writes``: rendering stores something (a license document), so it may only run once
    the order is claimed; otherwise the answer is made before the claim and written with it.
    ``prepared``: the :class:`NewInstancePlan`, made before the lock; without one it is made here
    from ``key``, ``digest``, ``business_id`` and ``attrs``.
    """
    # The answer is written once, with its body, and the instance with INSERT ... ON CONFLICT: no
    # read first (profiled: each statement under the write lock costs more than the work done here).
    plan = prepared or prepare_new_instance(
        settings, key=key, digest=digest, business_id=business_id, attrs=attrs, render=None if render_writes else render
    )
    key, attrs = plan.key, plan.attrs
    stored = _claim(key, "newInstance", plan.digest, claim=plan.claim)
    if stored is not None and _owned_elsewhere(
        stored.instance_id, Owner(attrs.get("key_fingerprint"), settings.share_instances_across_keys)
    ):
        key = own_order_key(key, attrs.get("key_fingerprint"))
        stored = _claim(
            key,
            "newInstance",
            plan.digest,
            claim=_answer_row(key, "newInstance", plan.digest, plan.instance.instance_id, plan.body),
        )
    if stored is not None:
        if not (attrs.get("test_flag") and _released(stored.instance_id)):
            return stored.body
        # The Seller Console debugs every round with the same MOCK order ids: a new round must
        # get a live instance, not the last round's released one.
        oddities.note(
            "debugging round again: test instance %(instance)s was released; a new one made",
            instance=stored.instance_id,
        )
        _insert_instance(settings, plan, attrs)
        return _store(key, render(plan.instance), plan.instance.instance_id)
    if not _insert_instance(settings, plan, attrs) or plan.body is None:
        return _store(key, render(plan.instance), plan.instance.instance_id)  # a reused businessId got a new id
    return plan.body


def _new_instance_row(settings, instance_id, attrs, render):
    login = credentials.initial_credentials(settings, instance_id, attrs.get("order_id"))
    values = dict(
        instance_id=instance_id,
        state=InstanceState.ACTIVE,
        front_end_url=login["front_end_url"],
        admin_url=login["admin_url"],
        admin_user=login["admin_user"],
        memo=login["memo"],
        admin_password_sealed=vault.seal(settings.secret_key, login["admin_password"]),
        simulated=simulation.current(),
        **attrs,
    )
    instance = SimpleNamespace(**{**_INSTANCE_BLANK, **values})  # the row as inserted
    return instance, values, render(instance) if render else None


def _insert_instance(settings, plan, attrs):
    """Insert the planned instance and its event; True when its businessId was free. A reused
    businessId must not merge two orders: the instance then gets a new id (``plan.instance`` is
    updated) and its own event."""
    if run_bound(bind_write(plan.insert)) is not None:
        for write in plan.created:
            run_bound(bind_write(write))
        return True
    session_required()
    other, values, _ = _new_instance_row(settings, uuid.uuid4().hex, attrs, None)
    plan.instance.__dict__.update(other.__dict__)
    insert_ignore(Instance, **values)
    emit("created", plan.instance, details=plan.instance.details_state)
    return False


def _released(instance_id):
    """Whether a debugging repeat's instance is gone (a Core read: a lean transaction can run it)."""
    row = run_bound(bind_query(_INSTANCE_STATE, instance_id=instance_id)) if instance_id else None
    return row is not None and row[0] == InstanceState.RELEASED


# refreshInstance scenes and the event each one emits; an unknown scene renews, with a note.
SCENE_EVENTS = {
    "RENEWAL": "renewed",
    "TRIAL_TO_FORMAL": "trial_converted",
    "UNSUBSCRIBE_RENEWAL_PERIOD": "renewal_cancelled",
    "RENEWAL_CHANGE": "renewal_changed",
}  # a renewal with a new specification


def refresh_instance(
    *,
    instance_id,
    order_id,
    order_line_id,
    scene,
    expire_time,
    product_id=None,
    digest,
    render=None,
    debug=False,
    asking=None,
):
    """Renewal, trial-to-formal, a cancelled renewal period, or a renewal with a change of
    specification: the new expiry is the marketplace's (unreadable: kept, with a note).

    ``render(instance)`` builds the answer when it carries more than the envelope (a license).
    """
    if scene not in SCENE_EVENTS:
        oddities.note(
            "scene %(scene)s is not a documented refreshInstance scene; handled as a renewal", scene=scene[:40]
        )
    if _owned_elsewhere(instance_id, asking):  # before the claim: another key neither gets nor takes its answer
        _missing(instance_id, debug)
        return envelope()
    key = idempotency_key("refreshInstance", instance_id, order_id, order_line_id or "", scene)
    stored = _claim(key, "refreshInstance", digest, instance_id)
    if stored is not None:  # a retry gets the first answer, even once the instance is released
        return stored.body
    instance = live_instance(instance_id, debug)
    if instance is None:
        return _store(key, envelope(), instance_id)
    previous = instance.expire_time
    if expire_time is not None:
        instance.expire_time = expire_time.replace(tzinfo=None)
    else:
        oddities.note("expireTime missing or unreadable: the expiry is left as it was")
    if product_id:
        instance.product_id = product_id
    if scene == "TRIAL_TO_FORMAL":
        instance.trial = False
    if scene == "RENEWAL_CHANGE" and instance.details_state != DetailsState.INLINE:
        instance.details_state = DetailsState.PENDING  # the new specification comes with the order
    if instance.state == InstanceState.EXPIRED and scene != "UNSUBSCRIBE_RENEWAL_PERIOD":
        instance.state = InstanceState.ACTIVE
    emit(
        SCENE_EVENTS.get(scene, "renewed"),
        instance,
        order_id=order_id,
        order_line_id=order_line_id,
        scene=scene,
        expire_time=instance.expire_time.isoformat() if instance.expire_time else None,
        previous_expire_time=previous.isoformat() if previous else None,
    )
    return _store(key, render(instance) if render else envelope(), instance_id)


def once(*, key, activity, digest, instance_id, make):
    """Run ``make()`` (-> answer bytes) once per key; every repeat gets the first answer."""
    stored = _claim(key, activity, digest, instance_id)
    if stored is not None:
        return stored.body
    return _store(key, make(), instance_id)


def set_frozen(*, instance_id, frozen, debug=False, asking=None):
    """FREEZE / UNFREEZE; naturally idempotent, so a repeat changes nothing and emits nothing."""
    instance = live_instance(instance_id, debug, asking)
    if instance is None:
        return envelope()
    target = InstanceState.FROZEN if frozen else InstanceState.ACTIVE
    if frozen and instance.state != InstanceState.FROZEN or not frozen and instance.state == InstanceState.FROZEN:
        instance.state = target
        emit("frozen" if frozen else "unfrozen", instance)
    return envelope()


def expire_instance(*, instance_id, order_id=None, debug=False, asking=None):
    """G1 expiry: the instance stops serving until renewed; idempotent."""
    instance = live_instance(instance_id, debug, asking)
    if instance is None:
        return envelope()
    if instance.state == InstanceState.ACTIVE:
        instance.state = InstanceState.EXPIRED
        emit("expired", instance, order_id=order_id)
    return envelope()


def upgrade_instance(*, instance_id, order_id, order_line_id, digest, attrs=None, debug=False, asking=None):
    """An upgrade order was paid: same instanceId, new specification (fetched with the order)."""
    if _owned_elsewhere(instance_id, asking):  # before the claim, as in refresh_instance
        _missing(instance_id, debug)
        return envelope()
    key = idempotency_key("upgradeInstance", instance_id, order_id, order_line_id or "")
    stored = _claim(key, "upgradeInstance", digest, instance_id)
    if stored is not None:  # a retry gets the first answer, even once the instance is released
        return stored.body
    instance = live_instance(instance_id, debug)
    if instance is None:
        return _store(key, envelope(), instance_id)
    for name, value in (attrs or {}).items():
        setattr(instance, name, value)
    if instance.details_state != DetailsState.INLINE:
        instance.details_state = DetailsState.PENDING
    emit("upgraded", instance, order_id=order_id, order_line_id=order_line_id)
    return _store(key, envelope(), instance_id)


def release_instance(*, instance_id, order_id=None, debug=False, asking=None):
    """Release keeps the row (state RELEASED); releasing again succeeds, an unknown id is 000003."""
    instance = find_instance(instance_id, asking)
    if instance is None:
        if debug:
            oddities.note(
                "debugging call: instance %(instance)s does not exist; answered success", instance=instance_id
            )
            return envelope()
        raise KooError(codes.INSTANCE_NOT_FOUND, f"instance {instance_id} does not exist")
    if instance.state != InstanceState.RELEASED:
        instance.state = InstanceState.RELEASED
        instance.released_at = utcnow()
        emit("released", instance, order_id=order_id)
    return envelope()


def check_change(*, instance_id, product_info, decide, debug=False, asking=None):
    """changeInstanceCheck: may the instance change as the renewal asks? Allowed unless ``decide``
    (the provisioner's ``change_allowed``) says no; a refusal is 000100, the page's code for
    "no resources for this specification". Nothing is stored: the check changes nothing."""
    instance = live_instance(instance_id, debug, asking)
    if instance is None:
        return envelope()
    verdict = decide(instance, product_info)
    if verdict is True or verdict is None:
        return envelope()
    reason = verdict if isinstance(verdict, str) and verdict else "this change is not supported"
    raise KooError(codes.NO_RESOURCES, reason)


def order_notified(*, order_id, order_line_id=None, notice=None):
    """orderNotify: acknowledged now; the order is fetched and applied by a background job."""
    event_id = record_event("order_notified", None, order_id, {"order_line_id": order_line_id, **(notice or {})})
    jobs.enqueue("fetch_order", event_id, payload=order_query({"order_id": order_id, "order_line_id": order_line_id}))
    return envelope()


def find_instances(instance_ids, asking=None):
    """The instances among ``instance_ids`` that exist (and ``asking`` may use), in the order asked."""
    rows = db.session.execute(select(Instance).where(Instance.instance_id.in_(instance_ids))).scalars()
    found = {row.instance_id: row for row in rows if asking is None or asking.may_use(row.key_fingerprint)}
    return [found[i] for i in instance_ids if i in found]


# --- answer pieces shared by the generations ---------------------------------------------------


def app_info(settings, instance, encrypted=True):
    """The buyer's login for appInfo; userName/password AES-encrypted with the Key unless told not to."""
    user = instance.admin_user or ""
    password = (
        vault.unseal(settings.secret_key, instance.admin_password_sealed) if instance.admin_password_sealed else ""
    )
    if encrypted:
        user = encrypt_field(settings.access_key, user, settings.encrypt_type)
        password = encrypt_field(settings.access_key, password, settings.encrypt_type)
    return {
        "frontEndUrl": instance.front_end_url,
        "adminUrl": instance.admin_url,
        "userName": user,
        "password": password,
        "memo": instance.memo or None,
    }
