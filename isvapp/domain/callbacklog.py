"""The callback log: every marketplace request, its answer, and how long it took.

A request that changes something is logged inside its own write transaction, just before it
commits (log_in_transaction): one lock hand-over and one fsync per callback, and the row is as
durable as the order. Every other row (refusals, queries, resends) is written after the answer
has been sent (``call_on_close``), in a transaction of its own that does not wait for the disk:
a locked database must not push the answer past the marketplace's 5 s budget, and a failure to
log must never change the answer. Secrets are redacted before anything is stored.

The URL is public, so logging must cost a stranger's request little: a body is never parsed
here. A verified request's body is logged from what the pipeline already parsed; anything else
keeps a bounded prefix of its raw bytes (secret-named fields masked). Requests that were not
verified are logged with their metadata and small prefixes of query string and body, at most
CALLBACK_REFUSED_PER_MINUTE per client address (an IPv6 address counts as its /64) and worker,
checked in memory, and at most CALLBACK_REFUSED_GLOBAL_PER_MINUTE for all addresses, workers and
hosts together, claimed from a counter row (StatusItem) in the transaction that writes the log
row. The ones dropped are counted: per address, on the next row logged for that address; over
the global budget, in the counter row, then on the next row logged from any address.
"""

import ipaddress
import json
import logging
import re
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qsl

from flask import current_app, g, request
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.exceptions import RequestEntityTooLarge

from .. import metrics
from ..background import alerts
from ..extensions import db
from ..koo import oddities
from ..settings import settings_of
from ..storage.models import Callback, StatusItem, utcnow
from ..storage.statements import Write, bind_write, run_bound
from ..storage.transactions import is_sqlite, write_transaction
from ..texts import N_
from ..throttle import Throttle
from . import simulation

log = logging.getLogger("isvapp.callbacks")

REDACTED = "***"
SECRET_NAMES = {
    "password",
    "clientsecret",
    "authtoken",
    "signature",
    "x-sign",
    "secret",
    "accesskey",
    "sk",
    "client_secret",
    "admin_password",
}
MARKETPLACE_PREFIXES = ("/produce", "/license")
TEXT_LIMIT = 64 * 1024
VERIFIED_PREFIX = 16 * 1024  # raw bytes kept of a verified body that was not parsed (too large, or not JSON)
REFUSED_PREFIX = 512  # raw bytes kept of the body of a request that was not verified
REFUSED_QUERY_PREFIX = 256  # bytes kept of its query string
_SECRET_FIELD = re.compile(
    r'("(?:' + "|".join(map(re.escape, sorted(SECRET_NAMES))) + r')"\s*:\s*)"[^"]*"?', re.IGNORECASE
)


def is_marketplace_path(path):
    return any(path == p or path.startswith(p + "/") for p in MARKETPLACE_PREFIXES)


def redact(value):
    """A copy of a JSON-like value with every secret-named field's value replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_NAMES else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_body(raw):
    """A JSON body with secrets redacted; a body that is not JSON is kept only as its size."""
    try:
        return redact(json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        return f"<{len(raw)} bytes, not JSON>"


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # made once: json.dumps with an argument makes one per call


def _dumps(value):
    return _ENCODER.encode(value)[:TEXT_LIMIT]


# Every marketplace request passes through the functions below, several of them more than once: each
# takes flask's ``g`` and ``request`` from their proxies once (_get_current_object), since every
# attribute read through a werkzeug LocalProxy costs 1-2 us (profiled: 24 reads a newInstance here).


# The callback log's ``note``: one of these, filled in (English in the row; the pages read the
# values back out of it to show the note in their reader's language, display.note).
NOTES = {
    "signature_form": N_("signature matched the body's %(form)s form"),
    "x_sign_form": N_("x-sign matched the body's %(form)s form"),
    "g1_formula": N_("authToken formula: %(formula)s"),
}


def note(**fields):
    """Views add what they learnt about the request (activity, ids, generation) as they go."""
    g._get_current_object().setdefault("callback", {}).update({k: v for k, v in fields.items() if v is not None})


def start():
    ctx = g._get_current_object()
    ctx.callback_t0 = time.perf_counter()
    ctx.callback = {}
    ctx.callback_oddities = oddities.start()


def raw_prefix(limit):
    """At most ``limit`` bytes of the body, as text with secret-named fields masked; never the whole
    of a large body: what was read already is sliced, what was not is read only that far."""
    data = getattr(request, "_cached_data", None)
    try:
        head = data[:limit] if data is not None else request.stream.read(limit)
    except RequestEntityTooLarge:
        return f"<{request.content_length} bytes, over the limit>"
    if not head:
        return None
    size = request.content_length or len(head)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + '"' + REDACTED + '"', head.decode("utf-8", "replace"))
    return text if size <= len(head) else f"<{size} bytes, the first {len(head)}:> {text}"


def _refused_query(parts):
    """The first REFUSED_QUERY_PREFIX bytes of the query string, parsed like request.args (first
    value of each name, secrets masked); a longer one is cut there, and the cut is noted."""
    raw = request.query_string
    head = raw[:REFUSED_QUERY_PREFIX]
    query = {}
    for name, value in parse_qsl(head.decode("utf-8", "replace"), keep_blank_values=True):
        query.setdefault(name, value)
    parts["query"] = redact(query)
    if len(raw) > len(head):
        parts["query_cut"] = f"<{len(raw)} bytes, the first {len(head)}>"


def _request_text(verified):
    parts = {}
    if not verified:
        if request.query_string:
            _refused_query(parts)
    elif args := request.args:
        parts["query"] = redact(args.to_dict())
    payload = g.get("callback_payload")
    if payload is not None:
        parts["body"] = redact(payload)
    else:
        body = raw_prefix(VERIFIED_PREFIX if verified else REFUSED_PREFIX)
        if body is not None:
            parts["body"] = body
    return _dumps(parts)


def address_key(addr):
    """The per-address budget's key: the address, but an IPv6 address counts as its /64 (whoever
    holds one address of a /64 usually holds them all) and an IPv4-mapped one as its IPv4."""
    if ":" not in addr:
        return addr
    try:
        ip = ipaddress.IPv6Address(addr)
    except ValueError:
        return addr
    if ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


class RefusedBudget:
    """Per client address: how many refused requests this worker logged in the current minute,
    and how many it dropped since the last row it wrote for that address."""

    def __init__(self, per_minute, max_addresses=10_000):
        self.per_minute, self.max_addresses = per_minute, max_addresses
        self.lock, self.seen = threading.Lock(), {}  # addr -> [minute, logged, dropped]

    def admit(self, addr, now=None):
        """(log this one?, how many were dropped before it)."""
        minute = int((now or time.time()) // 60)
        with self.lock:
            entry = self.seen.get(addr)
            if entry is None:
                if len(self.seen) >= self.max_addresses:
                    self.seen = {a: e for a, e in self.seen.items() if e[0] == minute and e[2]}
                entry = self.seen[addr] = [minute, 0, 0]
            if entry[0] != minute:
                entry[0], entry[1] = minute, 0
            if entry[1] >= self.per_minute:
                entry[2] += 1
                return False, 0
            entry[1] += 1
            dropped, entry[2] = entry[2], 0
            return True, dropped


GLOBAL_BUDGET_ITEM = "callback_refused_budget"
_STATUS = StatusItem.__table__
_SELECT_BUDGET = select(_STATUS.c.value).where(_STATUS.c.name == GLOBAL_BUDGET_ITEM).with_for_update()
_UPDATE_BUDGET = (
    _STATUS.update()
    .where(_STATUS.c.name == GLOBAL_BUDGET_ITEM)
    .values(value=bindparam("value"), updated_at=bindparam("updated_at"))
)


class GlobalRefusedBudget:
    """All addresses together, across workers and hosts: one StatusItem row,
    {"minute": ..., "logged": rows logged in that minute, "dropped": requests not logged since the
    last row that reported them}. Claimed inside the transaction that writes the log row (after the
    answer is sent): a primary-key read locking the row, and its update."""

    def __init__(self, per_minute):
        self.per_minute = per_minute

    def claim(self, also_dropped=0, now=None):
        """In a write transaction: (log this one?, how many were dropped before it). A refusal carries
        the ones its address had dropped (``also_dropped``) into the count."""
        minute = int((now or time.time()) // 60)
        value = db.session.execute(_SELECT_BUDGET).scalar()
        if value is None:
            dialect = sqlite if is_sqlite() else postgresql
            db.session.execute(
                dialect.insert(_STATUS).on_conflict_do_nothing(),
                {"name": GLOBAL_BUDGET_ITEM, "value": {}, "updated_at": utcnow()},
            )
            value = db.session.execute(_SELECT_BUDGET).scalar() or {}
        logged = value.get("logged", 0) if value.get("minute") == minute else 0
        dropped = value.get("dropped", 0)
        if logged >= self.per_minute:
            admitted, value = False, {"minute": minute, "logged": logged, "dropped": dropped + 1 + also_dropped}
            dropped = 0
        else:
            admitted, value = True, {"minute": minute, "logged": logged + 1, "dropped": 0}
        db.session.execute(_UPDATE_BUDGET, {"value": value, "updated_at": utcnow()})
        return admitted, dropped


def interface_of(path):
    """The marketplace interface a path belongs to, for the metrics: kit, license or produce."""
    if "/produceAPI/" in path:
        return "kit"
    return "license" if path.startswith("/license") else "produce"


_RESULT_CODE = re.compile(rb'\{"resultCode":"([0-9A-Za-z]{1,8})"')


def _count(ctx, info, response):
    """The request in the metrics (isvapp/metrics.py): its interface, activity, result code and
    time to answer. The code is read from the envelope's first bytes (resultCode comes first)."""
    found = _RESULT_CODE.match(response.get_data())
    metrics.callback(
        interface_of(request.path),
        info.get("activity") or "unknown",
        found.group(1).decode() if found else "none",
        time.perf_counter() - ctx.get("callback_t0", time.perf_counter()),
    )


def finish(response):
    """Collect the row now (request data is gone later) and write it once the answer is sent."""
    ctx = g._get_current_object()
    info = ctx.get("callback", {})
    _count(ctx, info, response)
    verified = info.get("key_fingerprint") is not None
    dropped = 0
    if not verified:
        budget = current_app.extensions["isvapp_refused_budget"]
        admitted, dropped = budget.admit(address_key((request.remote_addr or "")[:64]))
        if not admitted:
            return response
    if ctx.get("callback_logged"):  # written with the request's own transaction (log_in_transaction)
        if HEARTBEAT_CHECKS.due():
            app = current_app._get_current_object()  # type: ignore[attr-defined]  # a proxy
            response.call_on_close(lambda: _check_heartbeat(app))
        return response
    if dropped:
        info["note"] = (
            f"{dropped} earlier refused requests from this address were not logged "
            f"(over {budget.per_minute} a minute); " + (info.get("note") or "")
        )
    row = row_for(response.get_data(), _request_text(verified))
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a proxy
    refused = None if verified else dropped  # for a refusal: what its address had dropped before it
    response.call_on_close(lambda: _write(app, row, refused))
    return response


def request_text():
    """The request's logged text, made before the write lock is taken (it does not depend on the answer)."""
    return _request_text(verified=True)


def row_write(body, text):
    """The log row of this answer, as a write made before the lock; its duration is brought up
    to date as it is written (in the request's own transaction: see :func:`log_in_transaction`)."""
    return Write(Callback, row_for(body, text), late=_now_done)


def _now_done(row):
    row["duration_ms"] = _elapsed_ms()


def logged():
    """The request's row was written with its own transaction (by a plan, or log_in_transaction)."""
    g.callback_logged = True


def log_in_transaction(body, text, write=None):
    """Write the row inside the request's own write transaction, just before it commits: one lock
    hand-over per callback instead of two, and the row is as durable as the order it records.
    ``write``: its :func:`row_write`, made before the lock was taken (the answer was known by then).
    """
    run_bound(bind_write(write or row_write(body, text)))
    logged()


def _elapsed_ms():
    now = time.perf_counter()
    return round((now - g._get_current_object().get("callback_t0", now)) * 1000, 2)


def _nul_free(row):
    """PostgreSQL text cannot hold NUL: one sent in a raw body, a resultMsg or a warning is stored as
    U+FFFD (one character for one, so no cut moves). A parsed body is JSON text, where it is ``\\u0000``."""
    for name, value in row.items():
        if isinstance(value, str) and "\x00" in value:
            row[name] = value.replace("\x00", "\ufffd")
    return row


def row_for(body, text):
    ctx = g._get_current_object()
    req = request._get_current_object()  # type: ignore[attr-defined]  # a proxy, typed as the Request
    info = ctx.get("callback", {})
    try:
        answer = json.loads(body) if body else {}
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        response, answer = redact_body(body), {}  # not an envelope: kept as its size
    else:
        response = redact(answer)
    return _nul_free(
        dict(
            received_at=utcnow(),
            method=req.method,
            path=req.path[:255],
            generation=info.get("generation"),
            activity=(info.get("activity") or None) and str(info["activity"])[:32],
            order_id=info.get("order_id"),
            order_line_id=info.get("order_line_id"),
            instance_id=str(info.get("instance_id") or answer.get("instanceId") or "")[:255] or None,
            business_id=info.get("business_id"),
            tenant_id=info.get("tenant_id"),
            test_flag=info.get("test_flag"),
            simulated=simulation.current(),
            note=(info.get("note") or "")[:255] or None,
            warnings=oddities.english(ctx.get("callback_oddities") or ()),
            key_fingerprint=info.get("key_fingerprint"),
            clock_skew_ms=info.get("clock_skew_ms"),
            https=req.is_secure,
            result_code=str(answer.get("resultCode", ""))[:8] or None,
            result_msg=str(answer.get("resultMsg", ""))[:255] or None,
            duration_ms=_elapsed_ms(),
            remote_addr=(req.remote_addr or "")[:64],
            request_id=ctx.get("request_id"),
            request=text,
            response=_dumps(response) if body else "",
            # Only when there are notes: a JSON column given None stores the JSON text null.
            **({"warning_notes": [n.as_json() for n in notes]} if (notes := ctx.get("callback_oddities")) else {}),
        )
    )


SIGNATURE_FAILURES_ALERT = 10  # refused signatures within SIGNATURE_FAILURES_MIN minutes: a wrong key, or an attack
SIGNATURE_FAILURES_MIN = 10
# The worker check after answers, at most once a minute per process (each web process's watchdog
# also checks every ALERT_WATCH_EVERY_S: this one still runs where the watch is off).
HEARTBEAT_CHECKS = Throttle(60)


def _write(app, row, refused=None):
    """Store the row; a refusal (``refused``: what its address had dropped) only within the global budget."""
    with app.app_context():
        admitted = True
        try:
            with write_transaction(durable=False):  # a log row may be lost on a power cut; no fsync
                if refused is not None:
                    budget = app.extensions["isvapp_refused_global_budget"]
                    admitted, dropped = budget.claim(refused)
                    if dropped:
                        row["note"] = (
                            f"{dropped} earlier refused requests (all addresses) were not logged "
                            f"(over {budget.per_minute} a minute); " + (row["note"] or "")
                        )[:255]
                if admitted:
                    db.session.add(Callback(**row))
        except Exception:  # the answer is already sent; losing a log row must not break serving
            db.session.rollback()
            log.exception("could not store the callback log row for %s %s", row["method"], row["path"])
        try:
            if not admitted:  # counted, not stored: the rows that were stored raise the alerts
                if HEARTBEAT_CHECKS.due():
                    alerts.check_worker_heartbeat()
                return
            _alerts_after(row)
        except Exception:  # an alert that cannot be raised is logged; serving goes on
            db.session.rollback()
            log.exception("could not check alerts after %s %s", row["method"], row["path"])
        finally:
            db.session.remove()


def _alerts_after(row):
    """What in this answer needs the merchant, raised once the answer is out (alerts never block it)."""
    code = row["result_code"]
    if code == "000005":
        alerts.raise_alert_alone(
            "internal_error",
            N_("isvapp answered 000005 to the marketplace"),
            N_("%(request)s: %(answer)s. The marketplace retries; see the callback log and the server log."),
            params={
                "request": f"{row['method']} {row['path']} {row['activity'] or ''}".strip(),
                "answer": row["result_msg"] or "",
            },
        )
    elif code == "000001":
        since = utcnow() - timedelta(minutes=SIGNATURE_FAILURES_MIN)
        failures = db.session.execute(
            select(func.count())
            .select_from(Callback)
            .where(Callback.received_at >= since, Callback.result_code == "000001")
        ).scalar_one()
        db.session.rollback()
        if failures >= SIGNATURE_FAILURES_ALERT:
            alerts.raise_alert_alone(
                "signature_failures",
                N_("Signature failures are repeating"),
                N_(
                    "%(failures)s requests failed verification in %(minutes)s minutes (the last from %(address)s): "
                    "the Key in isvapp may not match the Seller Console's, or someone is probing the production URL."
                ),
                params={"failures": failures, "minutes": SIGNATURE_FAILURES_MIN, "address": row["remote_addr"]},
            )
    if HEARTBEAT_CHECKS.due():
        alerts.check_worker_heartbeat()


def _check_heartbeat(app):
    """After an answer whose log row went with its transaction: the worker check, when due."""
    with app.app_context():
        try:
            alerts.check_worker_heartbeat()
        finally:
            db.session.remove()


def init_app(app):
    callbacks = settings_of(app).callbacks
    app.extensions["isvapp_refused_budget"] = RefusedBudget(callbacks.refused_per_minute)
    app.extensions["isvapp_refused_global_budget"] = GlobalRefusedBudget(callbacks.refused_global_per_minute)

    @app.before_request
    def _start():
        if is_marketplace_path(request.path):
            start()

    @app.after_request
    def _finish(response):
        if is_marketplace_path(request.path):
            return finish(response)
        return response
