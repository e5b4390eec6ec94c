"""The way every marketplace request travels once its sender is known (docs/protocol.md):

    verified (g1, g2, kit modules) -> replay store -> activity -> schema -> one transaction -> answer

Each generation's module verifies its own way and hands over a :class:`Signed`; from there one
pipeline serves them all, so G1, G2, License and Kit meet in the same lifecycle calls, the same
replay rule and the same answers.
"""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from flask import current_app, g, request
from marshmallow import Schema, ValidationError

from ..domain import callbacklog, replays, simulation
from ..koo import codes, oddities, schemas, strictjson
from ..koo.codes import KooError
from ..koo.generations import ReplayScope
from ..koo.signing import key_fingerprint
from ..koo.times import read_time
from ..settings import Settings, settings_of
from ..storage import plans
from ..storage.statements import Write
from ..storage.transactions import SessionRequired, lean_available, lean_write_transaction, write_transaction
from .answers import answer


class Activity(NamedTuple):
    schema: type[Schema]
    handler: Callable  # (settings, data) -> answer bytes
    writes: bool = True  # False: a query or check, answered afresh; only its identity is claimed
    # (settings, data) -> what the handler can use from data[PREPARED]: work done before the write
    # lock is taken, so the lock is held for the statements only. Its ``body`` is the answer the
    # handler will give in the usual case (None: not known before the lock).
    prepare: Callable | None = None


PREPARED = "_prepared"


@dataclass(frozen=True)
class Signed:
    """What verification established: who sent the request, and its identity in the replay store."""

    settings: Settings  # the settings, with access_key (or kit_access_key) the key that verified it
    scope: ReplayScope
    token: str
    nonce: str  # G1: the authToken, its only unique part
    fingerprint: str


def current_settings():
    return settings_of(current_app)


def now_ms():
    return int(time.time() * 1000)


def require_keys(keys, name):
    if not keys:
        current_app.logger.error("%s is not configured: refusing marketplace requests", name)
        raise KooError(codes.INTERNAL_ERROR, f"{name} is not configured on this server")
    return keys


def signed_by(key, sent_ms, scope, **identity):
    """The Signed for a request ``key`` verified: answers are signed with it, appInfo encrypted with it.

    ``sent_ms`` is the request's own timestamp: the difference to this server's clock is logged,
    so the go-live page can show a drifting clock before the window starts refusing requests.
    """
    g.koo_key = key
    simulation.mark()  # only now: a mark on a request that did not verify counts for nothing
    skew = int(now_ms() - sent_ms)  # a timestamp years off (a widened G1 window) still fits the column
    callbacklog.note(key_fingerprint=key_fingerprint(key), clock_skew_ms=max(-schemas.INT32, min(schemas.INT32, skew)))
    return Signed(settings=_settings_for(current_settings(), key, scope.is_kit), scope=scope, **identity)


@functools.lru_cache(maxsize=64)
def _settings_for(settings, key, kit):
    """The settings as seen by a request one of the keys verified (few keys: made once each)."""
    return replace(settings, kit_access_key=key) if kit else replace(settings, access_key=key)


def g1_sent_ms(text):
    """A verified G1 timeStamp as Unix ms (the verifier already read it, so it is readable)."""
    stamp, _ = read_time(str(text))
    return stamp.timestamp() * 1000 if stamp else now_ms()


def parse_json_object(raw):
    """The body as a JSON object, whatever its Content-Type says (the signature already proved it)."""
    try:
        payload = strictjson.loads_object(raw)
    except strictjson.RepeatedKey as error:
        raise KooError(codes.INVALID_PARAM, f"request body {error}: a signed body must name each key once") from None
    except strictjson.Malformed as error:
        raise KooError(codes.INVALID_PARAM, f"request body {error}") from None
    g.callback_payload = payload  # the callback log takes it from here rather than parse it again
    if request.mimetype != "application/json":
        oddities.note(
            "Content-Type is %(type)s, not application/json; read as JSON", type=request.mimetype or "missing"
        )
    return payload


_schemas = {}


def load(schema, payload):
    """Validate with one shared instance per schema (building one copies its fields: profiled)."""
    instance = _schemas.get(schema) or _schemas.setdefault(schema, schema())
    try:
        return instance.load(payload)
    except ValidationError as error:
        raise KooError(codes.INVALID_PARAM, schemas.validation_message(error)) from None


def select_activity(table, payload):
    name = payload.get("activity")
    if not name or not isinstance(name, str):
        raise KooError(codes.INVALID_PARAM, "activity: Missing data for required field.")
    spec = table.get(name)
    if spec is None:
        raise KooError(codes.INVALID_PARAM, f"activity: {name[:40]} is not supported here")
    callbacklog.note(activity=name)
    return spec


def note_ids(data):
    """Put what identifies the request into the callback log row."""
    instance_id = data.get("instanceId")
    callbacklog.note(
        order_id=data.get("orderId"),
        order_line_id=data.get("orderLineId"),
        business_id=data.get("businessId"),
        test_flag=data.get("testFlag"),
        tenant_id=data.get("tenantId"),
        instance_id=",".join(instance_id) if isinstance(instance_id, list) else instance_id,
    )


class _Raced(Exception):
    """Another worker stored the same signed request first: this transaction must not commit."""


class Early(NamedTuple):
    """What a prepared activity's usual answer lets be made before the write lock: the answer,
    the request's replay claim with it, and its callback log row."""

    body: bytes
    replay: Write
    log: Write


def perform(spec, data, signed):
    """One write transaction: the activity's effects, the request's claim in the replay store with
    its answer, and its callback log row; the lock is taken once per callback.

    The replay store is claimed last, with the answer: an identical resend finds it taken, the
    transaction rolls back (whatever the activity did is undone) and the stored answer is sent;
    a different request with the same identity is refused there (000001). Nothing is read first,
    so the usual case, a request never seen, costs no extra statement.

    When the activity prepared its answer before the lock (a new order), its plan, the replay
    claim and the log row are one list of writes, which storage runs in one call (lean on
    SQLite). When a claim in it is taken (a repeated order, a reused businessId, a resend), the
    handler decides what then, in a transaction of its own: lean when it can, else on the session.
    """
    text = callbacklog.request_text()
    early = None
    if spec.prepare is not None:
        plan = spec.prepare(signed.settings, data)
        data = {**data, PREPARED: plan}
        if plan.body is not None:  # the usual answer is known: its replay claim and log row too
            early = Early(plan.body, replays.claim_write(signed, plan.body), callbacklog.row_write(plan.body, text))
            if plans.run_plan([*plan.writes, early.replay, early.log]) is None:
                callbacklog.logged()
                return plan.body
    try:
        if early is not None and lean_available():
            try:
                with lean_write_transaction():
                    return _perform_in_transaction(spec, data, signed, text, early)
            except SessionRequired:  # an unusual case (a repeated order...): again, on the session
                pass
        with write_transaction():
            return _perform_in_transaction(spec, data, signed, text, early)
    except _Raced:
        stored = replays.stored_answer(signed)
        callbacklog.note(note="identical resend: the first answer, again")
        return stored


def _perform_in_transaction(spec, data, signed, text, early):
    body = spec.handler(signed.settings, data)
    usual = early is not None and body is early.body
    if not replays.record(signed, body, early.replay if usual else None):
        raise _Raced()
    callbacklog.log_in_transaction(body, text, early.log if usual else None)
    return body


def perform_read_only(spec, data, signed):
    """A query or check: answered afresh, in a transaction that only claims the request's identity
    (sealed answer and all), so that its nonce cannot serve a different request later. A claim is
    not an order: it is not fsynced (a power cut may forget it, never an acknowledged change)."""
    try:
        with write_transaction(durable=False):
            if replays.stored_answer(signed) is not None:  # a replay raises 000001 here, before any answer
                raise _Raced()
            body = spec.handler(signed.settings, data)
            if not replays.record(signed, replays.sealed(signed, body)):
                raise _Raced()
        return body
    except _Raced:
        stored = replays.stored_answer(signed)
        callbacklog.note(note="identical resend: the first answer, again")
        return stored


def serve(table, payload, signed):
    """The part every route shares once the request is verified."""
    spec = select_activity(table, payload)
    # Known before the schema may refuse the rest: a refused debugging call still counts as one.
    callbacklog.note(test_flag=schemas.read_flag(payload.get("testFlag")))
    data = load(spec.schema, payload)
    note_ids(data)
    if not spec.writes:
        return answer(perform_read_only(spec, data, signed))
    return answer(perform(spec, data, signed))
