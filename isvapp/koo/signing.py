"""Request verification and answer signing for every generation (reference §3.2-§3.6, §3.8).

Pure functions over strings and bytes, in the style of Stripe's webhook verifier: compute the
expected value, compare in constant time, raise one exception type (KooError) with the reason.
"""

import base64
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime

from . import strictjson
from .codes import AUTH_FAILED, INVALID_PARAM, KooError
from .times import read_time

_UNIX_MS = re.compile(r"[1-9][0-9]{0,14}")
# Bodies larger than this are checked against their raw bytes only: re-reading a body to try its
# canonical forms means parsing it, and a stranger's 12 MiB body must cost one HMAC, not a parse.
# The basic interfaces' bodies are a few hundred bytes; Huawei signs a Kit body as sent.
CANONICAL_MAX_BYTES = 64 * 1024


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


_PAIR_INSIDE = re.compile(r"&[^&=]+=")


def check_unambiguous(params):
    """Refuse parameters whose signed string also reads as a different parameter set.

    authToken covers ``k=v`` pairs joined with '&' and nothing escaped, so ``orderId=O&periodNumber=1``
    as one value signs exactly like two parameters: a captured request could be re-split into
    another. A value (or name) holding '&' followed by ``name=`` is refused; a plain '&' inside a
    value (a customer called ``A&B 有限公司``) cannot be re-read as a pair and is accepted.
    """
    for name, value in params.items():
        if name == "authToken":
            continue
        if "&" in name or "=" in name or _PAIR_INSIDE.search(value or ""):
            raise KooError(AUTH_FAILED, f"{name[:40]}: a value holding '&name=' makes authToken ambiguous")


def check_g1_timestamp(text, now_ms, window_s, name="timeStamp"):
    """G1 has no nonce: a window on timeStamp is what stops a URL signed long ago from being obeyed.

    The window is generous (the marketplace retries for hours, and a clock written in Beijing time
    instead of UTC is eight hours off), so it is a setting, not a constant.
    """
    if not text:
        raise KooError(INVALID_PARAM, f"{name} is missing")
    stamp, _ = read_time(text)
    if stamp is None:
        raise KooError(INVALID_PARAM, f"{name} must be a time like yyyyMMddHHmmssSSS")
    skew = now_ms - stamp.timestamp() * 1000
    if abs(skew) > window_s * 1000:
        raise KooError(INVALID_PARAM, f"{name} outside the {window_s} s window (clock off by {skew / 1000:.0f} s)")


def verify_g1_request(keys, params, now_ms, window_s):
    """Check a G1 GET request's authToken against each configured key; returns the key that signed it.

    Huawei's FAQ: a '+' in the token sometimes arrives as a space when a proxy decodes twice;
    mapping spaces back to '+' before comparing is the documented remedy. The same pitfall in a
    parameter value cannot be undone (a real space is legitimate), so only the token is mended.
    """
    token = params.get("authToken")
    if not token:
        raise KooError(AUTH_FAILED, "authToken is missing")
    check_g1_timestamp(params.get("timeStamp"), now_ms, window_s)
    check_unambiguous(params)
    token = token.replace(" ", "+")
    for key in keys:
        if _same(g1_auth_token(key, params), token):
            return key
    raise KooError(AUTH_FAILED, "authToken does not match")


def replay_token(scope, *parts):
    """The replay store's key for a signed request: its signed identity, however its parts are cut.

    G2 and Kit sign ``key + nonce + timestamp`` with no separator, so the same signed bytes can be
    re-cut (a nonce's last digit moved onto the timestamp); the key is taken over the joined text,
    so every cut of one signed request is one entry. G1's identity is its authToken.
    """
    return hashlib.sha256("|".join((scope, "".join(parts))).encode("utf-8")).hexdigest()


def request_fingerprint(*parts):
    """What makes a resend *identical*: every byte of URL, signature parts and body."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def key_fingerprint(key):
    """How a key is named on pages and in logs: never the key, a short hash of it."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12] if key else None


def secret_digest(secret):
    """What is kept of a bearer secret we hand out (an API token, an installation secret): its
    SHA-256, so the database never holds a secret that would let its reader in."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


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
    """Plain Unix milliseconds within the window, in both directions; returns the skew in ms.

    Plain means ASCII digits with no leading zero: ``²`` passes ``str.isdigit``, and a leading
    zero is how a nonce's last digit could be moved onto the timestamp in a replay.
    """
    if not timestamp:
        raise KooError(INVALID_PARAM, "timestamp is missing")
    if not _UNIX_MS.fullmatch(timestamp):
        raise KooError(INVALID_PARAM, "timestamp must be Unix milliseconds (ASCII digits, no leading zero)")
    skew = now_ms - int(timestamp)
    if abs(skew) > window_s * 1000:
        raise KooError(INVALID_PARAM, f"timestamp outside the {window_s} s window (clock off by {skew / 1000:.0f} s)")
    return skew


def java_text(value):
    """How a top-level JSON value reads once Java has it as a String (String.valueOf for scalars,
    compact JSON for objects): Huawei's V2 sample reads bodies as Map<String,String>, and the G1
    Kit token's field form reads values the same way."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def string_map_payload(obj):
    """The canonical form with every top-level value as a string: numbers and booleans signed as text."""
    return canonical_payload({k: java_text(v) for k, v in obj.items() if v is not None})


def payload_candidates(raw_body):
    """What the marketplace may have signed, in order (docs/protocol.md, "Signatures"):

    1. the raw body as received;
    2. its canonical form (keys sorted, nulls dropped, compact, raw UTF-8);
    3. the canonical form with every top-level value a string (Huawei's V2 sample reads the body
       as ``Map<String,String>``).
    Only bodies up to CANONICAL_MAX_BYTES are parsed for 2 and 3.
    """
    yield "raw", raw_body
    if len(raw_body) > CANONICAL_MAX_BYTES:
        return
    try:
        obj = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return
    if not isinstance(obj, dict):
        return
    seen = {raw_body}
    for name, make in (("canonical", canonical_payload), ("string-map", string_map_payload)):
        candidate = make(obj).encode("utf-8")
        if candidate not in seen:
            seen.add(candidate)
            yield name, candidate


def _verify_signed(signer, keys, raw_body, signature, timestamp, nonce, now_ms, window_s, names):
    sig_name, ts_name, nonce_name = names
    if not signature:
        raise KooError(AUTH_FAILED, f"{sig_name} is missing")
    if not timestamp:
        raise KooError(INVALID_PARAM, f"{ts_name} is missing")
    if not nonce:
        raise KooError(INVALID_PARAM, f"{nonce_name} is missing")
    if len(nonce) > 128:
        raise KooError(INVALID_PARAM, f"{nonce_name} is too long")
    if "\x00" in nonce:  # it is stored in the replay store; an identifier, so refused, not altered
        raise KooError(INVALID_PARAM, f"{nonce_name} contains a NUL character (U+0000)")
    check_timestamp(timestamp, now_ms, window_s)
    received = signature.lower()
    for form, payload in payload_candidates(raw_body):
        for key in keys:
            if _same(signer(key, nonce, timestamp, payload), received):
                return key, form
    raise KooError(AUTH_FAILED, f"{sig_name} does not match")


def verify_g2_request(keys, raw_body, signature, timestamp, nonce, now_ms, window_s=60):
    """Check the signature/timestamp/nonce query parameters of a G2 POST (§3.4).

    Returns (the key that verified, the payload form that matched). The nonce is only checked
    for presence here; whether it was seen before is a question for the replay store.
    """
    return _verify_signed(
        g2_signature, keys, raw_body, signature, timestamp, nonce, now_ms, window_s, ("signature", "timestamp", "nonce")
    )


def verify_kit_request(keys, raw_body, signature, timestamp, nonce, now_ms, window_s=60):
    """Check the x-sign/x-timestamp/x-nonce headers of a G2 Kit POST (§3.5); returns (key, form)."""
    return _verify_signed(
        kit_signature,
        keys,
        raw_body,
        signature,
        timestamp,
        nonce,
        now_ms,
        window_s,
        ("x-sign", "x-timestamp", "x-nonce"),
    )


# --- G1 Kit: authToken request header, formula not documented (§3.3) ---------------------------

_BODY_TIMESTAMP = re.compile(rb'"timeStamp"\s*:\s*"?([0-9]{8,20})')


def g1_kit_tokens(key, raw_body, payload):
    """Both candidate authTokens for a G1 Kit POST, by formula name (project rule: accept either).

    body-hmac:     Base64(HMAC-SHA256(key + timeStamp, raw body)), timeStamp from the body;
    sorted-fields: the G1 GET algorithm over the body's top-level fields.
    """
    stamp = str(payload.get("timeStamp", ""))
    fields = {k: java_text(v) for k, v in payload.items() if v is not None and k != "authToken"}
    return {"body-hmac": _body_hmac_token(key, stamp, raw_body), "sorted-fields": g1_auth_token(key, fields)}


def _body_hmac_token(key, stamp, raw_body):
    return base64.b64encode(_hmac_sha256(key + stamp, raw_body)).decode("ascii")


def verify_g1_kit_request(keys, raw_body, token, now_ms, window_s):
    """Check a G1 Kit authToken header and the body's timeStamp; returns (key, formula that matched).

    The body is not parsed until a check that costs one HMAC per key has run: the timeStamp is
    found in the raw bytes and the body-hmac formula tried first. Only a body small enough
    (CANONICAL_MAX_BYTES) is parsed to try the sorted-fields formula.

    The time checked is always the one that was signed: body-hmac keys its HMAC with the stamp
    found in the raw bytes; sorted-fields signs the parsed body's timeStamp, which is checked again
    on its own (a body naming a key twice is never read: isvapp.koo.strictjson says why). The
    sorted-fields string is checked for ambiguity as a G1 GET's is (check_unambiguous).
    """
    if not token:
        raise KooError(AUTH_FAILED, "authToken header is missing")
    found = _BODY_TIMESTAMP.search(
        raw_body[:CANONICAL_MAX_BYTES] if len(raw_body) > CANONICAL_MAX_BYTES else raw_body
    ) or _BODY_TIMESTAMP.search(raw_body)
    stamp = found.group(1).decode("ascii") if found else None
    check_g1_timestamp(stamp, now_ms, window_s)
    token = token.strip().replace(" ", "+")
    for key in keys:
        if _same(_body_hmac_token(key, stamp, raw_body), token):
            return key, "body-hmac"
    if len(raw_body) <= CANONICAL_MAX_BYTES:
        try:
            payload = strictjson.loads(raw_body)
        except strictjson.RepeatedKey as error:
            raise KooError(AUTH_FAILED, f"authToken does not match, and the body {error}") from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            payload = None
        if isinstance(payload, dict):
            for key in keys:
                if _same(g1_kit_tokens(key, raw_body, payload)["sorted-fields"], token):
                    check_g1_timestamp(str(payload.get("timeStamp") or ""), now_ms, window_s)
                    check_unambiguous({k: java_text(v) for k, v in payload.items() if v is not None})
                    return key, "sorted-fields"
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
    return raw, {
        "x-sign": kit_signature(key, nonce, timestamp, raw),
        "x-timestamp": timestamp,
        "x-nonce": nonce,
        "Content-Type": "application/json",
    }


def g1_time(now=None):
    """``yyyyMMddHHmmssSSS`` in UTC, the G1 timeStamp."""
    now = now or datetime.now(UTC)
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
