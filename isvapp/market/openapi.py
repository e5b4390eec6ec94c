"""The marketplace's open API, called by the merchant: order query (§5.1) and usage push (§5.2).

Only background jobs call it, never a request handler: the marketplace's own 5 s budget must
not depend on the marketplace answering us. Every call is AK/SK signed and goes out under
isvapp.outbound's rules: https only (plain http only to this host, for the fake marketplace), the
certificate and host name verified strictly, one total deadline of at most 3 s, and redirects
never followed: a 3xx would re-send the signed Authorization (with the AK) to a host KOO_API_BASE_URL
does not name, and its answer would be trusted as order data.
"""
import json
import time
import urllib.request
from urllib.parse import quote, urlencode

from .. import outbound
from ..koo import apig
from ..koo.signing import new_nonce

ORDER_QUERY = "/api/mkp-openapi-public/global/v1/order/query"
USAGE_PUSH = "/api/mkp-openapi-public/global/v1/isv/usage-data"

MKT_MESSAGES = {
    "MKT.0999": "marketplace internal error", "MKT.0100": "input parameter out of range or malformed",
    "MKT.0101": "invalid parameter (unknown, extra or missing)", "MKT.0199": "request parameter error",
    "MKT.0150": "illegal operation (not this seller's product?)", "MKT.0151": "no authority (not a seller AK/SK)",
    "MKT.0154": "illegal token: check KOO_AK/KOO_SK", "MKT.0250": "throttled by the marketplace",
    "MKT.9001": "instance id not found", "MKT.9002": "invalid usage entities",
    "MKT.9003": "too many usage records in one call", "MKT.9004": "usage begin time older than 21 days",
}
SUCCESS = "MKT.0000"
ANSWER_LIMIT = 4 * 2**20  # an order answer is a few KiB; a stranger's endless body is cut here


class MarketError(Exception):
    """A failed call; ``code`` is the MKT code, or "network" / "http" / "config"."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def call(settings, method, path, query=None, body=None, headers=None):
    """One signed call; returns the decoded JSON answer of a MKT.0000 success, else raises."""
    if not (settings.api_ak and settings.api_sk):
        raise MarketError("config", "KOO_AK and KOO_SK are not configured")
    url = settings.api_base_url + path + ("?" + urlencode(query, quote_via=quote) if query else "")
    if not outbound.is_https_or_loopback(url):
        raise MarketError("config", "KOO_API_BASE_URL must be an https:// URL (plain http only to a loopback host)")
    headers = apig.sign(settings.api_ak, settings.api_sk, method, url,
                        {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}, body or b"")
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        status, raw = outbound.exchange(request, settings.api_timeout_s, ANSWER_LIMIT, path)
    except outbound.Unanswered as error:
        raise MarketError("network" if error.kind == "network" else "http", str(error)) from None
    if status >= 400 and not raw:  # MKT errors arrive with 4xx/5xx statuses, their code in the body
        raise MarketError("http", f"HTTP {status} from {path}")
    try:
        answer = json.loads(raw)
    except ValueError:
        raise MarketError("http", f"{path} answered something that is not JSON") from None
    code = str(answer.get("resultCode") or answer.get("error_code") or "")
    if code != SUCCESS:
        raise MarketError(code or "http", MKT_MESSAGES.get(code, str(answer.get("resultMsg") or answer)[:200]))
    return answer


def query_order(settings, order_id, order_line_id=None):
    query = {"orderId": order_id, **({"orderLineId": order_line_id} if order_line_id else {})}
    return call(settings, "GET", ORDER_QUERY, query=query).get("orderInfo") or {}


def push_usage(settings, records, ts=None, nonce=None):
    """Push at most 1000 usage records; returns the answer (may list per-record errors)."""
    body = apig.usage_body(records)
    ts, nonce = str(ts or int(time.time() * 1000)), nonce or new_nonce()
    headers = {"signature": apig.usage_signature(settings.usage_key or "", ts, nonce, body), "ts": ts,
               "nonce": nonce}
    return call(settings, "POST", USAGE_PUSH, body=body, headers=headers)
