"""The License relay's routes (the package's docstring says what they answer): each reads the
request and calls the domain (licensecodes); a refusal is JSON naming it."""

from flask import current_app, g, request

from ... import inbound, metrics
from ...domain import licensecodes, simulation
from ...koo.times import iso_utc
from ...settings import settings_of
from ..views import BODY_REFUSALS, body_refused, no_store_json
from . import bp


def _body_refused(error):
    g.relay_outcome = "invalid_request"  # counted as the refusal it is
    return body_refused(error)


for refusal in BODY_REFUSALS:  # over LICENSE_RELAY_MAX_BODY_BYTES, unreadable, not a JSON object
    bp.register_error_handler(refusal, _body_refused)


def _verdict(verdict, **extra):
    body = {
        "license": verdict.license,
        "valid": verdict.valid,
        "status": verdict.status,
        "expireTime": iso_utc(verdict.expire_time),
        "verifiedAt": iso_utc(verdict.verified_at),
        "source": verdict.source,
        **extra,
    }
    if verdict.grace_until:
        body["graceUntil"] = iso_utc(verdict.grace_until)
    return body


@bp.before_request
def _simulated():
    """The simulator's license-relay suite marks its calls: the code's activation is then "simulated here"."""
    simulation.mark()


def _token():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@bp.errorhandler(licensecodes.RelayError)
def _refused(error):
    g.relay_outcome = error.error
    response = no_store_json({"error": error.error, "message": error.message}, error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="isvapp-relay"'
    return response


@bp.after_request
def _count(response):
    """Every call in the metrics: ok, the refusal's error name, or error (an answer 500)."""
    outcome = g.get("relay_outcome") or ("ok" if response.status_code < 400 else "error")
    metrics.relay_call((request.endpoint or "relay.unknown").rpartition(".")[2], outcome)
    return response


def _settings():
    return settings_of(current_app)


@bp.post("/activate")
def activate():
    body = inbound.json_object()
    verdict, token = licensecodes.activate(_settings(), body.get("license"), request.remote_addr or "")
    return no_store_json(_verdict(verdict, installationToken=token))


@bp.post("/verify")
def verify():
    body = inbound.json_object()
    verdict = licensecodes.verify(
        _settings(), body.get("license"), _token(), request.remote_addr or "", body.get("account"), body.get("ip")
    )
    return no_store_json(_verdict(verdict))


@bp.post("/usage")
def usage():
    body = inbound.json_object()
    entry = {k: body[k] for k in ("id", "active_num") if k in body}
    queued = licensecodes.report_usage(_settings(), body.get("license"), _token(), entry, request.remote_addr or "")
    return no_store_json({"license": body.get("license"), "accepted": True, "already": not queued}, 202)
