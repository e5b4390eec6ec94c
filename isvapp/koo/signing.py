"""Request verification and answer signing for every generation (reference §3.2-§3.6, §3.8).

Pure functions over strings and bytes, in the style of Stripe's webhook verifier: compute the
expected value, compare in constant time, raise one exception type (KooError) with the reason.
"""
import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timezone

from .codes import AUTH_FAILED, INVALID_PARAM, KooError


def _hmac_sha256(key, msg):
    if isinstance(key, str):
        key = key.encode("utf-8")
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).digest()


def _same(expected, received):
    """Constant-time comparison of two ASCII strings."""
    return hmac.compare_digest(expected.encode("ascii"), received.encode("ascii", "replace"))


# --- G1: authToken over sorted query parameters (§3.2) ---------------------------------------

def g1_string_to_sign(params):
    """``k=v&...`` over every parameter but authToken, sorted by name in code-unit order."""
    items = sorted((k, v) for k, v in params.items() if k != "authToken")
    return "&".join(f"{k}={v}" for k, v in items)


def g1_auth_token(key, params):
    """Base64(HMAC-SHA256(key + timeStamp, sorted params)); params are already URL-decoded."""
    digest = _hmac_sha256(key + params.get("timeStamp", ""), g1_string_to_sign(params))
    return base64.b64encode(digest).decode("ascii")


def verify_g1_request(key, params):
    """Check a G1 GET request's authToken.

    Huawei's FAQ: a '+' in the token sometimes arrives as a space when a proxy decodes twice;
    mapping spaces back to '+' before comparing is the documented remedy. The same pitfall in a
    parameter value cannot be undone (a real space is legitimate), so only the token is mended.
    """
    token = params.get("authToken")
    if not token:
        raise KooError(AUTH_FAILED, "authToken is missing")
    if not params.get("timeStamp"):
        raise KooError(INVALID_PARAM, "timeStamp is missing")
    expected = g1_auth_token(key, params)
    if not _same(expected, token.replace(" ", "+")):
        raise KooError(AUTH_FAILED, "authToken does not match")


def body_sign(key, body):
    """The Body-Sign header value for the exact bytes sent (§3.6); quotes required by the marketplace."""
    signature = base64.b64encode(_hmac_sha256(key, body)).decode("ascii")
    return f'sign_type="HMAC-SHA256", signature="{signature}"'


def parse_body_sign(header):
    """The signature inside a Body-Sign header, or None when the header is malformed."""
    if not header or 'sign_type="HMAC-SHA256"' not in header:
        return None
    _, _, rest = header.partition("signature=")
    rest = rest.strip()
    if len(rest) < 2 or rest[0] != '"' or not rest.endswith('"'):
        return None
    return rest[1:-1] or None


def verify_body_sign(key, body, header):
    """True when the header signs exactly these bytes; the marketplace's own check, for tests and the simulator."""
    received = parse_body_sign(header)
    return received is not None and _same(base64.b64encode(_hmac_sha256(key, body)).decode("ascii"), received)


# --- G2: canonical payload, signature, x-sign (§3.4, §3.5) -----------------------------------

def canonical_payload(obj):
    """Top-level keys sorted ascending, top-level nulls dropped, compact, raw UTF-8 (Jackson's output)."""
    items = {k: obj[k] for k in sorted(obj) if obj[k] is not None}
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


def g2_signature(key, nonce, timestamp, payload):
    """hex(HMAC(key, key + nonce + timestamp + lowerhex(HMAC(key, payload))))."""
    body_digest = _hmac_sha256(key, payload).hex()
    return _hmac_sha256(key, key + nonce + str(timestamp) + body_digest).hex()


def kit_signature(key, nonce, timestamp, payload):
    """hex(HMAC(key, key + nonce + timestamp + payload)): the Kit variant concatenates the body as is."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _hmac_sha256(key, (key + nonce + str(timestamp)).encode("utf-8") + payload).hex()


def check_timestamp(timestamp, now_ms, window_s):
    """Unix milliseconds within the window, in both directions; returns the skew in ms."""
    if not timestamp:
        raise KooError(INVALID_PARAM, "timestamp is missing")
    if not timestamp.isdigit() or len(timestamp) > 15:
        raise KooError(INVALID_PARAM, "timestamp must be Unix milliseconds")
    skew = now_ms - int(timestamp)
    if abs(skew) > window_s * 1000:
        raise KooError(INVALID_PARAM, f"timestamp outside the {window_s} s window (clock off by {skew / 1000:.0f} s)")
    return skew


def _payload_candidates(raw_body):
    """The raw body first, then its canonical form when it parses as a JSON object."""
    yield raw_body
    try:
        obj = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        return
    if isinstance(obj, dict):
        canonical = canonical_payload(obj).encode("utf-8")
        if canonical != raw_body:
            yield canonical


def _verify_signed(signer, key, raw_body, signature, timestamp, nonce, now_ms, window_s, names):
    sig_name, ts_name, nonce_name = names
    if not signature:
        raise KooError(AUTH_FAILED, f"{sig_name} is missing")
    if not timestamp:
        raise KooError(INVALID_PARAM, f"{ts_name} is missing")
    if not nonce:
        raise KooError(INVALID_PARAM, f"{nonce_name} is missing")
    if len(nonce) > 128:
        raise KooError(INVALID_PARAM, f"{nonce_name} is too long")
    check_timestamp(timestamp, now_ms, window_s)
    received = signature.lower()
    for payload in _payload_candidates(raw_body):
        if _same(signer(key, nonce, timestamp, payload), received):
            return
    raise KooError(AUTH_FAILED, f"{sig_name} does not match")


def verify_g2_request(key, raw_body, signature, timestamp, nonce, now_ms, window_s=60):
    """Check the signature/timestamp/nonce query parameters of a G2 POST (§3.4).

    The nonce is only checked for presence here; whether it was seen before is a question for
    the database, answered in the same transaction as the request's effects.
    """
    _verify_signed(g2_signature, key, raw_body, signature, timestamp, nonce, now_ms, window_s,
                   ("signature", "timestamp", "nonce"))


def verify_kit_request(key, raw_body, signature, timestamp, nonce, now_ms, window_s=60):
    """Check the x-sign/x-timestamp/x-nonce headers of a G2 Kit POST (§3.5)."""
    _verify_signed(kit_signature, key, raw_body, signature, timestamp, nonce, now_ms, window_s,
                   ("x-sign", "x-timestamp", "x-nonce"))


# --- G1 Kit: authToken request header, formula not documented (§3.3) ---------------------------

def _g1_field_text(value):
    """How a top-level JSON value reads in ``k=v`` (Java's String.valueOf for the scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def g1_kit_tokens(key, raw_body, payload):
    """Both candidate authTokens for a G1 Kit POST, by formula name (project rule: accept either).

    body-hmac:     Base64(HMAC-SHA256(key + timeStamp, raw body)), timeStamp from the body;
    sorted-fields: the G1 GET algorithm over the body's top-level fields.
    """
    stamp = str(payload.get("timeStamp", ""))
    fields = {k: _g1_field_text(v) for k, v in payload.items() if v is not None and k != "authToken"}
    return {"body-hmac": base64.b64encode(_hmac_sha256(key + stamp, raw_body)).decode("ascii"),
            "sorted-fields": g1_auth_token(key, fields)}


def verify_g1_kit_request(key, raw_body, payload, token):
    """Check a G1 Kit authToken header; returns the name of the formula that matched."""
    if not token:
        raise KooError(AUTH_FAILED, "authToken header is missing")
    token = token.strip().replace(" ", "+")
    for formula, expected in g1_kit_tokens(key, raw_body, payload).items():
        if _same(expected, token):
            return formula
    raise KooError(AUTH_FAILED, "authToken does not match")


# --- the marketplace's side: signed requests (used by the simulator and the tests) ------------

def new_nonce():
    return secrets.token_hex(16)


def g2_signed_request(key, body, timestamp=None, nonce=None):
    """(raw body, query params) for a G2 basic POST; the body is sent already canonical."""
    raw = canonical_payload(body).encode("utf-8") if isinstance(body, dict) else body
    timestamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
    nonce = nonce or new_nonce()
    return raw, {"signature": g2_signature(key, nonce, timestamp, raw), "timestamp": timestamp, "nonce": nonce}


def kit_signed_request(key, body, timestamp=None, nonce=None):
    """(raw body, headers) for a G2 Kit POST."""
    raw = canonical_payload(body).encode("utf-8") if isinstance(body, dict) else body
    timestamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
    nonce = nonce or new_nonce()
    return raw, {"x-sign": kit_signature(key, nonce, timestamp, raw), "x-timestamp": timestamp,
                 "x-nonce": nonce, "Content-Type": "application/json"}


def g1_time(now=None):
    """``yyyyMMddHHmmssSSS`` in UTC, the G1 timeStamp."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"


def g1_signed_params(key, params, timestamp=None):
    """The query parameters of a G1 GET, timeStamp and authToken added (values not yet URL-encoded)."""
    params = {k: str(v) for k, v in params.items()}
    params["timeStamp"] = timestamp or g1_time()
    params["authToken"] = g1_auth_token(key, params)
    return params


def g1_kit_signed_request(key, body, formula="body-hmac", timestamp=None):
    """(raw body, headers) for a G1 Kit POST signed with either candidate formula."""
    body = {**body, "timeStamp": timestamp or body.get("timeStamp") or g1_time()}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return raw, {"authToken": g1_kit_tokens(key, raw, body)[formula], "Content-Type": "application/json"}
