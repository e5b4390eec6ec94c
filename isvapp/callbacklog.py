"""The callback log: every marketplace request, its answer, and how long it took.

Rows are written after the answer has been sent (``call_on_close``), in their own transaction:
a locked database must not push the answer past the marketplace's 5 s budget, and a failure to
log must never change the answer. Secrets are redacted before anything is stored.
"""
import json
import logging
import time

from flask import current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from .db import write_transaction
from .extensions import db
from .koo import oddities
from .models import Callback

log = logging.getLogger("isvapp.callbacks")

REDACTED = "***"
SECRET_NAMES = {"password", "clientsecret", "authtoken", "signature", "x-sign", "secret", "accesskey",
                "sk", "client_secret", "admin_password"}
MARKETPLACE_PREFIXES = ("/produce", "/license")
TEXT_LIMIT = 64 * 1024


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


def _dumps(value):
    return json.dumps(value, ensure_ascii=False)[:TEXT_LIMIT]


def note(**fields):
    """Views add what they learnt about the request (activity, ids, generation) as they go."""
    g.setdefault("callback", {}).update({k: v for k, v in fields.items() if v is not None})


def start():
    g.callback_t0 = time.perf_counter()
    g.callback = {}
    g.callback_oddities = oddities.start()


def _request_text():
    parts = {}
    if request.args:
        parts["query"] = redact(request.args.to_dict())
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        body = b""
        parts["body"] = f"<{request.content_length} bytes, over the limit>"
    if body:
        parts["body"] = redact_body(body)
    return _dumps(parts)


def finish(response):
    """Collect the row now (request data is gone later) and write it once the answer is sent."""
    info = g.get("callback", {})
    body = response.get_data()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    row = dict(
        method=request.method, path=request.path[:255], generation=info.get("generation"),
        activity=(info.get("activity") or None) and str(info["activity"])[:32],
        order_id=info.get("order_id"), order_line_id=info.get("order_line_id"),
        instance_id=str(info.get("instance_id") or answer.get("instanceId") or "")[:255] or None,
        business_id=info.get("business_id"), tenant_id=info.get("tenant_id"),
        test_flag=info.get("test_flag"), note=(info.get("note") or "")[:255] or None,
        warnings="\n".join(g.get("callback_oddities") or ()) or None,
        key_fingerprint=info.get("key_fingerprint"),
        result_code=str(answer.get("resultCode", ""))[:8] or None,
        result_msg=str(answer.get("resultMsg", ""))[:255] or None,
        duration_ms=round((time.perf_counter() - g.get("callback_t0", time.perf_counter())) * 1000, 2),
        remote_addr=(request.remote_addr or "")[:64], request=_request_text(),
        response=_dumps(redact_body(body)) if body else "",
    )
    app = current_app._get_current_object()
    response.call_on_close(lambda: _write(app, row))
    return response


def _write(app, row):
    with app.app_context():
        try:
            with write_transaction(durable=False):  # a log row may be lost on a power cut; no fsync
                db.session.add(Callback(**row))
        except Exception:  # the answer is already sent; losing a log row must not break serving
            db.session.rollback()
            log.exception("could not store the callback log row for %s %s", row["method"], row["path"])
        finally:
            db.session.remove()


def init_app(app):
    @app.before_request
    def _start():
        if is_marketplace_path(request.path):
            start()

    @app.after_request
    def _finish(response):
        if is_marketplace_path(request.path):
            return finish(response)
        return response
