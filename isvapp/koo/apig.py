"""Signing the merchant's own calls to the marketplace (reference §5.5, §3.8).

``sign`` is Huawei Cloud API Gateway's SDK-HMAC-SHA256 AK/SK scheme, written out here because it
is small; tests prove it byte for byte against the official huaweicloudsdkcore signer.
``usage_signature`` is the extra signature a usage push carries (§3.8).
"""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"


def _encode(text):
    return quote(text, safe="~")


def canonical_request(method, url, headers, body):
    """Method, URI (segments encoded, trailing '/'), sorted query, signed headers, body hash."""
    parts = urlsplit(url)
    path = "/".join(_encode(segment) for segment in unquote(parts.path or "/").split("/"))
    if not path.endswith("/"):
        path += "/"
    query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    lowered = {k.lower(): str(v).strip() for k, v in headers.items()}
    signed = sorted(k for k in lowered if "_" not in k)
    canonical_headers = "".join(f"{k}:{lowered[k]}\n" for k in signed)
    return (
        f"{method.upper()}\n{path}\n{query}\n{canonical_headers}\n{';'.join(signed)}\n"
        f"{hashlib.sha256(body or b'').hexdigest()}"
    ), signed


def sign(ak, sk, method, url, headers=None, body=b"", now=None):
    """The request's headers with Host, X-Sdk-Date and Authorization added."""
    headers = dict(headers or {})
    if not any(k.lower() == "host" for k in headers):
        headers["Host"] = urlsplit(url).netloc
    if not any(k.lower() == "x-sdk-date" for k in headers):
        headers["X-Sdk-Date"] = (now or datetime.now(UTC)).strftime(DATE_FORMAT)
    stamp = next(v for k, v in headers.items() if k.lower() == "x-sdk-date")
    request, signed = canonical_request(method, url, headers, body)
    to_sign = f"{ALGORITHM}\n{stamp}\n{hashlib.sha256(request.encode('utf-8')).hexdigest()}"
    signature = hmac.new(sk.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    return headers


def verify(ak, sk, method, url, headers, body=b""):
    """The marketplace's side (the fake market uses it): True when Authorization is genuine."""
    received = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    try:
        signed = received.split("SignedHeaders=")[1].split(",")[0].strip().split(";")
    except IndexError:
        return False
    kept = {k: v for k, v in headers.items() if k.lower() in signed}
    expected = sign(ak, sk, method, url, kept, body)["Authorization"]
    return hmac.compare_digest(expected.encode(), received.encode())


def usage_body(records):
    """The usage-push body, keys sorted at every level ("signed after natural sorting")."""
    return json.dumps({"usage_records": records}, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def usage_signature(key, ts, nonce, body):
    """Base64(HMAC-SHA256(key, "ts=<ts>&nonce=<nonce>&body=<body>")) (§3.8)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    message = f"ts={ts}&nonce={nonce}&body={body}".encode()
    return base64.b64encode(hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")
