"""Answers: the envelope's exact bytes, signed, and the one place an error becomes an envelope.

Body-Sign is made with the key that verified the request (one of several configured), or, for
a request refused before that, with the first configured key of its kind (basic or Kit).
"""

import logging

from flask import Response, current_app, g, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .. import metrics
from ..background import failures
from ..domain import callbacklog
from ..koo import codes
from ..koo.codes import KooError
from ..koo.envelope import envelope
from ..koo.signing import body_sign
from ..settings import settings_of
from ..throttle import Throttle

log = logging.getLogger("isvapp.produce")

KIT_MARK = "/produceAPI/"


def is_kit_path(path):
    return KIT_MARK in path


def answer(body):
    """HTTP 200 with the envelope's exact bytes and a Body-Sign over them (required by G1, harmless for G2)."""
    response = Response(body, 200, content_type="application/json;charset=UTF-8")
    # Every answer, not only queryInstance's appInfo: none may be kept by a proxy or cache between
    # the marketplace and us, and a rule for all cannot miss the next answer that carries a secret.
    response.headers["Cache-Control"] = "no-store"
    key = g.get("koo_key")
    if key is None:
        settings = settings_of(current_app)
        key = settings.kit_access_key if is_kit_path(request.path) else settings.access_key
    if key:
        response.headers["Body-Sign"] = body_sign(key, body)
    return response


# At most one clock warning a minute per worker: anyone can send a stale timestamp, and the server
# log has no budget of its own (the callback log's budgets keep the rows).
CLOCK_WARNINGS = Throttle(60)


def error_answer(error):
    """The one place a refusal or failure becomes an envelope."""
    if isinstance(error, KooError):
        if error.code == codes.INVALID_PARAM and "window" in error.message and CLOCK_WARNINGS.due():
            log.warning(
                "refused %s %s: %s; check this server's clock (NTP) (said at most once a minute "
                "per worker: a stranger's stale timestamps must not fill the log)",
                request.method,
                request.path,
                error.message,
            )
        return answer(envelope(error.code, error.message))
    if isinstance(error, RequestEntityTooLarge):
        return answer(envelope(codes.INVALID_PARAM, f"request body is larger than {request.max_content_length} bytes"))
    if isinstance(error, HTTPException):
        what = {
            404: f"no marketplace interface at {request.path}",
            405: f"method {request.method} is not supported at {request.path}",
        }
        return answer(envelope(codes.INVALID_PARAM, what.get(error.code, error.description)))  # type: ignore[arg-type]
    if isinstance(error, OperationalError):
        log.error("database unavailable while answering %s %s: %s", request.method, request.path, error.orig)
        return answer(envelope(codes.INTERNAL_ERROR, "database busy or unavailable, please retry"))
    log.exception("unexpected error while answering %s %s", request.method, request.path)
    metrics.unexpected_error("request")  # its 000005 raises the internal_error alert (domain.callbacklog)
    return answer(envelope(codes.INTERNAL_ERROR))


def register_error_answers(app):
    """App-level, because a 405 raised by routing never reaches a blueprint's handlers."""

    @app.errorhandler(Exception)
    def _any_error(error):
        if callbacklog.is_marketplace_path(request.path):
            return error_answer(error)
        if isinstance(error, HTTPException):
            return error
        log.exception("unexpected error on %s %s", request.method, request.path)
        metrics.unexpected_error("request")
        failures.alert_request_error(request.method, request.path, error, g.get("request_id"))
        return Response("internal error", 500, content_type="text/plain")
