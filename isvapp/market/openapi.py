"""The marketplace's open API, called by the merchant: order query (§5.1), usage push (§5.2), and
the License-code APIs (§5.3: activation, query, usage statistics, upload).

No handler of a marketplace callback calls it: the marketplace's own 5 s budget must not depend on
the marketplace answering us (background jobs do, and the License relay, for the merchant's software). Every call is AK/SK signed and goes out under
isvapp.outbound's rules: https only (plain http only to this host, for the fake marketplace), the
certificate and host name verified strictly, one total deadline of at most 3 s, and redirects
never followed: a 3xx would re-send the signed Authorization (with the AK) to a host KOO_API_BASE_URL
does not name, and its answer would be trusted as order data.
"""

import hashlib
import json
import time
import urllib.request
from urllib.parse import quote, urlencode, urlsplit

from .. import outbound
from ..koo import apig, licensecodes
from ..koo.signing import new_nonce

ORDER_QUERY = "/api/mkp-openapi-public/global/v1/order/query"
USAGE_PUSH = "/api/mkp-openapi-public/global/v1/isv/usage-data"

MKT_MESSAGES = {
    "MKT.0999": "marketplace internal error",
    "MKT.0100": "input parameter out of range or malformed",
    "MKT.0101": "invalid parameter (unknown, extra or missing)",
    "MKT.0199": "request parameter error",
    "MKT.0150": "illegal operation (not this seller's product?)",
    "MKT.0151": "no authority (not a seller AK/SK)",
    "MKT.0154": "illegal token: check KOO_AK/KOO_SK",
    "MKT.0250": "throttled by the marketplace",
    "MKT.9001": "instance id not found",
    "MKT.9002": "invalid usage entities",
    "MKT.9003": "too many usage records in one call",
    "MKT.9004": "usage begin time older than 21 days",
    # The open-API guide's 公共错误码 table (error_code / error_msg, HTTP 200), seen with the License APIs.
    "92020001": "marketplace internal error",
    "92020002": "invalid parameter (a license code it does not know?)",
}
SUCCESS = "MKT.0000"
SUCCESS_CODES = (SUCCESS, "92020000")
ANSWER_LIMIT = 4 * 2**20  # an order answer is a few KiB; a stranger's endless body is cut here


class MarketError(Exception):
    """A failed call; ``code`` is the marketplace's code, or "network" / "http" / "config" /
    "invalid" (refused here, never sent). ``message`` is isvapp's reading of the code;
    ``result_msg`` and ``extra_info`` are the marketplace's own words, as sent (the error page:
    resultMsg carries the failure's detail, to be read with extra_info), and ``str()`` shows all
    three. ``elsewhere``: the domain gave no answer of the marketplace's (unreachable, a timeout,
    or an answer without a result code): the call may be tried on the backup domain."""

    def __init__(self, code, message, elsewhere=False, status=None, result_msg=None, extra_info=None):
        self.code, self.message, self.elsewhere, self.status = code, message, elsewhere, status
        self.result_msg, self.extra_info = result_msg, extra_info
        super().__init__(f"{code}: {self.detail}")

    @property
    def words(self):
        """isvapp's reading and the marketplace's resultMsg, as sent."""
        said = f'; the marketplace said: "{self.result_msg}"' if self.result_msg not in (None, "") else ""
        return f"{self.message}{said}"

    @property
    def detail(self):
        """The words, and extra_info as sent (JSON)."""
        if self.extra_info is None:
            return self.words
        return f"{self.words}; extra_info: {json.dumps(self.extra_info, ensure_ascii=False)}"

    @property
    def later(self):
        """The same call may succeed later: no answer, or the marketplace saying it cannot now
        (its internal error, its rate limit). isvapp's reading: the pages name no code to retry."""
        return self.elsewhere or self.code in ("network", "http") or self.code in TRY_LATER


SAID, EXTRA = '; the marketplace said: "', "; extra_info: "


def said_in(text):
    """(resultMsg, extra_info) as the marketplace sent them, read back out of an error text that
    holds ``str(MarketError)`` (a job's last error keeps only text); None when it holds neither.
    resultMsg is what stands between the quotes :attr:`MarketError.words` put around it (None when
    absent); extra_info, the JSON :attr:`MarketError.detail` wrote after it (None when absent)."""
    head = (text or "").split("\nTraceback (most recent call last):", 1)[0]
    start = head.find(SAID)
    rest = head[start + len(SAID) :] if start >= 0 else head
    said, extra = (rest if start >= 0 else None), None
    cut = rest.find(EXTRA)
    while cut >= 0:  # the first "; extra_info: " that JSON follows (a resultMsg may hold the words)
        try:
            extra = json.loads(rest[cut + len(EXTRA) :].strip())
        except ValueError:
            cut = rest.find(EXTRA, cut + 1)
            continue
        said = rest[:cut] if start >= 0 else None
        break
    if said is None and extra is None:
        return None
    if said is not None:
        said = said.rstrip()
        said = said[:-1] if said.endswith('"') else said
    return said, extra


# Codes that say "not now" rather than "not this": MKT.0999 "System internal error.", MKT.0250
# "Access frequency overlimit", 92020001 internal error (docs/protocol.md §13.2).
TRY_LATER = {"MKT.0999", "MKT.0250", "92020001"}


def base_urls(settings):
    """The main domain, then the backup the License pages name for when it is unavailable."""
    return [url for url in (settings.api_base_url, settings.api_backup_url) if url]


def call(settings, method, path, query=None, body=None, headers=None, content_type="application/json;charset=UTF-8"):
    """One signed call, on the backup domain too when the main one does not answer; returns the
    decoded JSON answer of a success, else raises MarketError."""
    if not (settings.api_ak and settings.api_sk):
        raise MarketError("config", "KOO_AK and KOO_SK are not configured")
    failure = None
    for base in base_urls(settings):
        try:
            return _call_once(settings, base, method, path, query, body, headers, content_type)
        except MarketError as error:
            if not error.elsewhere:
                raise
            failure = error
    raise failure or MarketError("config", "KOO_API_BASE_URL is not set")


def _call_once(settings, base, method, path, query, body, headers, content_type):
    url = base + path + ("?" + urlencode(query, quote_via=quote) if query else "")
    if not outbound.is_https_or_loopback(url):
        raise MarketError(
            "config",
            "KOO_API_BASE_URL (and KOO_API_BACKUP_URL) must be an https:// URL (plain http only to a loopback host)",
        )
    # Signed for this host: Host is a signed header, so the backup domain gets its own signature.
    headers = apig.sign(
        settings.api_ak, settings.api_sk, method, url, {"Content-Type": content_type, **(headers or {})}, body or b""
    )
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    host = urlsplit(url).netloc
    try:
        status, raw = outbound.exchange(request, settings.api_timeout_s, ANSWER_LIMIT, f"{host}{path}")
    except outbound.Unanswered as error:
        raise MarketError("network" if error.kind == "network" else "http", str(error), elsewhere=True) from None
    try:
        answer = json.loads(raw)
        if not isinstance(answer, dict):
            raise ValueError
    except (ValueError, RecursionError):
        raise MarketError(
            "http", f"HTTP {status} from {host}{path}: the answer is not a JSON object", elsewhere=True, status=status
        ) from None
    code = str(answer.get("resultCode") or answer.get("error_code") or "")
    if code in SUCCESS_CODES:
        return answer
    if not code:  # not the marketplace's word (a gateway's page, say): the backup may answer
        message = f"HTTP {status} from {host}{path}, no result code: {str(answer)[:200]}"
        raise MarketError("http", message, elsewhere=True, status=status)
    # An answer with a result code is the marketplace's, whatever its HTTP status (the error page
    # lists MKT.0999, MKT.0100 and MKT.9001-9004 under 500): never re-sent to the backup domain.
    raise MarketError(
        code,
        MKT_MESSAGES.get(code, "unknown code"),
        status=status,
        result_msg=answer.get("resultMsg") if "resultMsg" in answer else answer.get("error_msg"),
        extra_info=answer.get("extra_info"),
    )


def query_order(settings, order_id, order_line_id=None):
    query = {"orderId": order_id, **({"orderLineId": order_line_id} if order_line_id else {})}
    return call(settings, "GET", ORDER_QUERY, query=query).get("orderInfo") or {}


def push_usage(settings, records, ts=None, nonce=None):
    """Push one batch of usage records (KOO_USAGE_PUSH_BATCH, 100 by default); returns the answer
    (it may list per-record errors)."""
    body = apig.usage_body(records)
    ts, nonce = str(ts or int(time.time() * 1000)), nonce or new_nonce()
    headers = {"signature": apig.usage_signature(settings.usage_key or "", ts, nonce, body), "ts": ts, "nonce": nonce}
    return call(settings, "POST", USAGE_PUSH, body=body, headers=headers)


# --- License codes (授权码) and the license upload (docs/protocol.md §13) ----------------------------


def _post_json(settings, path, body):
    return call(settings, "POST", path, body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def activate_license(settings, code):
    """激活授权码: (status, expiry) as the answer gives them (either may be None)."""
    return licensecodes.read_state(_post_json(settings, licensecodes.ACTIVATE, licensecodes.activate_body(code)))


def query_license(settings, code, account=None, ip=None):
    """查询授权码, v1 (one code): (status, expiry)."""
    return licensecodes.read_state(
        _post_json(settings, licensecodes.QUERY_V1, licensecodes.query_v1_body(code, account, ip))
    )


def query_licenses(settings, codes):
    """查询授权码, v2 (a batch): {code: (status, expiry)} for the codes the answer lists."""
    body = licensecodes.query_v2_body(codes, settings.license_query_v2_field)
    return licensecodes.read_batch(_post_json(settings, licensecodes.QUERY_V2, body))


def report_software_usage(settings, reports):
    """授权码软件使用统计: ``reports`` is [(code, [{"id": ...} or {"active_num": n}])]."""
    return _post_json(settings, licensecodes.USAGE_INFO, licensecodes.usage_body(reports))


def multipart(field, document, as_file, boundary):
    """A multipart/form-data body with one part: the document as a file, or as a text field."""
    disposition = f'form-data; name="{field}"' + ('; filename="license.lic"' if as_file else "")
    kind = "application/octet-stream" if as_file else "text/plain; charset=UTF-8"
    body = (
        f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n".encode()
        + document
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload_license(settings, event_id, document):
    """字符串/文件流上传 of one license document for getLicenseAsync's ``event_id``.

    ``document`` is the stored text: every attempt sends the same bytes. The boundary is derived
    from them, so a repeat's body is byte for byte the same as well."""
    raw = document.encode("utf-8")
    if len(raw) > settings.license_upload_max_bytes:
        raise MarketError(
            "invalid",
            f"the license is {len(raw)} bytes, over KOO_LICENSE_UPLOAD_MAX_BYTES ({settings.license_upload_max_bytes})",
        )
    licensecodes.code(event_id, "eventId")
    boundary = "isvapp-" + hashlib.sha256(raw).hexdigest()[:32]
    body, content_type = multipart(settings.license_upload_field, raw, settings.license_upload_mode == "file", boundary)
    path = licensecodes.UPLOAD.format(event_id=quote(event_id, safe=""))
    return call(settings, "POST", path, body=body, content_type=content_type)
